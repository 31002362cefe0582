"""Console pages of policies, after Intune's Devices > Configuration and Devices > Compliance
blades: the lists with each policy's device status counts; the create wizards for device
restrictions, Wi-Fi profiles and compliance policies (Basics, the settings grouped by section,
Actions for noncompliance, Scope tags, Assignments, Review + create); a policy's properties,
Edit, Assignments, Delete and Device status (per device, and per setting for one device); a
device's Compliance tab; the fleet compliance dashboard with the retire list; and the
tenant's Compliance policy settings.

Everything is plain HTML forms. The wizard posts every earlier answer back in hidden fields,
and each Next runs the real create (and assign) in a savepoint that is rolled back, so a step
shows the service's own message next to the field it names. Create runs both for real, in the
request's one transaction.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.errors import BadRequest, DomainError, Forbidden, NotFound
from aospmdm.devices import service as devices
from aospmdm.devices.pages import when, words
from aospmdm.groups import service as groups
from aospmdm.groups.models import DeviceGroup
from aospmdm.policies import evaluation, service
from aospmdm.policies.models import (
    COMPLIANCE,
    RESTRICTIONS,
    WIFI,
    DevicePolicyState,
    Policy,
)
from aospmdm.policies.schemas import (
    COMPLIANCE_SETTINGS,
    RESTRICTION_SETTINGS,
    Assign,
    PolicyBase,
    Setting,
    SettingsUpdate,
)
from aospmdm.tenant import access
from aospmdm.tenant.access import Actor
from aospmdm.tenant.deps import Console, ConsoleDep, ConsoleFormDep, SessionDep, SettingsDep
from aospmdm.tenant.models import ScopeTag
from aospmdm.web.templating import done, render, reraise_page_refusal

router = APIRouter(prefix="/console")
SECTION = "Policies"
BASE = "/console/policies"
CONFIGURATION = f"{BASE}/configuration"
COMPLIANCE_LIST = f"{BASE}/compliance"
DEVICES = "/console/devices"
ALL_KINDS = (*service.CONFIGURATIONS, *service.COMPLIANCES)
NO_STORE = {"Cache-Control": "no-store"}  # the wizard carries a Wi-Fi key in hidden fields
MAX_VALUE = 4096  # longest form value taken; the schemas' exact limits give the messages
TOP = 10  # rows in each "most" table of the dashboard

KIND_LABELS = {RESTRICTIONS: "Device restrictions", WIFI: "Wi-Fi", COMPLIANCE: "Compliance"}
NOT_CONFIGURED = "Not configured"

# Graph's complianceStatus as the console says it. A configuration that is `compliant` was
# applied: Intune calls that "Succeeded".
CONFIGURATION_STATUS = {
    "compliant": "Succeeded",
    "nonCompliant": "Not compliant",
    "error": "Error",
    "conflict": "Conflict",
    "notApplicable": "Not applicable",
    "unknown": "Pending",
}
COMPLIANCE_STATUS = CONFIGURATION_STATUS | {"compliant": "Compliant"}
IN_GRACE = "In grace period"
FAILED_STATES = ("nonCompliant", "error", "conflict")
CONFIGURATION_COLUMNS = ("Succeeded", "Error", "Conflict", "Not applicable", "Pending")
COMPLIANCE_COLUMNS = ("Compliant", IN_GRACE, "Not compliant", "Error", "Pending")
DEVICE_STATES = {
    "compliant": "Compliant",
    "noncompliant": "Not compliant",
    "inGracePeriod": IN_GRACE,
    "unknown": "Not evaluated",
}


# --- the settings as the forms show them ------------------------------------------------------

FieldKind = Literal["bool", "int", "choice", "text", "check", "password", "list"]


@dataclass(frozen=True)
class FormSetting:
    """One setting's form field: its Graph name is the field's name."""

    name: str
    label: str
    section: str
    kind: FieldKind
    options: tuple[tuple[str, str], ...] = ()  # (value, label); "" is "Not configured"
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""
    hint: str = ""
    placeholder: str = ""
    # The field counts only while another field has one of these values.
    applies: tuple[str, tuple[str, ...]] | None = None

    def shown(self, raw: str) -> str:
        """The value as the review and the properties show it."""
        if self.kind == "check":
            return "Yes" if raw else "No"
        if not raw:
            return NOT_CONFIGURED
        if self.options:
            return dict(self.options).get(raw, raw)
        if self.kind == "int" and self.unit:
            return f"{raw} {self.unit}"
        return raw

    @property
    def range_hint(self) -> str:
        if self.minimum is None or self.maximum is None:
            return ""
        return f"{self.minimum} to {self.maximum}{' ' + self.unit if self.unit else ''}."


PASSWORD_TYPE_LABELS = {
    "deviceDefault": "Device default",
    "numeric": "Numeric",
    "numericComplex": "Numeric complex",
}
# Each yes/no setting's words: (true, false). Compliance only checks a true value.
BOOL_WORDS: dict[str, tuple[str, str | None]] = {
    "securityAllowDebuggingFeatures": ("Allow", "Block"),
    "securityBlockJailbrokenDevices": ("Block", None),
    "passwordRequired": ("Require", None),
    "storageRequireEncryption": ("Require", None),
}
HINTS = {
    "passwordRequiredType": "Android (AOSP) devices support Device default, Numeric and Numeric "
    "complex only.",
    "osMinimumVersion": "An Android version such as 11 or 12.1.",
    "osMaximumVersion": "An Android version such as 13.",
    "minAndroidSecurityPatchLevel": "A date such as 2024-01-01.",
    "securityAllowDebuggingFeatures": "Block keeps developer options and USB debugging off.",
}


def _from_catalog(s: Setting) -> FormSetting:
    options: tuple[tuple[str, str], ...] = ()
    if s.kind == "bool":
        yes, no = BOOL_WORDS.get(s.name, ("Block", "Allow"))
        options = (("", NOT_CONFIGURED), ("true", yes)) + ((("false", no),) if no else ())
    elif s.kind == "choice":
        options = (("", NOT_CONFIGURED), *((c, PASSWORD_TYPE_LABELS.get(c, c)) for c in s.choices))
    return FormSetting(
        s.name,
        s.label,
        s.section,
        s.kind,
        options=options,
        minimum=s.minimum,
        maximum=s.maximum,
        unit=s.unit,
        hint=HINTS.get(s.name, ""),
        placeholder=NOT_CONFIGURED,
    )


_MANUAL = ("proxySettings", ("manual",))
WIFI_FIELDS = (
    FormSetting(
        "networkName",
        "Network name",
        "Wi-Fi",
        "text",
        hint="The name devices show for the network; the SSID when empty.",
    ),
    FormSetting("ssid", "SSID", "Wi-Fi", "text", hint="The network's name as broadcast."),
    FormSetting("connectAutomatically", "Connect automatically", "Wi-Fi", "check"),
    FormSetting(
        "connectWhenNetworkNameIsHidden",
        "Hidden network",
        "Wi-Fi",
        "check",
        hint="Connect even when the network does not broadcast its SSID.",
    ),
    FormSetting(
        "wiFiSecurityType",
        "Wi-Fi type",
        "Wi-Fi",
        "choice",
        options=(
            ("open", "Open (no authentication)"),
            ("wep", "WEP-Pre-shared key"),
            ("wpaPersonal", "WPA-Pre-shared key"),
        ),
    ),
    FormSetting(
        "preSharedKey",
        "Pre-shared key",
        "Wi-Fi",
        "password",
        hint="WEP and WPA only. WPA: 8 to 63 characters, or 64 hexadecimal digits. WEP: 5 or "
        "13 characters, or 10 or 26 hexadecimal digits.",
        applies=("wiFiSecurityType", ("wep", "wpaPersonal")),
    ),
    FormSetting(
        "proxySettings",
        "Proxy settings",
        "Proxy",
        "choice",
        options=(("none", "None"), ("manual", "Manual"), ("automatic", "Automatic")),
    ),
    FormSetting(
        "proxyManualAddress",
        "Proxy server address",
        "Proxy",
        "text",
        hint="Manual proxy only: a host name or IP address.",
        applies=_MANUAL,
    ),
    FormSetting(
        "proxyManualPort",
        "Port number",
        "Proxy",
        "int",
        minimum=1,
        maximum=65535,
        hint="Manual proxy only.",
        applies=_MANUAL,
    ),
    FormSetting(
        "proxyExclusionList",
        "Exclusion list",
        "Proxy",
        "list",
        hint="Manual proxy only: host names that bypass the proxy, separated by semicolons.",
        applies=_MANUAL,
    ),
    FormSetting(
        "proxyAutomaticConfigurationUrl",
        "Proxy server URL",
        "Proxy",
        "text",
        hint="Automatic proxy only: the http(s) URL of the PAC file.",
        applies=("proxySettings", ("automatic",)),
    ),
)
FORM_SETTINGS: dict[str, tuple[FormSetting, ...]] = {
    RESTRICTIONS: tuple(_from_catalog(s) for s in RESTRICTION_SETTINGS),
    WIFI: WIFI_FIELDS,
    COMPLIANCE: tuple(_from_catalog(s) for s in COMPLIANCE_SETTINGS),
}
WIFI_DEFAULTS = {"wiFiSecurityType": "open", "proxySettings": "none"}
ALL_SETTING_NAMES = frozenset(f.name for fields in FORM_SETTINGS.values() for f in fields)
# Settings in a device's per-setting states that no form holds.
EXTRA_SETTING_LABELS = {
    "isActive": "Is active",
    "hasCompliancePolicyAssigned": "Has a compliance policy assigned",
}


def sections(kind: str) -> list[tuple[str, list[FormSetting]]]:
    """The kind's settings grouped by section, in catalog order."""
    out: dict[str, list[FormSetting]] = {}
    for f in FORM_SETTINGS[kind]:
        out.setdefault(f.section, []).append(f)
    return list(out.items())


