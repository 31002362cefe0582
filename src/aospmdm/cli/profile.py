"""aospmdm profile create / list / show / delete: enrollment profiles (Android AOSP,
corporate-owned userless). PROFILE is a profile's name or its id."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from aospmdm.cli.common import DataDir, fail, operator_session, settings_for
from aospmdm.core import clock
from aospmdm.core.errors import NotFound
from aospmdm.enrollment import service
from aospmdm.enrollment.models import EnrollmentProfile, EnrollmentToken
from aospmdm.enrollment.schemas import ProfileCreate
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from aospmdm.tenant.models import ScopeTag

app = typer.Typer(
    no_args_is_help=True,
    help="Enrollment profiles (Android AOSP, corporate-owned userless devices).",
)

MAX_DAYS = 90
ProfileArg = Annotated[str, typer.Argument(help="The profile's name or id.", show_default=False)]

# The option that sets each field of ProfileCreate, to name it in an error.
_OPTION_OF = {
    "displayName": "NAME",
    "description": "--description",
    "wifiSsid": "--ssid",
    "wifiPassword": "--wifi-password",
    "deviceNameTemplate": "--name-template",
    "tokenUsageLimit": "--usage-limit",
}


class WifiType(StrEnum):
    none = "none"
    wpa = "wpa"
    wep = "wep"


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        fail(f"--days must be between 1 and {MAX_DAYS}: a token is valid for at most 90 days.")
    return days


def find(session: Session, profile: str) -> EnrollmentProfile:
    """The profile named ``profile`` (any case), or with that id."""
    try:
        return service.find_profile(session, access.cli_actor(), profile)
    except NotFound:
        fail(
            f"no enrollment profile is named '{profile}' or has that id (see aospmdm profile list)."
        )


def token_state(token: EnrollmentToken | None) -> str:
    """The current token in a few words: whether it can enroll, and until when."""
    if token is None:
        return "no token"
    if token.revoked_at is not None:
        return f"revoked {clock.iso(token.revoked_at)}"
    if not service.token_is_active(token):
        return f"expired {clock.iso(token.expires_at)}"
    return f"expires {clock.iso(token.expires_at)}"


def _validated(body: dict[str, Any]) -> ProfileCreate:
    try:
        return ProfileCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "input"
        fail(f"{_OPTION_OF.get(field, field)}: {first['msg']}")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The profile name (dynamic groups match it).")],
    description: Annotated[str, typer.Option(help="What the profile is for.")] = "",
    ssid: Annotated[
        str | None, typer.Option(help="The Wi-Fi network devices join to enroll.")
    ] = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="The network is hidden.")] = False,
    wifi_type: Annotated[
        WifiType, typer.Option("--wifi-type", help="The network's security.")
    ] = WifiType.none,
    wifi_password: Annotated[
        str | None,
        typer.Option(
            "--wifi-password",
            envvar="AOSPMDM_WIFI_PASSWORD",
            show_envvar=True,
            help="The pre-shared key of a wpa or wep network (it goes into the QR code).",
        ),
    ] = None,
    no_wifi: Annotated[
        bool, typer.Option("--no-wifi", help="Configure no Wi-Fi (devices on Ethernet).")
    ] = False,
    name_template: Annotated[
        str | None,
        typer.Option(
            "--name-template",
            help="Device names, e.g. 'Plant3-{{SERIALLAST4DIGITS}}' (default "
            "AndroidAOSP_<date>_<time>).",
        ),
    ] = None,
    usage_limit: Annotated[
        int | None,
        typer.Option(
            "--usage-limit", help="How many devices one token may enroll (default: no cap)."
        ),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", help="Issue the first token now, valid this many days (1-90).")
    ] = MAX_DAYS,
    no_token: Annotated[
        bool, typer.Option("--no-token", help="Issue no token yet (see aospmdm token replace).")
    ] = False,
    scope_tag: Annotated[
        list[str] | None,
        typer.Option("--scope-tag", help="Scope the profile to this tag (repeatable)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a profile and, unless --no-token, its first token. Prints the profile's id."""
    if no_wifi and (ssid is not None or hidden or wifi_type != WifiType.none):
        fail("--no-wifi cannot be combined with --ssid, --hidden or --wifi-type.")
    if not no_wifi and not ssid:
        fail(
            "give the network devices join to enroll with --ssid (RealWear devices have no "
            "other way to get online), or --no-wifi."
        )
    if wifi_type == WifiType.none and wifi_password:
        fail(
            "a pre-shared key was given (--wifi-password or AOSPMDM_WIFI_PASSWORD) for a "
            "network without security; add --wifi-type wpa or --wifi-type wep."
        )
    if not no_token:
        check_days(days)
    body: dict[str, Any] = {
        "displayName": name,
        "description": description,
        "configureWifi": not no_wifi,
        "wifiHidden": hidden,
        "wifiSecurityType": wifi_type.value,
    }
    optional = {
        "wifiSsid": ssid,
        "wifiPassword": wifi_password,
        "deviceNameTemplate": name_template,
        "tokenUsageLimit": usage_limit,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if not no_token:
        body["tokenExpirationDateTime"] = clock.iso(clock.now() + timedelta(days=days))
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        if scope_tag:
            body["roleScopeTagIds"] = [tenant.scope_tag_by_name(session, t).id for t in scope_tag]
        data = _validated(body)
        profile = service.create_profile(session, settings, access.cli_actor(), data)
        token = service.current_tokens(session, [profile]).get(profile.id)
        typer.echo(f"created profile {profile.display_name}: {profile.id}")
        if token is None:
            typer.echo(f"no token yet: aospmdm token replace {profile.id} --days N")
        else:
            typer.echo(f"token {token.value} expires {clock.iso(token.expires_at)}")


@app.command("list")
def list_profiles(data_dir: DataDir = None) -> None:
    """The profiles, with each one's token expiry and enrolled-device count."""
    with operator_session(data_dir) as session:
        profiles = list(session.scalars(service.profile_statement(access.cli_actor())))
        tokens = service.current_tokens(session, profiles)
        if not profiles:
            typer.echo("no enrollment profiles")
            return
        rows = [("NAME", "ID", "TOKEN", "ENROLLED")] + [
            (p.display_name, p.id, token_state(tokens.get(p.id)), str(p.enrolled_device_count))
            for p in profiles
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[3]]))


