"""Console pages of device groups, after Intune's Groups blade: All groups, New group (Group
type Security, Group name, Membership type Assigned or Dynamic device, and for a dynamic group
"Add dynamic query": a simple rule builder or the rule's text), a group's Overview (its
properties and rule, pause and resume, Edit rule, Delete), its Members (add and remove for an
assigned group) and Validate rules (whether chosen devices match, and why).

Everything is plain HTML forms. The rule builder is rows of form fields: "Build rule" posts
them and the server writes the rule text into the text editor; "Validate" and "Save" parse the
text with the service's own check, so a bad rule comes back in place with its position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aospmdm.core.errors import BadRequest, DomainError, Forbidden
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.devices.pages import when
from aospmdm.groups import service
from aospmdm.groups.models import DeviceGroup, GroupMember
from aospmdm.groups.rules.properties import DEVICE_PROPERTIES, STRING_OPERATORS, PropertyType
from aospmdm.groups.schemas import Evaluate, GroupCreate, GroupUpdate
from aospmdm.tenant import access
from aospmdm.tenant.access import Actor
from aospmdm.tenant.deps import Console, ConsoleDep, ConsoleFormDep, SessionDep
from aospmdm.tenant.models import ScopeTag
from aospmdm.web.templating import done, render, reraise_page_refusal

router = APIRouter(prefix="/console/groups")
SECTION = "Groups"
BASE = "/console/groups"
DEVICES = "/console/devices"
BUILDER_ROWS = 5
MAX_VALIDATE = 20
PAGE_SIZE = 100
CHOICES = 200  # devices offered in a select or as checkboxes; others can be given by id

ASSIGNED = "assigned"
DYNAMIC = "dynamic"
MEMBERSHIP_TYPES = {ASSIGNED: "Assigned", DYNAMIC: "Dynamic device"}
PROPERTIES = sorted(DEVICE_PROPERTIES.values(), key=lambda p: p.name.lower())
OPERATORS = STRING_OPERATORS
JOINS = ("and", "or")

# The Graph property a service error names -> the console form field it belongs to.
FIELD_OF = {
    "displayName": "display_name",
    "description": "description",
    "membershipRule": "rule",
    "roleScopeTagIds": "scope_tags",
}
LABELS = {
    "displayName": "Group name",
    "description": "Group description",
    "membershipRule": "Rule",
    "roleScopeTagIds": "Scope tags",
}
_POSITION = re.compile(r"at position (\d+)\)\.?$")


# --- form state ---------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the rule builder: device.<property> -<operator> <value>."""

    prop: str = ""  # the property's name
    operator: str = "eq"
    value: str = ""
    join: str = "and"  # how it joins the rows above it (ignored on the first row)

    @property
    def used(self) -> bool:
        return bool(self.prop or self.value.strip())


def _rows(
    properties: list[str], operators: list[str], values: list[str], joins: list[str]
) -> list[Row]:
    def at(items: list[str], i: int, default: str) -> str:
        return items[i] if i < len(items) else default

    return [
        Row(
            prop=at(properties, i, ""),
            operator=at(operators, i, "eq"),
            value=at(values, i, ""),
            # The first row has no join field: joins[0] belongs to the second row.
            join=at(joins, i - 1, "and") if i else "and",
        )
        for i in range(BUILDER_ROWS)
    ]


def _blank_rows() -> list[Row]:
    return [Row() for _ in range(BUILDER_ROWS)]


@dataclass
class GroupForm:
    display_name: str = ""
    description: str = ""
    membership_type: str = ASSIGNED
    rule: str = ""
    rows: list[Row] = field(default_factory=_blank_rows)
    scope_tags: list[str] = field(default_factory=list)


_Text = Annotated[str, Form(max_length=4096)]
_Short = Annotated[str, Form(max_length=64)]
_List = Annotated[list[str] | None, Form(max_length=BUILDER_ROWS)]


def _text(value: str) -> str:
    """Browsers send a textarea's line breaks as CRLF."""
    return value.replace("\r\n", "\n")