def applies(f: FormSetting, values: dict[str, str]) -> bool:
    if f.applies is None:
        return True
    other, wanted = f.applies
    return values.get(other, "") in wanted


def setting_label(kind: str, name: str) -> str:
    for f in FORM_SETTINGS.get(kind, ()):
        if f.name == name:
            return f.label
    return EXTRA_SETTING_LABELS.get(name, name)


# --- the actions for noncompliance ------------------------------------------------------------

# Form field prefix -> Graph actionType, in the order the console writes them.
ACTIONS = (
    ("block", "block"),
    ("notify", "notification"),
    ("lock", "remoteLock"),
    ("retire", "retire"),
)
ACTION_LABELS = {
    "block": "Mark device noncompliant",
    "notification": "Send email to the addresses below",
    "remoteLock": "Remotely lock the noncompliant device",
    "retire": "Add device to retire list",
}
ACTION_FIELDS = frozenset(
    {"block_hours", "notify_hours", "notify_emails", "lock_hours", "retire_hours"}
)


# --- form state -------------------------------------------------------------------------------


@dataclass
class PolicyForm:
    """What the policy forms hold, as typed (the wizard carries it between steps). ``values``
    holds each setting's text by Graph name; "" is not configured."""

    display_name: str = ""
    description: str = ""
    values: dict[str, str] = field(default_factory=dict)
    block_hours: str = "0"
    notify: bool = False
    notify_hours: str = "0"
    notify_emails: str = ""
    lock: bool = False
    lock_hours: str = "0"
    retire: bool = False
    retire_hours: str = "0"
    scope_tags: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    def action_on(self, prefix: str) -> bool:
        return prefix == "block" or bool(getattr(self, prefix))

    def action_order(self) -> list[str]:
        """The prefixes of the actions the form schedules, in the order they are sent."""
        return [p for p, _ in ACTIONS if self.action_on(p)]


def _blank(kind: str) -> PolicyForm:
    return PolicyForm(values=dict(WIFI_DEFAULTS) if kind == WIFI else {})


