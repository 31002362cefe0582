"""Console pages of enrollment, following the Intune guide's flow: Devices > Enrollment >
Android > AOSP > Corporate-owned, userless devices: the profile list, the Create profile
wizard (Basics, Scope tags, Review + create), a profile's properties and its Tokens view (QR
code, plain-text token, expiry), Export, Replace token, Revoke token, edit and delete.

The wizard is plain HTML forms: each step posts every earlier answer back in hidden fields,
and each Next runs the real create in a savepoint that is rolled back (a dry run), so a step
shows the service's own validation message next to the field it names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.errors import BadRequest, DomainError
from aospmdm.enrollment import provisioning, service
from aospmdm.enrollment.api import NO_STORE, export_body
from aospmdm.enrollment.models import EnrollmentProfile, EnrollmentToken
from aospmdm.enrollment.schemas import MAX_TOKEN_SECONDS, ProfileCreate, ProfileUpdate
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from aospmdm.tenant.access import Actor
from aospmdm.tenant.deps import Console, ConsoleDep, ConsoleFormDep, SessionDep, SettingsDep
from aospmdm.tenant.models import ScopeTag
from aospmdm.web.templating import done, render, reraise_page_refusal

router = APIRouter(prefix="/console/devices")
SECTION = "Devices"
BASE = "/console/devices/enrollment/aosp-userless"
WIZARD_STEPS = ("basics", "scope", "review")
EXPIRY = "tokenExpirationDateTime"

# The Graph property a service error names -> the console form field it belongs to.
FIELD_OF = {
    "displayName": "display_name",
    "description": "description",
    "configureWifi": "configure_wifi",
    "wifiSsid": "wifi_ssid",
    "wifiHidden": "wifi_hidden",
    "wifiSecurityType": "wifi_security_type",
    "wifiPassword": "wifi_password",
    "deviceNameTemplate": "device_name_template",
    "tokenUsageLimit": "token_usage_limit",
    EXPIRY: "token_expiration",
    "tokenValidityInSeconds": "token_expiration",
    "roleScopeTagIds": "scope_tags",
}
LABELS = {
    "displayName": "Name",
    "description": "Description",
    "wifiSsid": "SSID",
    "wifiSecurityType": "Wi-Fi type",
    "wifiPassword": "Pre-shared key",
    "deviceNameTemplate": "Device name template",
    "tokenUsageLimit": "Token usage limit",
    "roleScopeTagIds": "Scope tags",
}
BASICS_FIELDS = frozenset(FIELD_OF.values()) - {"scope_tags"}


# --- form state ---------------------------------------------------------------------------


@dataclass
class ProfileForm:
    """What the profile forms hold, as typed by the admin (the wizard carries it between steps)."""

    display_name: str = ""
    description: str = ""
    token_expiration: str = ""  # YYYY-MM-DD: the token expires at the end of that day (UTC)
    configure_wifi: bool = True
    wifi_ssid: str = ""
    wifi_hidden: bool = False
    wifi_security_type: str = "none"
    wifi_password: str = ""
    device_name_template: str = ""
    token_usage_limit: str = ""
    scope_tags: list[str] = field(default_factory=list)


# Loose caps against abuse; the schema's exact limits give the messages shown inline.
_Text = Annotated[str, Form(max_length=4096)]
_Short = Annotated[str, Form(max_length=64)]


def profile_form(
    display_name: _Text = "",
    description: _Text = "",
    token_expiration: _Short = "",
    configure_wifi: _Short = "",
    wifi_ssid: _Text = "",
    wifi_hidden: _Short = "",
    wifi_security_type: _Short = "none",
    wifi_password: _Text = "",
    device_name_template: _Text = "",
    token_usage_limit: _Short = "",
    scope_tags: Annotated[list[str] | None, Form(max_length=1000)] = None,
) -> ProfileForm:
    return ProfileForm(
        display_name=display_name,
        # Browsers send a textarea's line breaks as CRLF.
        description=description.replace("\r\n", "\n"),
        token_expiration=token_expiration.strip(),
        configure_wifi=bool(configure_wifi),
        wifi_ssid=wifi_ssid,
        wifi_hidden=bool(wifi_hidden),
        wifi_security_type=wifi_security_type,
        wifi_password=wifi_password,
        device_name_template=device_name_template,
        token_usage_limit=token_usage_limit.strip(),
        scope_tags=[t for t in scope_tags or [] if t],
    )


FormDep = Annotated[ProfileForm, Depends(profile_form)]


def token_expiry(text: str, target: str = EXPIRY) -> datetime:
    """The token expiration date as a time: the end of that day in UTC, or exactly 90 days
    from now when the last allowed day is chosen (its end would be past the 90 days)."""
    if not text:
        raise BadRequest("Choose the token expiration date.", target=target)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"'{text}' is not a date (YYYY-MM-DD).", target=target) from None
    now = clock.now()
    latest = now + timedelta(seconds=MAX_TOKEN_SECONDS)
    if day < now.date():
        raise BadRequest(
            "The token expiration date must be today or later (dates are UTC).", target=target
        )
    if day > latest.date():
        raise BadRequest(
            f"A token can be valid for at most 90 days: choose {latest.date().isoformat()} or "
            "earlier.",
            target=target,
        )
    return min(datetime.combine(day, time(23, 59, 59), tzinfo=UTC), latest)


def _dates() -> dict[str, str]:
    """Bounds and default of the expiration date inputs (UTC days)."""
    now = clock.now()
    latest = (now + timedelta(seconds=MAX_TOKEN_SECONDS)).date().isoformat()
    return {"min_date": now.date().isoformat(), "max_date": latest, "default_date": latest}


def _usage_limit(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadRequest(
            f"'{text}' is not a whole number; leave the token usage limit empty for no limit.",
            target="tokenUsageLimit",
        ) from None


def _invalid(exc: ValidationError) -> BadRequest:
    """A schema error as a console message naming the field."""
    err = exc.errors()[0]
    prop = ".".join(str(p) for p in err["loc"])
    return BadRequest(f"{LABELS.get(prop, prop)}: {err['msg']}.", target=prop)


def _create_input(form: ProfileForm) -> ProfileCreate:
    body = {
        "displayName": form.display_name,
        "description": form.description,
        "configureWifi": form.configure_wifi,
        "wifiSsid": (form.wifi_ssid or None) if form.configure_wifi else None,
        "wifiHidden": form.wifi_hidden,
        "wifiSecurityType": form.wifi_security_type,
        "wifiPassword": form.wifi_password or None,
        "deviceNameTemplate": form.device_name_template.strip() or None,
        "tokenUsageLimit": _usage_limit(form.token_usage_limit),
        EXPIRY: token_expiry(form.token_expiration),
        "roleScopeTagIds": form.scope_tags or None,
    }
    try:
        return ProfileCreate.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _update_input(profile: EnrollmentProfile, form: ProfileForm) -> ProfileUpdate:
    """Only what changed, so the audit record lists only real changes."""
    body: dict[str, Any] = {}
    if form.display_name.strip() != profile.display_name:
        body["displayName"] = form.display_name
    if form.description != profile.description:
        body["description"] = form.description
    if form.configure_wifi != profile.configure_wifi:
        body["configureWifi"] = form.configure_wifi
    if form.configure_wifi:
        if (form.wifi_ssid or None) != profile.wifi_ssid:
            body["wifiSsid"] = form.wifi_ssid or None
        if form.wifi_hidden != profile.wifi_hidden:
            body["wifiHidden"] = form.wifi_hidden
        if form.wifi_security_type != profile.wifi_security_type:
            body["wifiSecurityType"] = form.wifi_security_type
        if form.wifi_password:  # empty keeps the stored key
            body["wifiPassword"] = form.wifi_password
    template = form.device_name_template.strip() or None
    if template != profile.device_name_template:
        body["deviceNameTemplate"] = template
    limit = _usage_limit(form.token_usage_limit)
    if limit != profile.token_usage_limit:
        body["tokenUsageLimit"] = limit
    try:
        return ProfileUpdate.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _form_of(profile: EnrollmentProfile) -> ProfileForm:
    return ProfileForm(
        display_name=profile.display_name,
        description=profile.description,
        configure_wifi=profile.configure_wifi,
        wifi_ssid=profile.wifi_ssid or "",
        wifi_hidden=profile.wifi_hidden,
        wifi_security_type=profile.wifi_security_type,
        device_name_template=profile.device_name_template or "",
        token_usage_limit=str(profile.token_usage_limit or ""),
    )


def _problem(exc: DomainError, fields: frozenset[str]) -> dict[str, Any]:
    """Context that shows an error beside its field when the page has it, else on top."""
    name = FIELD_OF.get(exc.target or "")
    if name in fields:
        return {"field_errors": {name: exc.message}, "error": None}
    return {"field_errors": {}, "error": exc.message}


# --- helpers ------------------------------------------------------------------------------


def _page(
    request: Request, console: Console, name: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    ctx.setdefault("field_errors", {})
    return render(
        request,
        f"enrollment/{name}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        can_write=console.actor.can(service.WRITE),
        **ctx,
    )


def _profile_url(profile_id: str, rest: str = "") -> str:
    return f"{BASE}/{quote(profile_id, safe='')}{rest}"


def _tag_names(session: Session, ids: list[str]) -> list[str]:
    if not ids:
        return []
    rows = session.execute(select(ScopeTag.id, ScopeTag.display_name).where(ScopeTag.id.in_(ids)))
    names: dict[str, str] = {tag_id: name for tag_id, name in rows}
    return [names.get(i, i) for i in ids]


@dataclass(frozen=True)
class TokenState:
    """A profile's current token as the console describes it."""

    token: EnrollmentToken | None
    active: bool

    @property
    def label(self) -> str:
        if self.token is None:
            return "No token"
        if not self.active:
            return "Expired (revoked)" if self.token.revoked_at else "Expired"
        return clock.iso(self.token.expires_at) or ""

    @property
    def usage(self) -> str:
        if self.token is None:
            return "—"
        limit = self.token.usage_limit
        return f"{self.token.usage_count} of {limit}" if limit else f"{self.token.usage_count}"