def _wifi_line(p: EnrollmentProfile) -> str:
    if not p.configure_wifi:
        return "not configured"
    parts = [f'"{p.wifi_ssid}"', p.wifi_security_type.upper()]
    if p.wifi_hidden:
        parts.append("hidden")
    if p.wifi_security_type != "none":
        parts.append("key set" if p.wifi_password_encrypted else "no key")
    return ", ".join(parts)


@app.command("show")
def show(profile: ProfileArg, data_dir: DataDir = None) -> None:
    """A profile's properties and its token (never the Wi-Fi key)."""
    with operator_session(data_dir) as session:
        p = find(session, profile)
        token = service.current_tokens(session, [p]).get(p.id)
        tag_ids = access.tags_of(session, EnrollmentProfile, [p.id])[p.id]
        tag_names = {
            tag_id: name
            for tag_id, name in session.execute(
                select(ScopeTag.id, ScopeTag.display_name).where(ScopeTag.id.in_(tag_ids))
            )
        }
        limit = p.token_usage_limit
        lines: list[tuple[str, Any]] = [
            ("name", p.display_name),
            ("id", p.id),
            ("description", p.description),
            ("enrollment mode", p.enrollment_mode),
            ("scope tags", ", ".join(f"{tag_names.get(t, t)} ({t})" for t in tag_ids)),
            ("wi-fi", _wifi_line(p)),
            ("device name template", p.device_name_template or "AndroidAOSP_<date>_<time>"),
            ("token usage limit", "unlimited" if limit is None else f"{limit} devices"),
            ("enrolled devices", p.enrolled_device_count),
            ("created", clock.iso(p.created_at)),
            ("modified", clock.iso(p.last_modified_at)),
            ("token", token.value if token else "none"),
            ("token state", token_state(token)),
        ]
        if token is not None:
            lines += [
                ("token created", clock.iso(token.created_at)),
                ("token expires", clock.iso(token.expires_at)),
                ("token used by", f"{token.usage_count} devices"),
            ]
    width = max(len(label) for label, _ in lines) + 1
    for label, value in lines:
        typer.echo(f"{label + ':':<{width}} {value}")
    if token is not None:
        typer.echo(
            "\nThe token above is a reference: it cannot enroll a device. Enroll by scanning "
            "the QR code (aospmdm token qr) or with the exported JSON (aospmdm token export)."
        )


@app.command("delete")
def delete(
    profile: ProfileArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a profile: its token is revoked; devices enrolled with it stay enrolled."""
    with operator_session(data_dir) as session:
        found = find(session, profile)
        profile_id, name = found.id, found.display_name
    if not yes:
        typer.confirm(
            f"Delete profile '{name}' ({profile_id})? Its token is revoked, so its QR code "
            "stops enrolling; devices enrolled with it stay enrolled.",
            abort=True,
        )
    with operator_session(data_dir) as session:
        service.delete_profile(session, access.cli_actor(), profile_id)
    typer.echo(f"deleted profile {name}: {profile_id}")