async def policy_form(request: Request) -> PolicyForm:
    """Every field of the policy forms (their names come from the settings catalog)."""
    data = await request.form()

    def one(name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str):
            return ""
        if len(value) > MAX_VALUE:
            raise BadRequest(f"The field {name} is too long.", target=name)
        return value.replace("\r\n", "\n")  # browsers send a textarea's breaks as CRLF

    def many(name: str) -> list[str]:
        return list(dict.fromkeys(v for v in data.getlist(name) if isinstance(v, str) and v))

    return PolicyForm(
        display_name=one("display_name"),
        description=one("description"),
        values={name: one(name) for name in sorted(ALL_SETTING_NAMES) if name in data},
        block_hours=one("block_hours"),
        notify=bool(one("notify")),
        notify_hours=one("notify_hours"),
        notify_emails=one("notify_emails"),
        lock=bool(one("lock")),
        lock_hours=one("lock_hours"),
        retire=bool(one("retire")),
        retire_hours=one("retire_hours"),
        scope_tags=many("scope_tags")[:1000],
        include=many("include")[:200],
        exclude=many("exclude")[:200],
    )


PolicyFormDep = Annotated[PolicyForm, Depends(policy_form)]
_Step = Annotated[str, Form(max_length=16)]


def _raw(value: Any, f: FormSetting) -> str:
    """A stored setting as its form field's text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        if f.kind == "check":
            return "true" if value else ""
        if not value and len(f.options) < 3:
            return ""  # a compliance check of a false value checks nothing
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def form_of(policy: Policy, tags: list[str] | None = None) -> PolicyForm:
    """The forms' view of a stored policy (the Wi-Fi key is never read back)."""
    form = _blank(policy.kind)
    for f in FORM_SETTINGS[policy.kind]:
        if f.kind != "password" and f.name in policy.settings:
            form.values[f.name] = _raw(policy.settings[f.name], f)
    if policy.kind == COMPLIANCE:
        for prefix, action_type in ACTIONS:
            found = next(
                (a for a in policy.scheduled_actions if a["actionType"] == action_type), None
            )
            if found is None:
                continue
            setattr(form, f"{prefix}_hours", str(found.get("gracePeriodHours") or 0))
            if prefix != "block":
                setattr(form, prefix, True)
            if prefix == "notify":
                form.notify_emails = ", ".join(found.get("notificationMessageCCList") or [])
    form.display_name = policy.display_name
    form.description = policy.description
    form.scope_tags = list(tags or [])
    return form


# --- from the form to the service's inputs ----------------------------------------------------

_SPLIT = re.compile(r"[;,\n]+")
_EMAILS = re.compile(r"[;,\s]+")


def _parsed(f: FormSetting, text: str) -> Any:
    """A field's text as the setting's value (None: not configured)."""
    raw = text if f.kind == "password" else text.strip()
    if f.kind == "check":
        return raw in ("true", "on")
    if raw == "":
        return None
    if f.kind == "bool":
        if raw not in ("true", "false"):
            raise BadRequest(f"{f.label}: choose one of the offered values.", target=f.name)
        return raw == "true"
    if f.kind == "int":
        try:
            return int(raw)
        except ValueError:
            span = f" from {f.minimum} to {f.maximum}" if f.minimum is not None else ""
            raise BadRequest(
                f"{f.label}: '{raw}' is not a whole number; enter one{span}, or leave it empty "
                "for not configured.",
                target=f.name,
            ) from None
    if f.kind == "list":
        return [item.strip() for item in _SPLIT.split(raw) if item.strip()]
    return raw


def settings_body(kind: str, form: PolicyForm, update: bool = False) -> dict[str, Any]:
    """The settings in Graph's names. A create leaves out what is not configured; an update
    sends it as null, which clears it."""
    body: dict[str, Any] = {}
    for f in FORM_SETTINGS[kind]:
        text = form.values.get(f.name, "")
        if not applies(f, form.values):
            if update and f.kind != "password":
                body[f.name] = None
            continue
        value = _parsed(f, text)
        if f.kind == "password":
            if value:  # empty keeps the stored key
                body[f.name] = value
        elif value is not None or update:
            body[f.name] = value
    return body


def _hours(text: str, target: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise BadRequest(
            f"'{text}' is not a whole number of hours (0 means at once).", target=target
        ) from None


def actions_configs(form: PolicyForm) -> list[dict[str, Any]]:
    """The scheduled actions as the service stores them."""
    configs: list[dict[str, Any]] = []
    for prefix in form.action_order():
        action_type = dict(ACTIONS)[prefix]
        emails: list[str] = []
        if prefix == "notify":
            emails = [e for e in _EMAILS.split(form.notify_emails.strip()) if e]
        configs.append(
            {
                "actionType": action_type,
                "gracePeriodHours": _hours(getattr(form, f"{prefix}_hours"), f"{prefix}_hours"),
                "notificationTemplateId": None,
                "notificationMessageCCList": emails,
            }
        )
    return configs


def _actions_body(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"ruleName": "PasswordRequired", "scheduledActionConfigurations": configs}]


FORM_LABELS = {
    "display_name": "Name",
    "description": "Description",
    "scope_tags": "Scope tags",
    "include": "Included groups",
    "exclude": "Excluded groups",
    "block_hours": "Mark device noncompliant: hours after noncompliance",
    "notify_hours": "Send email: hours after noncompliance",
    "notify_emails": "Send email: mail addresses",
    "lock_hours": "Remotely lock: hours after noncompliance",
    "retire_hours": "Add to retire list: hours after noncompliance",
}
GRAPH_FIELDS = {
    "displayName": "display_name",
    "description": "description",
    "roleScopeTagIds": "scope_tags",
}
_ACTION_TARGET = re.compile(r"^scheduledActionsForRule\.\d+\.scheduledActionConfigurations\.(\d+)")


def field_of(target: str | None, form: PolicyForm) -> str | None:
    """The form field a service or schema error names (None: shown on top of the page)."""
    if not target:
        return None
    if target in FORM_LABELS:
        return target
    if target in GRAPH_FIELDS:
        return GRAPH_FIELDS[target]
    head = target.split(".")[0]
    if head in ALL_SETTING_NAMES:
        return head
    parts = target.split(".")
    if head == "assignments" and len(parts) > 1 and parts[1].isdigit():
        return "include" if int(parts[1]) < len(form.include) else "exclude"
    m = _ACTION_TARGET.match(target)
    if m:
        order = form.action_order()
        n = int(m.group(1))
        prefix = order[n] if n < len(order) else "block"
        return f"{prefix}_emails" if "notificationMessageCCList" in target else f"{prefix}_hours"
    if head == "scheduledActionsForRule":
        return "block_hours"
    return None