def rule_form(
    rule: _Text = "",
    row_property: _List = None,
    row_operator: _List = None,
    row_value: Annotated[list[str] | None, Form(max_length=BUILDER_ROWS)] = None,
    row_join: _List = None,
) -> GroupForm:
    """The rule editor's fields (the builder's rows and the text)."""
    return GroupForm(
        rule=_text(rule),
        rows=_rows(row_property or [], row_operator or [], row_value or [], row_join or []),
    )


def group_form(
    editor: Annotated[GroupForm, Depends(rule_form)],
    display_name: _Text = "",
    description: _Text = "",
    membership_type: _Short = ASSIGNED,
    scope_tags: Annotated[list[str] | None, Form(max_length=1000)] = None,
) -> GroupForm:
    editor.display_name = display_name
    editor.description = _text(description)
    editor.membership_type = membership_type
    editor.scope_tags = [t for t in scope_tags or [] if t]
    return editor


RuleFormDep = Annotated[GroupForm, Depends(rule_form)]
GroupFormDep = Annotated[GroupForm, Depends(group_form)]
_Action = Annotated[str, Form(max_length=16)]


# --- the rule builder ------------------------------------------------------------------------


def quote_value(value: str) -> str:
    """A rule string literal: in double quotes, a double quote escaped with a backtick as Entra
    writes it. A value with a backtick goes in single quotes instead (a backtick before the
    closing double quote would read as an escape)."""
    if "`" in value:
        return "'" + value.replace("'", "''") + "'"
    return '"' + value.replace('"', '`"') + '"'


def row_text(row: Row, number: int) -> str:
    prop = DEVICE_PROPERTIES.get(row.prop.lower())
    target = f"builder-{number}"
    if prop is None:
        raise BadRequest(f"Row {number}: choose a property.", target=target)
    if row.operator not in OPERATORS:
        raise BadRequest(f"Row {number}: choose an operator.", target=target)
    value = row.value.strip()
    if row.operator in ("in", "notIn"):
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise BadRequest(
                f"Row {number}: enter one or more values, separated by commas.", target=target
            )
        literal = "[" + ", ".join(quote_value(v) for v in items) + "]"
    elif not value:
        raise BadRequest(f"Row {number}: enter a value.", target=target)
    elif prop.type is PropertyType.BOOL and value.lower() in ("true", "false"):
        literal = value.lower()
    elif row.operator in ("eq", "ne") and value.lower() == "null":
        literal = "null"
    else:
        literal = quote_value(value)
    return f"(device.{prop.name} -{row.operator} {literal})"


def build_rule(rows: list[Row]) -> str:
    """The rule text of the builder's rows: `(device.x -eq "v") and (device.y -ne "w")`."""
    parts: list[str] = []
    for number, row in enumerate(rows, start=1):
        if not row.used:
            continue
        text = row_text(row, number)
        if parts:
            join = row.join if row.join in JOINS else "and"
            parts.append(f" {join} ")
        parts.append(text)
    if not parts:
        raise BadRequest(
            "Fill in at least one row of the rule builder: a property, an operator and a value.",
            target="builder-1",
        )
    return "".join(parts)


def _rule_problem(exc: DomainError, text: str) -> dict[str, Any] | None:
    """The rule with its bad spot marked, when the error names a position in it."""
    m = _POSITION.search(exc.message)
    if exc.target != "membershipRule" or not m:
        return None
    pos = int(m.group(1))
    return {
        "position": pos,
        "before": text[:pos],
        "at": text[pos : pos + 1] or " ",
        "after": text[pos + 1 :],
    }


# --- helpers --------------------------------------------------------------------------------