def _token_state(session: Session, profile: EnrollmentProfile) -> TokenState:
    token = service.current_tokens(session, [profile]).get(profile.id)
    return TokenState(token, service.token_is_active(token))


def _attachment(filename: str) -> str:
    """Content-Disposition with an ASCII fallback name and the exact UTF-8 name."""
    plain = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\/' else "_" for c in filename
    )
    header = f'attachment; filename="{plain}"'
    if plain != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


# --- the profile list (the Devices overview, devices/pages.py, links here) ------------------


@router.get("/enrollment/aosp-userless", response_class=HTMLResponse)
def profiles(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """Corporate-owned, userless devices: the enrollment profiles."""
    found = list(session.scalars(service.profile_statement(console.actor)))
    tokens = service.current_tokens(session, found)
    rows = [
        (p, TokenState(tokens.get(p.id), service.token_is_active(tokens.get(p.id)))) for p in found
    ]
    return _page(
        request,
        console,
        "profiles.html",
        rows=rows,
        authority_set=tenant.mdm_authority_is_set(session),
        notice=notice,
    )


# --- the Create profile wizard ------------------------------------------------------------


def _wizard(
    request: Request,
    session: Session,
    console: Console,
    step: str,
    form: ProfileForm,
    exc: DomainError | None = None,
) -> HTMLResponse:
    shown = {
        "basics": BASICS_FIELDS,
        "scope": frozenset({"scope_tags"}),
        "review": frozenset[str](),
    }[step]
    ctx: dict[str, Any] = _problem(exc, shown) if exc else {}
    tags = access.usable_tags(session, console.actor, service.WRITE)
    if form.scope_tags:
        tag_summary = ", ".join(_tag_names(session, form.scope_tags))
    elif console.actor.scope(service.WRITE) is not None:
        tag_summary = "Your scope tags: " + ", ".join(t.display_name for t in tags)
    else:
        tag_summary = "Default"
    expiry = None
    if step == "review":
        try:
            expiry = clock.iso(token_expiry(form.token_expiration).replace(microsecond=0))
        except BadRequest:
            expiry = None
    response = _page(
        request,
        console,
        f"create_{step}.html",
        status=exc.status if exc else 200,
        step=step,
        steps=WIZARD_STEPS,
        form=form,
        tags=tags,
        tag_summary=tag_summary,
        expiry=expiry,
        **_dates(),
        **ctx,
    )
    # The steps carry the Wi-Fi key in hidden fields: no cache may keep them.
    response.headers.update(NO_STORE)
    return response


@router.get("/enrollment/aosp-userless/create", response_class=HTMLResponse)
def create_start(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """Create profile, step 1: Basics."""
    console.actor.require(service.READ)
    form = ProfileForm(token_expiration=_dates()["default_date"])
    return _wizard(request, session, console, "basics", form)


def _dry_run(session: Session, settings: Settings, actor: Actor, form: ProfileForm) -> None:
    """Run the real create and roll it back: every check the service makes, and no change."""
    savepoint = session.begin_nested()
    try:
        service.create_profile(session, settings, actor, _create_input(form))
    finally:
        savepoint.rollback()


def _step_for(exc: DomainError) -> str:
    name = FIELD_OF.get(exc.target or "")
    if name == "scope_tags":
        return "scope"
    return "basics" if name in BASICS_FIELDS else "review"


@router.post("/enrollment/aosp-userless/create", response_model=None)
def create_step(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    form: FormDep,
    step: Annotated[str, Form(max_length=16)] = "basics",
    action: Annotated[str, Form(max_length=16)] = "next",
) -> Response:
    """A wizard step was submitted: Back, Next (checked by a dry run) or Create."""
    console.actor.require(service.WRITE)
    if step not in WIZARD_STEPS:
        raise BadRequest(f"Unknown wizard step '{step}'.", target="step")
    index = WIZARD_STEPS.index(step)
    if action == "back":
        return _wizard(request, session, console, WIZARD_STEPS[max(index - 1, 0)], form)
    if step == "review" and action == "create":
        try:
            with session.begin_nested():
                profile = service.create_profile(
                    session, settings, console.actor, _create_input(form)
                )
        except DomainError as exc:
            reraise_page_refusal(exc)
            return _wizard(request, session, console, _step_for(exc), form, exc)
        return done(
            BASE, f"Profile {profile.display_name} created; its token is ready under Tokens."
        )
    try:
        _dry_run(session, settings, console.actor, form)
    except DomainError as exc:
        reraise_page_refusal(exc)
        failed = _step_for(exc)
        shown = failed if WIZARD_STEPS.index(failed) <= index else step
        return _wizard(request, session, console, shown, form, exc)
    return _wizard(request, session, console, WIZARD_STEPS[min(index + 1, 2)], form)


# --- one profile: properties, Tokens --------------------------------------------------------


@router.get("/enrollment/aosp-userless/{profile_id}", response_class=HTMLResponse)
def profile_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    profile_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """A profile's properties."""
    profile = service.get_profile(session, console.actor, profile_id)
    tags = access.tags_of(session, EnrollmentProfile, [profile.id])[profile.id]
    return _page(
        request,
        console,
        "profile.html",
        profile=profile,
        state=_token_state(session, profile),
        tag_names=_tag_names(session, tags),
        tab="properties",
        notice=notice,
    )


@router.get("/enrollment/aosp-userless/{profile_id}/token", response_class=HTMLResponse)
def token_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    profile_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """Tokens: the QR code, the plain-text token and its expiry."""
    profile = service.get_profile(session, console.actor, profile_id)
    response = _page(
        request,
        console,
        "token.html",
        profile=profile,
        state=_token_state(session, profile),
        tab="token",
        notice=notice,
    )
    response.headers.update(NO_STORE)
    return response


@router.get("/enrollment/aosp-userless/{profile_id}/token/qr.png")
def token_qr(
    session: SessionDep, settings: SettingsDep, console: ConsoleDep, profile_id: str
) -> Response:
    """The QR code of the active token (it encodes the provisioning JSON)."""
    prov = service.active_provisioning(session, settings, console.actor, profile_id)
    return Response(provisioning.qr_png(prov.text), media_type="image/png", headers=NO_STORE)


@router.get("/enrollment/aosp-userless/{profile_id}/token/export")
def token_export(
    session: SessionDep, settings: SettingsDep, console: ConsoleDep, profile_id: str
) -> Response:
    """Token > Export: the provisioning JSON and expiry, downloaded as <profile name>.json."""
    profile = service.get_profile(session, console.actor, profile_id)
    prov = service.active_provisioning(session, settings, console.actor, profile_id)
    body = json.dumps(export_body(prov), indent=2, ensure_ascii=False) + "\n"
    headers = {**NO_STORE, "Content-Disposition": _attachment(f"{profile.display_name}.json")}
    return Response(body.encode(), media_type="application/json", headers=headers)


# --- Replace token, Revoke token -----------------------------------------------------------


def _replace_page(
    request: Request,
    session: Session,
    console: Console,
    profile: EnrollmentProfile,
    chosen: str | None = None,
    exc: DomainError | None = None,
) -> HTMLResponse:
    dates = _dates()
    return _page(
        request,
        console,
        "replace.html",
        status=exc.status if exc else 200,
        profile=profile,
        state=_token_state(session, profile),
        chosen=chosen or dates["default_date"],
        tab="token",
        **dates,
        **(_problem(exc, frozenset({"token_expiration"})) if exc else {}),
    )


@router.get("/enrollment/aosp-userless/{profile_id}/token/replace", response_class=HTMLResponse)
def replace_form(
    request: Request, session: SessionDep, console: ConsoleDep, profile_id: str
) -> HTMLResponse:
    """Token > Replace token: asks for the new expiration date."""
    profile = service.get_profile(session, console.actor, profile_id)
    return _replace_page(request, session, console, profile)


@router.post("/enrollment/aosp-userless/{profile_id}/token/replace", response_model=None)
def replace_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    profile_id: str,
    token_expiration: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Issue a new token until the end of the chosen day; the old QR stops enrolling."""
    console.actor.require(service.WRITE)
    profile = service.get_profile(session, console.actor, profile_id, service.WRITE)
    try:
        with session.begin_nested():
            expires = token_expiry(token_expiration.strip())
            service.replace_token(session, settings, console.actor, profile.id, expires)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _replace_page(request, session, console, profile, token_expiration, exc)
    return done(
        _profile_url(profile.id, "/token"),
        "Token replaced. The old QR code and exported JSON no longer enroll devices.",
    )


@router.get("/enrollment/aosp-userless/{profile_id}/token/revoke", response_class=HTMLResponse)
def revoke_form(
    request: Request, session: SessionDep, console: ConsoleDep, profile_id: str
) -> HTMLResponse:
    """Token > Revoke token: asks Yes or No."""
    profile = service.get_profile(session, console.actor, profile_id)
    return _page(
        request,
        console,
        "revoke.html",
        profile=profile,
        state=_token_state(session, profile),
        tab="token",
    )


@router.post("/enrollment/aosp-userless/{profile_id}/token/revoke")
def revoke_token(
    session: SessionDep,
    console: ConsoleFormDep,
    profile_id: str,
    answer: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Yes: expire the token now. No: back to Tokens, nothing changed."""
    console.actor.require(service.WRITE)
    if answer != "yes":
        return RedirectResponse(_profile_url(profile_id, "/token"), status_code=303)
    profile = service.get_profile(session, console.actor, profile_id, service.WRITE)
    had_token = _token_state(session, profile).active
    service.revoke_token(session, console.actor, profile.id)
    return done(
        _profile_url(profile.id, "/token"),
        "Token revoked. Devices already enrolled are not affected."
        if had_token
        else "There was no active token to revoke.",
    )


# --- edit and delete ------------------------------------------------------------------------


def _edit_page(
    request: Request,
    console: Console,
    profile: EnrollmentProfile,
    form: ProfileForm,
    confirm_rename: bool = False,
    exc: DomainError | None = None,
) -> HTMLResponse:
    return _page(
        request,
        console,
        "edit.html",
        status=exc.status if exc else 200,
        profile=profile,
        form=form,
        confirm_rename=confirm_rename,
        tab="properties",
        **(_problem(exc, BASICS_FIELDS) if exc else {}),
    )


@router.get("/enrollment/aosp-userless/{profile_id}/edit", response_class=HTMLResponse)
def edit_form(
    request: Request, session: SessionDep, console: ConsoleDep, profile_id: str
) -> HTMLResponse:
    """Edit a profile's properties."""
    profile = service.get_profile(session, console.actor, profile_id)
    return _edit_page(request, console, profile, _form_of(profile))


@router.post("/enrollment/aosp-userless/{profile_id}/edit", response_model=None)
def edit_profile(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    profile_id: str,
    form: FormDep,
    confirm_rename: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Save the properties. A rename must be confirmed: it renames the profile's devices'
    enrollmentProfileName, which can move them between dynamic groups."""
    console.actor.require(service.WRITE)
    profile = service.get_profile(session, console.actor, profile_id, service.WRITE)
    try:
        data = _update_input(profile, form)
        if "display_name" in data.model_fields_set and not confirm_rename:
            raise BadRequest(
                f"Renaming changes the enrollmentProfileName of this profile's "
                f"{profile.enrolled_device_count} enrolled device(s), which can move them "
                "between dynamic groups. Tick the confirmation below the name to rename.",
                target="displayName",
            )
        if not data.model_fields_set:
            return done(_profile_url(profile.id), "Nothing changed.")
        with session.begin_nested():
            service.update_profile(session, settings, console.actor, profile.id, data)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _edit_page(request, console, profile, form, bool(confirm_rename), exc)
    return done(_profile_url(profile.id), "Profile saved.")


@router.get("/enrollment/aosp-userless/{profile_id}/delete", response_class=HTMLResponse)
def delete_form(
    request: Request, session: SessionDep, console: ConsoleDep, profile_id: str
) -> HTMLResponse:
    """Delete a profile: asks Yes or No."""
    profile = service.get_profile(session, console.actor, profile_id)
    return _page(request, console, "delete.html", profile=profile, tab="properties")


@router.post("/enrollment/aosp-userless/{profile_id}/delete")
def delete_profile(
    session: SessionDep,
    console: ConsoleFormDep,
    profile_id: str,
    answer: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Yes: delete the profile and revoke its token; its devices stay enrolled."""
    console.actor.require(service.WRITE)
    if answer != "yes":
        return RedirectResponse(_profile_url(profile_id), status_code=303)
    profile = service.get_profile(session, console.actor, profile_id, service.WRITE)
    name, devices_left = profile.display_name, profile.enrolled_device_count
    service.delete_profile(session, console.actor, profile.id)
    return done(
        BASE,
        f"Profile {name} deleted and its token revoked; its {devices_left} enrolled device(s) "
        "stay enrolled.",
    )