def label_of(name: str | None, kind: str) -> str:
    if name is None:
        return ""
    return FORM_LABELS.get(name) or setting_label(kind, name)


def step_of(name: str | None) -> str:
    if name in ("display_name", "description"):
        return "basics"
    if name == "scope_tags":
        return "scope"
    if name in ("include", "exclude"):
        return "assignments"
    if name in ACTION_FIELDS:
        return "actions"
    if name in ALL_SETTING_NAMES:
        return "settings"
    return "review"


def _schema_problem(
    exc: ValidationError, kind: str, form: PolicyForm, steps: tuple[str, ...]
) -> BadRequest:
    """The schema error of the earliest step, as a message naming its field."""
    found: list[tuple[int, str, str]] = []
    for err in exc.errors():
        target = ".".join(str(p) for p in err["loc"])
        name = field_of(target, form)
        step = step_of(name)
        message = str(err["msg"]).removeprefix("Value error, ")
        label = label_of(name, kind) or target
        found.append(
            (
                steps.index(step) if step in steps else len(steps),
                name or target,
                f"{label}: {message}.",
            )
        )
    _, target, message = min(found, key=lambda x: x[0])
    return BadRequest(message, target=target)


def create_input(
    kind: str, form: PolicyForm, steps: tuple[str, ...], upto: int | None = None
) -> PolicyBase:
    """The create input from the steps up to ``upto`` (all of them when None)."""
    last = len(steps) if upto is None else upto
    shown = set(steps[: last + 1])
    body: dict[str, Any] = {"displayName": form.display_name, "description": form.description}
    if "settings" in shown:
        body |= settings_body(kind, form)
    if kind == COMPLIANCE and "actions" in shown:
        body["scheduledActionsForRule"] = _actions_body(actions_configs(form))
    if "scope" in shown and form.scope_tags:
        body["roleScopeTagIds"] = form.scope_tags
    try:
        return service.input_model(kind).model_validate(body)
    except ValidationError as exc:
        raise _schema_problem(exc, kind, form, steps) from None


def assign_input(form: PolicyForm) -> Assign:
    include = "#microsoft.graph.groupAssignmentTarget"
    exclude = "#microsoft.graph.exclusionGroupAssignmentTarget"
    targets = [{"target": {"@odata.type": include, "groupId": g}} for g in form.include] + [
        {"target": {"@odata.type": exclude, "groupId": g}} for g in form.exclude
    ]
    try:
        return Assign.model_validate({"assignments": targets})
    except ValidationError as exc:
        raise BadRequest(f"Assignments: {exc.errors()[0]['msg']}.", target="include") from None


EDIT_STEPS = ("basics", "settings", "actions", "scope")


def update_input(policy: Policy, form: PolicyForm, tags: list[str]) -> PolicyBase:
    """Only what the admin changed on the form, so that saving an untouched form changes
    nothing (no new version) and the audit record lists real changes only. A setting emptied
    is sent as null: not configured."""
    shown = form_of(policy, tags)
    body: dict[str, Any] = {}
    if form.display_name != shown.display_name:
        body["displayName"] = form.display_name
    if form.description != shown.description:
        body["description"] = form.description
    before = settings_body(policy.kind, shown, update=True)
    after = settings_body(policy.kind, form, update=True)
    body |= {k: v for k, v in after.items() if k not in before or before[k] != v}
    if policy.kind == COMPLIANCE:
        configs = actions_configs(form)
        if configs != actions_configs(shown):
            body["scheduledActionsForRule"] = _actions_body(configs)
    if sorted(form.scope_tags) != sorted(tags):
        body["roleScopeTagIds"] = form.scope_tags
    try:
        return service.input_model(policy.kind).model_validate(body)
    except ValidationError as exc:
        raise _schema_problem(exc, policy.kind, form, EDIT_STEPS) from None


# --- helpers ----------------------------------------------------------------------------------