def _page(
    request: Request, console: Console, name: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    ctx.setdefault("field_errors", {})
    return render(
        request,
        f"groups/{name}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        devices_base=DEVICES,
        can_write=console.actor.can(service.WRITE),
        membership_types=MEMBERSHIP_TYPES,
        properties=PROPERTIES,
        operators=OPERATORS,
        max_validate=MAX_VALIDATE,
        when=when,
        **ctx,
    )


def _group_url(group_id: str, rest: str = "") -> str:
    return f"{BASE}/{quote(group_id, safe='')}{rest}"


def _problem(exc: DomainError, text: str = "") -> dict[str, Any]:
    """Context that shows an error beside its field when the form has it, else on top."""
    name = FIELD_OF.get(exc.target or "") or (
        exc.target if (exc.target or "").startswith("builder-") else None
    )
    if name:
        ctx: dict[str, Any] = {"field_errors": {name: exc.message}, "error": None}
        if name == "rule":
            ctx["rule_error"] = _rule_problem(exc, text)
        return ctx
    return {"field_errors": {}, "error": exc.message}


def _invalid(exc: ValidationError) -> BadRequest:
    err = exc.errors()[0]
    prop = ".".join(str(p) for p in err["loc"])
    return BadRequest(f"{LABELS.get(prop, prop)}: {err['msg']}.", target=prop)


def _tag_names(session: Session, group_id: str) -> list[str]:
    ids = access.tags_of(session, DeviceGroup, [group_id])[group_id]
    if not ids:
        return []
    rows = session.execute(select(ScopeTag.id, ScopeTag.display_name).where(ScopeTag.id.in_(ids)))
    names: dict[str, str] = {tag_id: name for tag_id, name in rows}
    return [names.get(i, i) for i in ids]


def _visible_devices(actor: Actor) -> Any:
    """The devices the admin may see, or None without devices.read."""
    try:
        return devices.device_statement(actor)
    except Forbidden:
        return None


def _member_counts(session: Session, actor: Actor, group_ids: list[str]) -> dict[str, int] | None:
    """Members of each group that the admin may see (None: the admin cannot read devices)."""
    visible = _visible_devices(actor)
    if visible is None or not group_ids:
        return None if visible is None else {}
    ids = visible.with_only_columns(ManagedDevice.id).order_by(None)
    rows = session.execute(
        select(GroupMember.group_id, func.count())
        .where(GroupMember.group_id.in_(group_ids), GroupMember.device_id.in_(ids))
        .group_by(GroupMember.group_id)
    )
    return {gid: int(n) for gid, n in rows}


def _membership_type(group: DeviceGroup) -> str:
    return MEMBERSHIP_TYPES[DYNAMIC if group.is_dynamic else ASSIGNED]


def _check_rule(text: str) -> str:
    """The rule text, checked by the service (BadRequest with the position if invalid)."""
    service.checked_rule(text)
    return text


# --- All groups -------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def groups(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """All groups: name, membership type, members and rule processing state."""
    found = list(session.scalars(service.group_statement(console.actor)))
    counts = _member_counts(session, console.actor, [g.id for g in found])
    rows = [
        (g, _membership_type(g), None if counts is None else counts.get(g.id, 0)) for g in found
    ]
    return _page(request, console, "index.html", rows=rows, notice=notice)


# --- New group ------------------------------------------------------------------------------


def _new_page(
    request: Request,
    session: Session,
    console: Console,
    form: GroupForm,
    exc: DomainError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    ctx = _problem(exc, form.rule) if exc else {}
    return _page(
        request,
        console,
        "new.html",
        status=exc.status if exc else 200,
        form=form,
        tags=access.usable_tags(session, console.actor, service.WRITE),
        notice=notice,
        **ctx,
    )


@router.get("/new", response_class=HTMLResponse)
def new_form(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """New group: Group type, Group name, Group description, Membership type."""
    console.actor.require(service.WRITE)
    return _new_page(request, session, console, GroupForm())


def _create_input(form: GroupForm) -> GroupCreate:
    if form.membership_type not in MEMBERSHIP_TYPES:
        raise BadRequest("Choose the membership type: Assigned or Dynamic device.")
    dynamic = form.membership_type == DYNAMIC
    body: dict[str, Any] = {
        "displayName": form.display_name,
        "description": form.description,
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": ["DynamicMembership"] if dynamic else [],
        "roleScopeTagIds": form.scope_tags or None,
    }
    if dynamic:
        body["membershipRule"] = form.rule
    try:
        return GroupCreate.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _editor_action(form: GroupForm, action: str) -> str | None:
    """Build rule and Validate: the notice to show, or a BadRequest shown in place.
    Save with an empty text but filled rows builds the rule first. None: go on and save."""
    if action == "build":
        form.rule = build_rule(form.rows)
        _check_rule(form.rule)
        return "Rule built from the rows. Check it, then save."
    if action == "validate":
        _check_rule(form.rule)
        return "The rule is valid."
    if not form.rule.strip() and any(r.used for r in form.rows):
        form.rule = build_rule(form.rows)
    return None


@router.post("/new", response_model=None)
def create_group(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    form: GroupFormDep,
    action: _Action = "save",
) -> Response:
    """Build rule, Validate or Save (Create) a new group."""
    console.actor.require(service.WRITE)
    try:
        if action in ("build", "validate"):
            form.membership_type = DYNAMIC
        if form.membership_type == DYNAMIC:
            shown = _editor_action(form, action)
            if shown is not None:
                return _new_page(request, session, console, form, notice=shown)
        with session.begin_nested():
            group = service.create_group(session, console.actor, _create_input(form))
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _new_page(request, session, console, form, exc)
    return done(_group_url(group.id), f"Group {group.display_name} created.")


# --- one group: Overview ----------------------------------------------------------------------


@router.get("/{group_id}", response_class=HTMLResponse)
def group_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    group_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """A group's properties and rule; pause or resume its rule processing."""
    group = service.get_group(session, console.actor, group_id)
    counts = _member_counts(session, console.actor, [group.id])
    return _page(
        request,
        console,
        "group.html",
        group=group,
        tab="overview",
        membership_type=_membership_type(group),
        member_count=None if counts is None else counts.get(group.id, 0),
        tag_names=_tag_names(session, group.id),
        notice=notice,
    )


@router.post("/{group_id}/processing")
def set_processing(
    session: SessionDep,
    console: ConsoleFormDep,
    group_id: str,
    state: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Pause or resume a dynamic group's rule processing (resuming recomputes its members)."""
    console.actor.require(service.WRITE)
    if state not in ("On", "Paused"):
        raise BadRequest("The processing state is On or Paused.", target="state")
    group = service.get_group(session, console.actor, group_id, service.WRITE)
    if not group.is_dynamic:
        raise BadRequest("Assigned groups have no membership rule to pause.")
    data = GroupUpdate.model_validate({"membershipRuleProcessingState": state})
    service.update_group(session, console.actor, group.id, data)
    return done(
        _group_url(group.id),
        "Rule processing paused: members stay as they are until it is resumed."
        if state == "Paused"
        else "Rule processing resumed: members were recomputed.",
    )


# --- Edit rule --------------------------------------------------------------------------------


def _rule_page(
    request: Request,
    console: Console,
    group: DeviceGroup,
    form: GroupForm,
    exc: DomainError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    ctx = _problem(exc, form.rule) if exc else {}
    return _page(
        request,
        console,
        "rule.html",
        status=exc.status if exc else 200,
        group=group,
        tab="overview",
        form=form,
        notice=notice,
        **ctx,
    )


def _dynamic(group: DeviceGroup) -> None:
    if not group.is_dynamic:
        raise BadRequest(
            f"{group.display_name} is an assigned group: it has no membership rule. Add and "
            "remove its members under Members."
        )


@router.get("/{group_id}/rule", response_class=HTMLResponse)
def rule_form_page(
    request: Request, session: SessionDep, console: ConsoleDep, group_id: str
) -> HTMLResponse:
    """Edit rule: the builder and the text editor, holding the current rule."""
    console.actor.require(service.WRITE)
    group = service.get_group(session, console.actor, group_id, service.WRITE)
    _dynamic(group)
    return _rule_page(request, console, group, GroupForm(rule=group.membership_rule or ""))


@router.post("/{group_id}/rule", response_model=None)
def save_rule(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    group_id: str,
    form: RuleFormDep,
    action: _Action = "save",
) -> Response:
    """Build rule, Validate, or Save the new rule (the members are recomputed at once)."""
    console.actor.require(service.WRITE)
    group = service.get_group(session, console.actor, group_id, service.WRITE)
    _dynamic(group)
    try:
        shown = _editor_action(form, action)
        if shown is not None:
            return _rule_page(request, console, group, form, notice=shown)
        try:
            data = GroupUpdate.model_validate({"membershipRule": form.rule})
        except ValidationError as exc:
            raise _invalid(exc) from None
        with session.begin_nested():
            service.update_group(session, console.actor, group.id, data)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _rule_page(request, console, group, form, exc)
    return done(_group_url(group.id), "Rule saved; the members were recomputed.")


# --- Members ----------------------------------------------------------------------------------


def _members_url(group_id: str, skip: int) -> str:
    return _group_url(group_id, "/members") + (f"?{urlencode({'skip': skip})}" if skip else "")


def _members(
    request: Request,
    session: Session,
    console: Console,
    group: DeviceGroup,
    skip: int = 0,
    notice: str | None = None,
    exc: DomainError | None = None,
    device_ref: str = "",
) -> HTMLResponse:
    stmt = service.members_statement(session, console.actor, group.id)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.offset(skip).limit(PAGE_SIZE)))
    choices: list[ManagedDevice] = []
    if not group.is_dynamic and console.actor.can(service.WRITE):
        members = select(GroupMember.device_id).where(GroupMember.group_id == group.id)
        choices = list(
            session.scalars(
                devices.device_statement(console.actor)
                .where(ManagedDevice.id.not_in(members))
                .limit(CHOICES)
            )
        )
    return _page(
        request,
        console,
        "members.html",
        status=exc.status if exc else 200,
        group=group,
        tab="members",
        rows=rows,
        total=total,
        first=skip + 1 if rows else 0,
        last=skip + len(rows),
        previous_url=_members_url(group.id, max(skip - PAGE_SIZE, 0)) if skip else None,
        next_url=_members_url(group.id, skip + PAGE_SIZE) if skip + PAGE_SIZE < total else None,
        choices=choices,
        device_ref=device_ref,
        notice=notice,
        field_errors={"device": exc.message} if exc else {},
    )


@router.get("/{group_id}/members", response_class=HTMLResponse)
def members_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    group_id: str,
    skip: Annotated[int, Query(ge=0)] = 0,
    notice: str | None = None,
) -> HTMLResponse:
    """Members: the group's devices the admin may see, 100 a page; for an assigned group,
    Add members and Remove."""
    group = service.get_group(session, console.actor, group_id)
    return _members(request, session, console, group, skip, notice)


@router.post("/{group_id}/members/add", response_model=None)
def add_member(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    group_id: str,
    device_id: Annotated[str, Form(max_length=64)] = "",
    device_ref: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Add a device (chosen from the list, or given by id) to an assigned group."""
    console.actor.require(service.WRITE)
    group = service.get_group(session, console.actor, group_id, service.WRITE)
    ref = device_ref.strip()
    try:
        chosen = (service.device_id_of_ref(ref) if "/" in ref else ref) or device_id.strip()
        if not chosen:
            raise BadRequest("Choose a device, or enter its id.", target="device")
        with session.begin_nested():
            service.add_member(session, console.actor, group.id, chosen)
    except DomainError as exc:
        if exc.status == 403:
            raise
        return _members(request, session, console, group, exc=exc, device_ref=device_ref)
    name = session.scalar(select(ManagedDevice.device_name).where(ManagedDevice.id == chosen))
    return done(_group_url(group.id, "/members"), f"{name} added to {group.display_name}.")


@router.post("/{group_id}/members/{device_id}/remove")
def remove_member(
    session: SessionDep, console: ConsoleFormDep, group_id: str, device_id: str
) -> Response:
    """Remove a device from an assigned group (the device itself is untouched)."""
    console.actor.require(service.WRITE)
    group = service.get_group(session, console.actor, group_id, service.WRITE)
    name = session.scalar(select(ManagedDevice.device_name).where(ManagedDevice.id == device_id))
    service.remove_member(session, console.actor, group.id, device_id)
    return done(
        _group_url(group.id, "/members"), f"{name or device_id} removed from {group.display_name}."
    )


# --- Validate rules ---------------------------------------------------------------------------


@dataclass
class Check:
    """One device's answer on the Validate rules tab."""

    device_id: str
    device: ManagedDevice | None = None
    matches: bool | None = None
    details: dict[str, Any] | None = None
    error: str | None = None


_IDS = re.compile(r"[\s,;]+")


@router.get("/{group_id}/validate", response_class=HTMLResponse)
def validate_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    group_id: str,
    device: Annotated[list[str] | None, Query(max_length=1000)] = None,
    ids: Annotated[str, Query(max_length=8192)] = "",
    rule: Annotated[str | None, Query(max_length=4096)] = None,
    run: Annotated[str, Query(max_length=8)] = "",
) -> HTMLResponse:
    """Validate rules: choose up to 20 devices and see whether each matches the rule (the
    group's, or a draft), with each expression's result. Reading only: a GET form."""
    group = service.get_group(session, console.actor, group_id)
    _dynamic(group)
    text = _text(rule) if rule is not None else group.membership_rule or ""
    visible = _visible_devices(console.actor)
    choices = list(session.scalars(visible.limit(CHOICES))) if visible is not None else []
    chosen: list[str] = []
    for d in [*(device or []), *_IDS.split(ids)]:
        d = d.strip()
        if d and d not in chosen:
            chosen.append(d)
    ctx: dict[str, Any] = {}
    checks: list[Check] = []
    status = 200
    try:
        if run:
            if not chosen:
                raise BadRequest("Choose at least one device to validate the rule against.")
            if len(chosen) > MAX_VALIDATE:
                raise BadRequest(
                    f"Choose at most {MAX_VALIDATE} devices: {len(chosen)} were chosen.",
                    target="devices",
                )
            _check_rule(text)
            checks = [_check(session, console.actor, d, text) for d in chosen]
    except DomainError as exc:
        reraise_page_refusal(exc)
        status = exc.status
        ctx = _problem(exc, text)
    return _page(
        request,
        console,
        "validate.html",
        status=status,
        group=group,
        tab="validate",
        rule=text,
        choices=choices,
        chosen=chosen,
        ids=ids,
        checks=checks,
        **ctx,
    )


def _check(session: Session, actor: Actor, device_id: str, text: str) -> Check:
    check = Check(device_id)
    try:
        result = service.evaluate(
            session, actor, Evaluate(member_id=device_id, membership_rule=text)
        )
    except ValidationError as exc:
        check.error = str(exc.errors()[0]["msg"])
        return check
    except DomainError as exc:
        check.error = exc.message
        return check
    check.device = session.get(ManagedDevice, device_id)
    check.matches = bool(result["membershipRuleEvaluationResult"])
    check.details = result["membershipRuleEvaluationDetails"]
    return check


# --- Delete -----------------------------------------------------------------------------------


@router.get("/{group_id}/delete", response_class=HTMLResponse)
def delete_form(
    request: Request, session: SessionDep, console: ConsoleDep, group_id: str
) -> HTMLResponse:
    """Delete a group: asks Yes or No."""
    group = service.get_group(session, console.actor, group_id)
    return _page(request, console, "delete.html", group=group, tab="overview")


@router.post("/{group_id}/delete")
def delete_group(
    session: SessionDep,
    console: ConsoleFormDep,
    group_id: str,
    answer: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Yes: delete the group (its devices are untouched). No: back to the group."""
    console.actor.require(service.WRITE)
    if answer != "yes":
        return RedirectResponse(_group_url(group_id), status_code=303)
    group = service.get_group(session, console.actor, group_id, service.WRITE)
    name = group.display_name
    service.delete_group(session, console.actor, group.id)
    return done(BASE, f"Group {name} deleted. Its devices are untouched.")