def _page(
    request: Request, console: Console, name: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    ctx.setdefault("field_errors", {})
    return render(
        request,
        f"policies/{name}",
        status_code=status,
        console=console,
        section=SECTION,
        base=BASE,
        policies_base=BASE,
        devices_base=DEVICES,
        can_write=console.actor.can(service.WRITE),
        kind_labels=KIND_LABELS,
        not_configured=NOT_CONFIGURED,
        when=when,
        **ctx,
    )


def _problem(exc: DomainError, form: PolicyForm) -> dict[str, Any]:
    """Context that shows an error beside its field when the form has it, else on top."""
    name = field_of(exc.target, form)
    if name is not None:
        return {"field_errors": {name: exc.message}, "error": None}
    return {"field_errors": {}, "error": exc.message}


def _policy_url(policy_id: str, rest: str = "") -> str:
    return f"{BASE}/{quote(policy_id, safe='')}{rest}"


def _subsection(kind: str) -> str:
    return "Compliance" if kind == COMPLIANCE else "Configuration"


def _list_url(kind: str) -> str:
    return COMPLIANCE_LIST if kind == COMPLIANCE else CONFIGURATION


def _kind(kind: str) -> str:
    if kind not in ALL_KINDS:
        raise NotFound(f"There is no kind of policy called '{kind}'.")
    return kind


def _steps(kind: str) -> tuple[str, ...]:
    if kind == COMPLIANCE:
        return ("basics", "settings", "actions", "scope", "assignments", "review")
    return ("basics", "settings", "scope", "assignments", "review")


def step_labels(kind: str) -> dict[str, str]:
    return {
        "basics": "Basics",
        "settings": "Compliance settings" if kind == COMPLIANCE else "Configuration settings",
        "actions": "Actions for noncompliance",
        "scope": "Scope tags",
        "assignments": "Assignments",
        "review": "Review + create",
    }


def _tag_names(session: Session, ids: list[str]) -> list[str]:
    if not ids:
        return []
    rows = session.execute(select(ScopeTag.id, ScopeTag.display_name).where(ScopeTag.id.in_(ids)))
    names: dict[str, str] = {tag_id: name for tag_id, name in rows}
    return [names.get(i, i) for i in ids]


def _tags_of(session: Session, policy: Policy) -> list[str]:
    return access.tags_of(session, Policy, [policy.id])[policy.id]


def _visible_groups(session: Session, actor: Actor) -> list[DeviceGroup] | None:
    """The groups the admin may assign to (None: the admin cannot read groups)."""
    try:
        return list(session.scalars(groups.group_statement(actor)))
    except Forbidden:
        return None


def _group_names(session: Session, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(DeviceGroup.id, DeviceGroup.display_name).where(DeviceGroup.id.in_(ids))
    )
    return {gid: name for gid, name in rows}


def status_word(kind: str, status: str, grace_end: datetime | None = None) -> str:
    """A policy's status on a device as the console says it."""
    if kind == COMPLIANCE:
        if status == "nonCompliant" and grace_end is not None and grace_end > clock.now():
            return IN_GRACE
        return COMPLIANCE_STATUS.get(status, status)
    return CONFIGURATION_STATUS.get(status, status)


def _statuses(session: Session, actor: Actor, policy: Policy) -> list[dict[str, Any]] | None:
    """device_statuses with each row's console word (None: the admin cannot read devices)."""
    try:
        rows = service.device_statuses(session, actor, policy)
    except Forbidden:
        return None
    for row in rows:
        row["word"] = status_word(policy.kind, row["status"], row["grace_end"])
    return rows


def _counts(
    session: Session, actor: Actor, policies: list[Policy]
) -> dict[str, Counter[str] | None]:
    out: dict[str, Counter[str] | None] = {}
    for p in policies:
        rows = _statuses(session, actor, p)
        out[p.id] = None if rows is None else Counter(r["word"] for r in rows)
    return out


def _settings_view(kind: str, form: PolicyForm) -> list[tuple[str, list[tuple[FormSetting, str]]]]:
    """Each section's settings that apply, with their shown values."""
    return [
        (
            name,
            [(f, f.shown(form.values.get(f.name, ""))) for f in fields if applies(f, form.values)],
        )
        for name, fields in sections(kind)
    ]


def _tag_summary(session: Session, actor: Actor, form: PolicyForm, tags: list[ScopeTag]) -> str:
    if form.scope_tags:
        return ", ".join(_tag_names(session, form.scope_tags))
    if actor.scope(service.WRITE) is not None:
        return "Your scope tags: " + ", ".join(t.display_name for t in tags)
    return "Default"


# --- the lists ---------------------------------------------------------------------------------


@router.get("/policies")
def policies_home() -> Response:
    """Policies: Configuration first, as in Intune's Devices blade."""
    return RedirectResponse(CONFIGURATION, status_code=303)


@router.get("/policies/configuration", response_class=HTMLResponse)
def configuration(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """Configuration: device restrictions and Wi-Fi profiles, with their device statuses."""
    found = list(session.scalars(service.policy_statement(console.actor, service.CONFIGURATIONS)))
    assigned = service.assignments_of(session, [p.id for p in found])
    counts = _counts(session, console.actor, found)
    rows = [(p, any(not a.exclude for a in assigned[p.id]), counts[p.id]) for p in found]
    return _page(
        request,
        console,
        "configuration.html",
        rows=rows,
        columns=CONFIGURATION_COLUMNS,
        notice=notice,
        subsection="Configuration",
    )


@router.get("/policies/configuration/create", response_class=HTMLResponse)
def choose_profile_type(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Create profile: platform Android (AOSP), and the profile type."""
    console.actor.require(service.WRITE)
    return _page(request, console, "choose.html", subsection="Configuration")


@router.get("/policies/create")
def create_chosen(console: ConsoleDep, kind: Annotated[str, Query(max_length=16)] = "") -> Response:
    """Create profile's Create: on to the wizard of the chosen profile type."""
    console.actor.require(service.WRITE)
    return RedirectResponse(f"{BASE}/create/{quote(_kind(kind), safe='')}", status_code=303)


@router.get("/policies/compliance", response_class=HTMLResponse)
def compliance(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """Compliance: the compliance policies, with how many devices comply with each."""
    found = list(session.scalars(service.policy_statement(console.actor, service.COMPLIANCES)))
    assigned = service.assignments_of(session, [p.id for p in found])
    counts = _counts(session, console.actor, found)
    rows = [(p, any(not a.exclude for a in assigned[p.id]), counts[p.id]) for p in found]
    return _page(
        request,
        console,
        "compliance.html",
        rows=rows,
        columns=COMPLIANCE_COLUMNS,
        tab="policies",
        notice=notice,
        subsection="Compliance",
    )


# --- the fleet compliance dashboard and the tenant's compliance settings ----------------------


@router.get("/policies/compliance/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    """The fleet's compliance: devices by state, the policies with the most noncompliant
    devices, the settings that fail most often, and the retire list."""
    actor = console.actor
    actor.require(service.READ)
    try:
        summary: dict[str, int] | None = service.state_summary(session, actor)
        retire = service.retire_list(session, actor)
    except Forbidden:  # without devices.read: the policies, but no device counts
        summary, retire = None, []
    policies = list(session.scalars(service.policy_statement(actor, service.COMPLIANCES)))
    worst: list[tuple[Policy, int, int]] = []
    failing: dict[str, set[str]] = {}  # setting -> the devices failing it
    for p in policies:
        rows = _statuses(session, actor, p) or []
        noncompliant = sum(1 for r in rows if r["word"] == "Not compliant")
        in_grace = sum(1 for r in rows if r["word"] == IN_GRACE)
        if noncompliant or in_grace:
            worst.append((p, noncompliant, in_grace))
        for r in rows:
            for s in r["setting_states"]:
                if s.get("state") == "nonCompliant":
                    failing.setdefault(s["setting"], set()).add(r["device"].id)
    worst.sort(key=lambda x: (-x[1], -x[2], x[0].display_name))
    secure_by_default, days = service.compliance_settings(session)
    return _page(
        request,
        console,
        "dashboard.html",
        summary=summary,
        states=DEVICE_STATES,
        worst=worst[:TOP],
        failing=[
            (setting_label(COMPLIANCE, name), len(ids))
            for name, ids in sorted(failing.items(), key=lambda x: (-len(x[1]), x[0]))[:TOP]
        ],
        retire=retire,
        secure_by_default=secure_by_default,
        days=days,
        tab="dashboard",
        subsection="Compliance",
    )


def _settings_page(
    request: Request,
    session: Session,
    console: Console,
    secure: str | None = None,
    days: str | None = None,
    exc: DomainError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    stored_secure, stored_days = service.compliance_settings(session)
    return _page(
        request,
        console,
        "settings.html",
        status=exc.status if exc else 200,
        secure=secure if secure is not None else ("true" if stored_secure else "false"),
        days=days if days is not None else str(stored_days),
        field_errors={exc.target or "validity_days": exc.message} if exc else {},
        tab="settings",
        notice=notice,
        subsection="Compliance",
    )


@router.get("/policies/compliance/settings", response_class=HTMLResponse)
def compliance_settings_page(
    request: Request, session: SessionDep, console: ConsoleDep, notice: str | None = None
) -> HTMLResponse:
    """Compliance policy settings: how devices with no compliance policy are marked, and the
    compliance status validity period."""
    console.actor.require(service.READ)
    return _settings_page(request, session, console, notice=notice)


@router.post("/policies/compliance/settings", response_model=None)
def save_compliance_settings(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    secure_by_default: Annotated[str, Form(max_length=8)] = "false",
    validity_days: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Save the tenant's compliance settings; every device is judged again at once."""
    console.actor.require(service.WRITE)
    try:
        if secure_by_default not in ("true", "false"):
            raise BadRequest("Choose Compliant or Not compliant.", target="secure_by_default")
        try:
            days = int(validity_days.strip())
        except ValueError:
            raise BadRequest(
                f"Compliance status validity period: '{validity_days}' is not a whole number "
                "of days (1 to 120).",
                target="validity_days",
            ) from None
        try:
            data = SettingsUpdate.model_validate(
                {
                    "secureByDefault": secure_by_default == "true",
                    "deviceComplianceCheckinThresholdDays": days,
                }
            )
        except ValidationError as exc:
            raise BadRequest(
                f"Compliance status validity period: {exc.errors()[0]['msg']}.",
                target="validity_days",
            ) from None
        with session.begin_nested():
            service.update_compliance_settings(session, console.actor, data)
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _settings_page(request, session, console, secure_by_default, validity_days, exc)
    return done(f"{COMPLIANCE_LIST}/settings", "Compliance policy settings saved.")


# --- the create wizard --------------------------------------------------------------------------


def _wizard(
    request: Request,
    session: Session,
    console: Console,
    kind: str,
    step: str,
    form: PolicyForm,
    exc: DomainError | None = None,
) -> HTMLResponse:
    steps = _steps(kind)
    ctx: dict[str, Any] = {}
    if exc is not None:
        ctx = _problem(exc, form)
        # An error of another step than the one shown goes on top.
        if ctx["field_errors"] and step_of(next(iter(ctx["field_errors"]))) != step:
            ctx = {"field_errors": {}, "error": exc.message}
    tags = access.usable_tags(session, console.actor, service.WRITE)
    visible = _visible_groups(session, console.actor)
    names = {g.id: g.display_name for g in visible or []}
    missing = [g for g in [*form.include, *form.exclude] if g not in names]
    names |= _group_names(session, missing)
    response = _page(
        request,
        console,
        "wizard.html",
        status=exc.status if exc else 200,
        kind=kind,
        step=step,
        steps=[(s, step_labels(kind)[s]) for s in steps],
        form=form,
        sections=sections(kind),
        review=_settings_view(kind, form) if step == "review" else [],
        tags=tags,
        tag_summary=_tag_summary(session, console.actor, form, tags),
        groups=visible,
        group_names=names,
        **ctx,
        subsection=_subsection(kind),
    )
    response.headers.update(NO_STORE)
    return response


@router.get("/policies/create/{kind}", response_class=HTMLResponse)
def create_start(
    request: Request, session: SessionDep, console: ConsoleDep, kind: str
) -> HTMLResponse:
    """Create a policy of this kind, step 1: Basics."""
    console.actor.require(service.WRITE)
    kind = _kind(kind)
    return _wizard(request, session, console, kind, "basics", _blank(kind))


def _create(
    session: Session,
    settings: Settings,
    actor: Actor,
    kind: str,
    form: PolicyForm,
    upto: int | None = None,
) -> Policy:
    """Create the policy and assign it: the service's create then its assign, in the caller's
    transaction. ``upto`` limits both to what the wizard's steps so far hold."""
    steps = _steps(kind)
    policy = service.create_policy(
        session, settings, actor, kind, create_input(kind, form, steps, upto)
    )
    assigning = upto is None or steps[upto] in ("assignments", "review")
    if assigning and (form.include or form.exclude):
        service.assign(session, actor, policy.id, ALL_KINDS, assign_input(form))
    return policy


def _dry_run(
    session: Session, settings: Settings, actor: Actor, kind: str, form: PolicyForm, upto: int
) -> None:
    """Run the real create and assign and roll them back: every check, and no change."""
    savepoint = session.begin_nested()
    try:
        _create(session, settings, actor, kind, form, upto)
    finally:
        savepoint.rollback()


@router.post("/policies/create/{kind}", response_model=None)
def create_step(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    kind: str,
    form: PolicyFormDep,
    step: _Step = "basics",
    action: _Step = "next",
) -> Response:
    """A wizard step was submitted: Previous, Next (checked by a dry run) or Create."""
    console.actor.require(service.WRITE)
    kind = _kind(kind)
    steps = _steps(kind)
    if step not in steps:
        raise BadRequest(f"Unknown wizard step '{step}'.", target="step")
    index = steps.index(step)
    if action == "back":
        return _wizard(request, session, console, kind, steps[max(index - 1, 0)], form)
    if step == "review" and action == "create":
        try:
            with session.begin_nested():
                policy = _create(session, settings, console.actor, kind, form)
        except DomainError as exc:
            reraise_page_refusal(exc)
            failed = step_of(field_of(exc.target, form))
            shown = failed if failed in steps else "review"
            return _wizard(request, session, console, kind, shown, form, exc)
        groups_note = f" and assigned to {len(form.include)} group(s)" if form.include else ""
        return done(_policy_url(policy.id), f"Policy {policy.display_name} created{groups_note}.")
    try:
        _dry_run(session, settings, console.actor, kind, form, index)
    except DomainError as exc:
        reraise_page_refusal(exc)
        failed = step_of(field_of(exc.target, form))
        failed_index = steps.index(failed) if failed in steps else len(steps) - 1
        if failed_index <= index or failed == "review":
            shown = steps[min(failed_index, index)]
            return _wizard(request, session, console, kind, shown, form, exc)
    return _wizard(request, session, console, kind, steps[min(index + 1, len(steps) - 1)], form)


# --- one policy: properties, edit, assignments, delete ----------------------------------------


def _policy(session: Session, actor: Actor, policy_id: str, perm: str = service.READ) -> Policy:
    return service.get_policy(session, actor, policy_id, ALL_KINDS, perm)


def _actions_view(policy: Policy) -> list[tuple[str, int, list[str]]]:
    return [
        (
            ACTION_LABELS.get(a["actionType"], a["actionType"]),
            int(a.get("gracePeriodHours") or 0),
            list(a.get("notificationMessageCCList") or []),
        )
        for a in policy.scheduled_actions
    ]


@router.get("/policies/{policy_id}", response_class=HTMLResponse)
def policy_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    policy_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """A policy's properties: Basics, its settings (Not configured where unset), Actions for
    noncompliance, Scope tags and Assignments."""
    policy = _policy(session, console.actor, policy_id)
    assigned = service.assignments_of(session, [policy.id])[policy.id]
    names = _group_names(session, [a.group_id for a in assigned])
    return _page(
        request,
        console,
        "policy.html",
        policy=policy,
        tab="properties",
        settings_view=_settings_view(policy.kind, form_of(policy)),
        key_set=policy.secret_encrypted is not None,
        actions_view=_actions_view(policy),
        tag_names=_tag_names(session, _tags_of(session, policy)),
        included=[names.get(a.group_id, a.group_id) for a in assigned if not a.exclude],
        excluded=[names.get(a.group_id, a.group_id) for a in assigned if a.exclude],
        notice=notice,
        subsection=_subsection(policy.kind),
    )


def _edit_page(
    request: Request,
    session: Session,
    console: Console,
    policy: Policy,
    form: PolicyForm,
    exc: DomainError | None = None,
) -> HTMLResponse:
    return _page(
        request,
        console,
        "edit.html",
        status=exc.status if exc else 200,
        policy=policy,
        tab="properties",
        form=form,
        sections=sections(policy.kind),
        key_set=policy.secret_encrypted is not None,
        extra_actions=len(policy.scheduled_actions)
        > len({a["actionType"] for a in policy.scheduled_actions}),
        tags=access.usable_tags(session, console.actor, service.WRITE),
        **(_problem(exc, form) if exc else {}),
        subsection=_subsection(policy.kind),
    )


@router.get("/policies/{policy_id}/edit", response_class=HTMLResponse)
def edit_form(
    request: Request, session: SessionDep, console: ConsoleDep, policy_id: str
) -> HTMLResponse:
    """Edit a policy: Basics, its settings and (compliance) Actions for noncompliance."""
    console.actor.require(service.WRITE)
    policy = _policy(session, console.actor, policy_id, service.WRITE)
    return _edit_page(request, session, console, policy, form_of(policy, _tags_of(session, policy)))


@router.post("/policies/{policy_id}/edit", response_model=None)
def edit_policy(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    console: ConsoleFormDep,
    policy_id: str,
    form: PolicyFormDep,
) -> Response:
    """Save: settings left empty become Not configured; an empty pre-shared key keeps the
    stored one. Devices get the new version at their next check-in."""
    console.actor.require(service.WRITE)
    policy = _policy(session, console.actor, policy_id, service.WRITE)
    before = policy.version
    try:
        data = update_input(policy, form, _tags_of(session, policy))
        if not data.model_fields_set:
            return done(_policy_url(policy.id), "Nothing changed.")
        with session.begin_nested():
            policy = service.update_policy(
                session, settings, console.actor, policy.id, ALL_KINDS, data
            )
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _edit_page(request, session, console, policy, form, exc)
    if policy.version == before:
        return done(_policy_url(policy.id), "Nothing changed.")
    return done(
        _policy_url(policy.id),
        f"Policy saved as version {policy.version}; devices get it at their next check-in.",
    )


def _assignments_page(
    request: Request,
    session: Session,
    console: Console,
    policy: Policy,
    form: PolicyForm | None = None,
    exc: DomainError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    assigned = service.assignments_of(session, [policy.id])[policy.id]
    if form is None:
        form = PolicyForm(
            include=[a.group_id for a in assigned if not a.exclude],
            exclude=[a.group_id for a in assigned if a.exclude],
        )
    visible = _visible_groups(session, console.actor)
    names = {g.id: g.display_name for g in visible or []}
    names |= _group_names(session, [g for g in [*form.include, *form.exclude] if g not in names])
    return _page(
        request,
        console,
        "assignments.html",
        status=exc.status if exc else 200,
        policy=policy,
        tab="assignments",
        form=form,
        groups=visible,
        group_names=names,
        notice=notice,
        **(_problem(exc, form) if exc else {}),
        subsection=_subsection(policy.kind),
    )


@router.get("/policies/{policy_id}/assignments", response_class=HTMLResponse)
def assignments_page(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    policy_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    """Assignments: the included and the excluded groups."""
    policy = _policy(session, console.actor, policy_id)
    return _assignments_page(request, session, console, policy, notice=notice)


@router.post("/policies/{policy_id}/assignments", response_model=None)
def save_assignments(
    request: Request,
    session: SessionDep,
    console: ConsoleFormDep,
    policy_id: str,
    form: PolicyFormDep,
) -> Response:
    """Replace the assignments (a group both included and excluded is refused in place)."""
    console.actor.require(service.WRITE)
    policy = _policy(session, console.actor, policy_id, service.WRITE)
    try:
        with session.begin_nested():
            service.assign(session, console.actor, policy.id, ALL_KINDS, assign_input(form))
    except DomainError as exc:
        reraise_page_refusal(exc)
        return _assignments_page(request, session, console, policy, form, exc)
    return done(
        _policy_url(policy.id, "/assignments"),
        f"Assignments saved: {len(form.include)} included, {len(form.exclude)} excluded group(s).",
    )


@router.get("/policies/{policy_id}/delete", response_class=HTMLResponse)
def delete_form(
    request: Request, session: SessionDep, console: ConsoleDep, policy_id: str
) -> HTMLResponse:
    """Delete a policy: asks Yes or No."""
    policy = _policy(session, console.actor, policy_id)
    return _page(
        request,
        console,
        "delete.html",
        policy=policy,
        tab="properties",
        subsection=_subsection(policy.kind),
    )


@router.post("/policies/{policy_id}/delete")
def delete_policy(
    session: SessionDep,
    console: ConsoleFormDep,
    policy_id: str,
    answer: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Yes: delete the policy; devices drop it at their next check-in. No: back to it."""
    console.actor.require(service.WRITE)
    if answer != "yes":
        return RedirectResponse(_policy_url(policy_id), status_code=303)
    policy = _policy(session, console.actor, policy_id, service.WRITE)
    name, kind = policy.display_name, policy.kind
    service.delete_policy(session, console.actor, policy.id, ALL_KINDS)
    return done(_list_url(kind), f"Policy {name} deleted. Devices drop it at their next check-in.")


# --- Device status --------------------------------------------------------------------------


@router.get("/policies/{policy_id}/status", response_class=HTMLResponse)
def status_page(
    request: Request, session: SessionDep, console: ConsoleDep, policy_id: str
) -> HTMLResponse:
    """Device status: every device the policy targets, with the policy's status there."""
    policy = _policy(session, console.actor, policy_id)
    rows = _statuses(session, console.actor, policy)
    counts = Counter(r["word"] for r in rows or [])
    columns = COMPLIANCE_COLUMNS if policy.kind == COMPLIANCE else CONFIGURATION_COLUMNS
    return _page(
        request,
        console,
        "status.html",
        policy=policy,
        tab="status",
        rows=rows,
        counts=counts,
        columns=columns,
        subsection=_subsection(policy.kind),
    )


def setting_rows(kind: str, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-setting states with the console's words and labels, failures first."""
    rows = [
        {
            "label": setting_label(kind, str(s.get("setting"))),
            "setting": s.get("setting"),
            "state": status_word(kind, str(s.get("state"))),
            "failed": s.get("state") in FAILED_STATES,
            "current": s.get("currentValue"),
            "reason": s.get("reason") or "",
            "sources": s.get("sources") or [],
        }
        for s in states
    ]
    return sorted(rows, key=lambda r: not r["failed"])


@router.get("/policies/{policy_id}/status/{device_id}", response_class=HTMLResponse)
def device_status_page(
    request: Request, session: SessionDep, console: ConsoleDep, policy_id: str, device_id: str
) -> HTMLResponse:
    """One device's status for the policy, per setting: state, current value, reason and the
    policy whose value is in force."""
    policy = _policy(session, console.actor, policy_id)
    rows = service.device_statuses(session, console.actor, policy)
    row = next((r for r in rows if r["device"].id == device_id), None)
    if row is None:
        raise NotFound(
            f"The policy {policy.display_name} does not target a device with id '{device_id}', "
            "or you may not see it."
        )
    return _page(
        request,
        console,
        "device_status.html",
        policy=policy,
        tab="status",
        device=row["device"],
        word=status_word(policy.kind, row["status"], row["grace_end"]),
        row=row,
        settings_rows=setting_rows(policy.kind, row["setting_states"]),
        subsection=_subsection(policy.kind),
    )


# --- a device's Compliance tab ----------------------------------------------------------------


def _grace_ends(session: Session, device_id: str, policies: list[Any]) -> dict[str, datetime]:
    """When each noncompliant policy's grace period ends on this device."""
    ids = [p.id for p in policies]
    if not ids:
        return {}
    out: dict[str, datetime] = {}
    by_id = {p.id: p for p in policies}
    for policy_id, since in session.execute(
        select(DevicePolicyState.policy_id, DevicePolicyState.noncompliant_since).where(
            DevicePolicyState.device_id == device_id, DevicePolicyState.policy_id.in_(ids)
        )
    ):
        if since is not None:
            out[policy_id] = evaluation.block_due(by_id[policy_id].scheduled_actions, since)
    return out


@router.get("/devices/{device_id}/compliance", response_class=HTMLResponse)
def device_compliance(
    request: Request, session: SessionDep, console: ConsoleDep, device_id: str
) -> HTMLResponse:
    """A device's Compliance: each compliance policy that applies with the settings that
    failed and why, the Default Device Compliance Policy, and the configuration policies
    with their status."""
    device = devices.get_device(session, console.actor, device_id)
    compliance_rows = service.device_policy_states(
        session, console.actor, device.id, service.COMPLIANCES
    )
    configuration_rows = service.device_policy_states(
        session, console.actor, device.id, service.CONFIGURATIONS
    )
    grace = _grace_ends(session, device.id, [r["policy"] for r in compliance_rows])
    for r in compliance_rows:
        r["word"] = status_word(COMPLIANCE, r["status"], grace.get(r["policy"].id))
        r["rows"] = setting_rows(COMPLIANCE, r["setting_states"])
    for r in configuration_rows:
        r["word"] = status_word(r["policy"].kind, r["status"])
        r["rows"] = setting_rows(r["policy"].kind, r["setting_states"])
    defaults = service.default_policy_reasons(session, device)
    return render(
        request,
        "policies/device_compliance.html",
        console=console,
        section="Devices",
        base=DEVICES,
        policies_base=BASE,
        device=device,
        tab="compliance",
        state=DEVICE_STATES.get(device.compliance_state, words(device.compliance_state)),
        compliance_rows=compliance_rows,
        configuration_rows=configuration_rows,
        default_rows=setting_rows(COMPLIANCE, defaults),
        kind_labels=KIND_LABELS,
        when=when,
    )
