"""Use cases of apps: the catalog (the three required apps and uploaded APKs, each upload a
new version), the APK store under the data directory, assignments (required or uninstall)
and per-device install status.

App work is computed at check-in from the assignments, the catalog and the inventory the
device reported (``work_for``); nothing is queued per device. When a device is targeted
both ways, install wins and the uninstall is reported as a conflict. A device installs an
app's highest version. A failure is retried with exponential backoff.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from aospmdm import protocol
from aospmdm.apps import apk
from aospmdm.apps.models import (
    FAILED,
    INSTALLED,
    NOT_INSTALLED,
    PENDING,
    REQUIRED,
    UNINSTALL,
    UNINSTALL_FAILED,
    DeviceAppStatus,
    MobileApp,
    MobileAppAssignment,
    MobileAppVersion,
)
from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.db import Executor
from aospmdm.core.errors import BadRequest, Conflict, Forbidden
from aospmdm.core.permissions import POLICY_AND_PROFILE_MANAGER, Permission
from aospmdm.devices.models import DeviceApp, ManagedDevice
from aospmdm.groups import service as groups
from aospmdm.groups.models import GroupMember
from aospmdm.tenant import access, audit
from aospmdm.tenant.access import Actor

READ = "apps.read"
WRITE = "apps.write"
permissions.register(
    Permission(READ, "Read the app catalog, its versions, assignments and install status."),
    Permission(
        WRITE,
        "Upload, change, assign and delete apps.",
        roles=frozenset({POLICY_AND_PROFILE_MANAGER}),
    ),
)

CATEGORY = "Application"
GRAPH_TYPE = "#microsoft.graph.androidLobApp"
_APPS = cast("Table", MobileApp.__table__)
_VERSIONS = cast("Table", MobileAppVersion.__table__)
_ASSIGNMENTS = cast("Table", MobileAppAssignment.__table__)
_STATUS = cast("Table", DeviceAppStatus.__table__)
_INVENTORY = cast("Table", DeviceApp.__table__)
_MEMBERS = cast("Table", GroupMember.__table__)
MAX_RETRY_DELAY = timedelta(hours=8)
BUILT_IN = MobileApp.role.is_not(None)


# --- the required apps ----------------------------------------------------------------------


@dataclass(frozen=True)
class RequiredAppSetting:
    role: str
    package: str
    display_name: str
    version_name: str
    version_code: int
    url: str


def required_app_settings(settings: Settings) -> list[RequiredAppSetting]:
    """The required apps as the operator settings describe them (the versions devices are
    provisioned with)."""
    base = settings.public_url.rstrip("/") + "/device/v1/apps/"
    return [
        RequiredAppSetting(
            "agent",
            settings.agent_package,
            "aospmdm agent",
            settings.agent_version_name,
            settings.agent_version_code,
            settings.resolved_agent_apk_url,
        ),
        RequiredAppSetting(
            "authenticator",
            settings.authenticator_package,
            "Authenticator",
            settings.authenticator_version_name,
            settings.authenticator_version_code,
            settings.authenticator_apk_url or f"{base}{settings.authenticator_package}.apk",
        ),
        RequiredAppSetting(
            "companyPortal",
            settings.portal_package,
            "Company Portal",
            settings.portal_version_name,
            settings.portal_version_code,
            settings.portal_apk_url or f"{base}{settings.portal_package}.apk",
        ),
    ]


def ensure_required_apps(session: Session, settings: Settings) -> None:
    """Put the required apps in the catalog, with the version the settings name, if they are
    missing (at every start; idempotent)."""
    now = clock.now()
    for spec in required_app_settings(settings):
        app = session.scalars(select(MobileApp).where(MobileApp.role == spec.role)).first()
        if app is None:
            app = session.scalars(
                select(MobileApp).where(MobileApp.package_name == spec.package)
            ).first()
            if app is None:
                app = MobileApp(
                    package_name=spec.package,
                    display_name=spec.display_name,
                    publisher="aospmdm",
                    role=spec.role,
                    created_at=now,
                    last_modified_at=now,
                )
                session.add(app)
                session.flush()
            app.role = spec.role
        known = session.scalar(
            select(MobileAppVersion.id).where(
                MobileAppVersion.app_id == app.id,
                MobileAppVersion.version_code == spec.version_code,
            )
        )
        if known is None:
            session.add(
                MobileAppVersion(
                    app_id=app.id,
                    version_name=spec.version_name,
                    version_code=spec.version_code,
                    external_url=spec.url,
                    warnings=[],
                    uploaded_at=now,
                    uploaded_by="settings",
                )
            )
    session.flush()


def download_url(
    settings: Settings, version_id: str, sha256: str | None, external_url: str | None
) -> str | None:
    """Where a device downloads a version: this server for an uploaded file."""
    if sha256:
        return f"{settings.public_url.rstrip('/')}/device/v1/apps/{version_id}"
    return external_url


def required_apps(db: Executor, settings: Settings) -> list[protocol.RequiredApp]:
    """The required apps at their current catalog versions (the enrollment answer)."""
    latest = _latest_versions(db, role_only=True)
    out = []
    for spec in required_app_settings(settings):
        row = latest.get(spec.role)
        out.append(
            protocol.RequiredApp(
                package_name=row.package_name if row else spec.package,
                display_name=row.display_name if row else spec.display_name,
                version_name=row.version_name if row else spec.version_name,
                version_code=row.version_code if row else spec.version_code,
                download_url=(_url(settings, row) if row else None) or spec.url,
                role=spec.role,
            )
        )
    return out


def current_agent(db: Executor, settings: Settings) -> tuple[str, str]:
    """The catalog's current agent: its version name and where to download it (what an
    agent below the minimum version is told to install)."""
    row = _latest_versions(db, role_only=True).get("agent")
    if row is None:
        return settings.agent_version_name, settings.resolved_agent_apk_url
    return row.version_name, _url(settings, row) or settings.resolved_agent_apk_url


def _url(settings: Settings, row: Any) -> str | None:
    return download_url(settings, row.version_id, row.sha256, row.external_url)


def _latest_versions(db: Executor, role_only: bool = False) -> dict[str, Any]:
    """The highest version of each app, keyed by app id (and by role for the required
    apps)."""
    a, v = _APPS, _VERSIONS
    newest = (
        select(v.c.app_id, func.max(v.c.version_code).label("code")).group_by(v.c.app_id).subquery()
    )
    stmt = (
        select(
            a.c.id.label("app_id"),
            a.c.role,
            a.c.package_name,
            a.c.display_name,
            v.c.id.label("version_id"),
            v.c.version_name,
            v.c.version_code,
            v.c.sha256,
            v.c.external_url,
        )
        .join(newest, newest.c.app_id == a.c.id)
        .join(v, and_(v.c.app_id == a.c.id, v.c.version_code == newest.c.code))
    )
    if role_only:
        stmt = stmt.where(a.c.role.is_not(None))
    out: dict[str, Any] = {}
    for row in db.execute(stmt):
        out[row.app_id] = row
        if row.role:
            out[row.role] = row
    return out


# --- reading ----------------------------------------------------------------------------------


def app_statement(actor: Actor) -> Select[Any]:
    return access.visible(
        select(MobileApp).order_by(MobileApp.display_name, MobileApp.id),
        MobileApp,
        actor,
        READ,
        also=BUILT_IN,
    )


def get_app(session: Session, actor: Actor, app_id: str, perm: str = READ) -> MobileApp:
    if perm == WRITE:
        actor.require(WRITE)
    return access.get_visible(session, MobileApp, app_id, actor, perm, also=BUILT_IN)


def find_app(session: Session, actor: Actor, name: str) -> MobileApp:
    """An app by id, package name or display name (the CLI's way to name one)."""
    matches: list[MobileApp] = list(
        session.scalars(
            app_statement(actor).where(
                (MobileApp.id == name)
                | (MobileApp.package_name == name)
                | (MobileApp.display_name == name)
            )
        )
    )
    if not matches:
        raise access.not_found(MobileApp, name)
    exact = [m for m in matches if name in (m.id, m.package_name)]
    if exact:
        return exact[0]
    if len(matches) > 1:
        raise Conflict(
            f"{len(matches)} apps are named '{name}'; give the id or the package name.",
            code="ambiguousName",
        )
    return matches[0]


def versions_of(session: Session, app_ids: Sequence[str]) -> dict[str, list[MobileAppVersion]]:
    """Each app's versions, newest first."""
    out: dict[str, list[MobileAppVersion]] = {i: [] for i in app_ids}
    if app_ids:
        for version in session.scalars(
            select(MobileAppVersion)
            .where(MobileAppVersion.app_id.in_(list(app_ids)))
            .order_by(MobileAppVersion.version_code.desc())
        ):
            out[version.app_id].append(version)
    return out


def assignments_of(
    session: Session, app_ids: Sequence[str]
) -> dict[str, list[MobileAppAssignment]]:
    out: dict[str, list[MobileAppAssignment]] = {i: [] for i in app_ids}
    if app_ids:
        for a in session.scalars(
            select(MobileAppAssignment)
            .where(MobileAppAssignment.app_id.in_(list(app_ids)))
            .order_by(MobileAppAssignment.intent, MobileAppAssignment.group_id)
        ):
            out[a.app_id].append(a)
    return out


# --- the APK store ------------------------------------------------------------------------------


def store_dir(settings: Settings) -> Path:
    return settings.data_dir / "apps"


def file_path(settings: Settings, sha256: str) -> Path:
    return store_dir(settings) / f"{sha256}.apk"


def _digest(source: Path) -> tuple[str, int]:
    """The SHA-256 (hex) and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _place(settings: Settings, source: Path, sha: str) -> None:
    """Move a spooled upload into the store under its SHA-256 (kept if already there)."""
    target = file_path(settings, sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(source, target)


def _file_name(name: str, package: str) -> str:
    """The uploaded file's base name, without control characters, for the download."""
    clean = "".join(c for c in Path(name.replace("\\", "/")).name if c.isprintable())
    return clean[:256] or f"{package}.apk"


def _check_manifest_text(info: apk.ApkInfo) -> None:
    for field, value in (("versionName", info.version_name), ("package", info.package_name)):
        if len(value) > 256 or "\x00" in value:
            raise BadRequest(
                f"The APK's {field} is longer than 256 characters or holds a NUL character.",
                target="file",
                code="badManifest",
            )


def _require_unscoped_for_required(actor: Actor, app: MobileApp) -> None:
    """Every device has the required apps: only an admin without scope tags may change them
    (a new version reaches devices outside any scope)."""
    if app.role is not None and actor.scope(WRITE) is not None:
        raise Forbidden(
            f"{app.display_name} is a required app on every device: changing it needs an "
            "admin whose apps.write is not limited by scope tags."
        )


def spool(settings: Settings, chunks: Any) -> Path:
    """A temporary file in the store's directory holding an upload (``chunks``: an iterable
    of bytes), refused with 413 past ``max_apk_bytes``."""
    directory = store_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".upload.", suffix=".apk")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > settings.max_apk_bytes:
                    raise _too_large(settings)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payloadTooLarge"


def _too_large(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The APK is larger than {settings.max_apk_bytes} bytes (AOSPMDM_MAX_APK_BYTES).",
        target="file",
    )


# --- changes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    app: MobileApp
    version: MobileAppVersion
    created: bool  # a new app (else a new version of an existing one)


def upload(
    session: Session,
    settings: Settings,
    actor: Actor,
    source: Path,
    file_name: str,
    display_name: str | None = None,
    description: str | None = None,
    publisher: str | None = None,
    role_scope_tag_ids: Sequence[str] | None = None,
) -> Upload:
    """Add an APK (already spooled to ``source``, which this takes over) to the catalog: a new
    app, or a new version of the app with its package, whose versionCode must be higher
    than every version it has."""
    actor.require(WRITE)
    try:
        try:
            info = apk.read_apk(source, settings.max_apk_bytes)
        except apk.ApkError as exc:
            if exc.reason == "tooLarge":
                raise _too_large(settings) from None
            raise BadRequest(str(exc), target="file", code=exc.reason) from None
        _check_manifest_text(info)
        app = session.scalars(
            select(MobileApp).where(MobileApp.package_name == info.package_name)
        ).first()
        if app is not None:
            app = get_app(session, actor, app.id, WRITE)
            _require_unscoped_for_required(actor, app)
            highest = session.scalar(
                select(func.max(MobileAppVersion.version_code)).where(
                    MobileAppVersion.app_id == app.id
                )
            )
            if highest is not None and info.version_code <= highest:
                raise Conflict(
                    f"{info.package_name} already has versionCode {highest}; a new version "
                    f"needs a higher versionCode than that (this APK has {info.version_code}).",
                    code="versionCodeNotHigher",
                    target="file",
                )
        sha, size = _digest(source)
        now = clock.now()
        created = app is None
        if app is None:
            app = MobileApp(
                package_name=info.package_name,
                display_name=(display_name or info.display_name or info.package_name)[:256],
                description=description or "",
                publisher=publisher or "",
                created_at=now,
                last_modified_at=now,
            )
            session.add(app)
            session.flush()
            tags = access.tag_new(session, MobileApp, app.id, actor, WRITE, role_scope_tag_ids)
        else:
            app.last_modified_at = now
            tags = access.tags_of(session, MobileApp, [app.id])[app.id]
        version = MobileAppVersion(
            app_id=app.id,
            version_name=info.version_name,
            version_code=info.version_code,
            min_sdk=info.min_sdk,
            size=size,
            sha256=sha,
            file_name=_file_name(file_name, info.package_name),
            signing_cert_sha256=info.signing_cert_sha256,
            warnings=list(info.warnings),
            uploaded_at=now,
            uploaded_by=actor.name,
        )
        session.add(version)
        session.flush()
        # Last: a refusal above leaves nothing in the store.
        _place(settings, source, sha)
    finally:
        source.unlink(missing_ok=True)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Upload app" if created else "Add app version",
        operation="Create",
        target_type="androidLobApp",
        target_id=app.id,
        target_name=app.display_name,
        details={
            "packageName": info.package_name,
            "versionName": info.version_name,
            "versionCode": info.version_code,
            "sha256": sha,
            "signingCertificateSha256": info.signing_cert_sha256,
            "warnings": list(info.warnings),
            "roleScopeTagIds": tags,
        },
    )
    return Upload(app=app, version=version, created=created)


def update_app(
    session: Session,
    actor: Actor,
    app_id: str,
    changes: dict[str, Any],
) -> MobileApp:
    app = get_app(session, actor, app_id, WRITE)
    _require_unscoped_for_required(actor, app)
    before = {"displayName": app.display_name, "description": app.description}
    if "displayName" in changes:
        name = (changes["displayName"] or "").strip()
        if not name:
            raise BadRequest("An app needs a name.", target="displayName")
        app.display_name = name
    if "description" in changes:
        app.description = changes["description"] or ""
    if "publisher" in changes:
        app.publisher = changes["publisher"] or ""
    if changes.get("roleScopeTagIds") is not None:
        if app.role is not None:
            raise BadRequest(
                "The required apps belong to every admin; they take no scope tags.",
                target="roleScopeTagIds",
            )
        access.set_tags(session, MobileApp, app.id, actor, WRITE, changes["roleScopeTagIds"])
    app.last_modified_at = clock.now()
    session.flush()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Update app",
        operation="Patch",
        target_type="androidLobApp",
        target_id=app.id,
        target_name=app.display_name,
        details={"before": before, "changes": changes},
    )
    return app


def delete_app(session: Session, settings: Settings, actor: Actor, app_id: str) -> None:
    app = get_app(session, actor, app_id, WRITE)
    if app.role is not None:
        raise Conflict(
            f"{app.display_name} is a required app: every device needs it, so it cannot be "
            "deleted. Upload a newer version instead.",
            code="requiredApp",
        )
    shas = {v.sha256 for v in versions_of(session, [app.id])[app.id] if v.sha256}
    access.untag(session, MobileApp, app.id)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Delete app",
        operation="Delete",
        target_type="androidLobApp",
        target_id=app.id,
        target_name=app.display_name,
        details={"packageName": app.package_name},
    )
    session.delete(app)
    session.flush()
    still_used = set(
        session.scalars(select(MobileAppVersion.sha256).where(MobileAppVersion.sha256.in_(shas)))
    )
    for sha in shas - still_used:
        with contextlib.suppress(OSError):
            file_path(settings, sha).unlink()


@dataclass(frozen=True)
class AssignmentInput:
    group_id: str
    intent: str
    exclude: bool


def assign(
    session: Session, actor: Actor, app_id: str, wanted: Sequence[AssignmentInput]
) -> list[MobileAppAssignment]:
    """Replace the app's assignments (Graph's assign action)."""
    app = get_app(session, actor, app_id, WRITE)
    if app.role is not None and wanted:
        raise BadRequest(
            f"{app.display_name} is a required app: it is on every device already and takes "
            "no assignments.",
            target="mobileAppAssignments",
        )
    chosen: dict[str, AssignmentInput] = {}
    for n, item in enumerate(wanted):
        target = f"mobileAppAssignments.{n}.target.groupId"
        if item.group_id not in chosen:
            try:
                groups.get_group(session, actor, item.group_id)
            except Exception as exc:
                if getattr(exc, "status", None) in (403, 404):
                    raise BadRequest(
                        f"Group '{item.group_id}' does not exist, or you may not see it.",
                        target=target,
                    ) from None
                raise
        elif chosen[item.group_id] != item:
            raise BadRequest(
                f"Group '{item.group_id}' is assigned twice, differently; give it once.",
                target=target,
            )
        chosen[item.group_id] = item
    current = assignments_of(session, [app.id])[app.id]
    seen = groups.visible_group_ids(session, actor, [a.group_id for a in current])
    kept = [a for a in current if a.group_id not in seen and a.group_id not in chosen]
    session.execute(delete(_ASSIGNMENTS).where(_ASSIGNMENTS.c.app_id == app.id))
    rows = [
        MobileAppAssignment(app_id=app.id, group_id=i.group_id, intent=i.intent, exclude=i.exclude)
        for i in chosen.values()
    ] + [
        MobileAppAssignment(app_id=app.id, group_id=a.group_id, intent=a.intent, exclude=a.exclude)
        for a in kept
    ]
    session.add_all(rows)
    session.flush()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Assign app",
        operation="Action",
        target_type="androidLobApp",
        target_id=app.id,
        target_name=app.display_name,
        details={
            "required": [i.group_id for i in chosen.values() if i.intent == REQUIRED],
            "uninstall": [i.group_id for i in chosen.values() if i.intent == UNINSTALL],
            "exclude": [i.group_id for i in chosen.values() if i.exclude],
        },
    )
    return rows


# --- the check-in: what app work a device has ------------------------------------------------


def _work_statement() -> Select[Any]:
    a, v, asg, inv, st, m = _APPS, _VERSIONS, _ASSIGNMENTS, _INVENTORY, _STATUS, _MEMBERS
    device: Any = bindparam("device_id")
    my_groups = select(m.c.group_id).where(m.c.device_id == device)
    vx = v.alias("vx")
    newest = (
        select(vx.c.id)
        .where(vx.c.app_id == a.c.id)
        .order_by(vx.c.version_code.desc())
        .limit(1)
        .scalar_subquery()
    )
    ex = asg.alias("ex")
    excluded = exists(
        select(ex.c.id).where(
            ex.c.app_id == a.c.id, ex.c.exclude.is_(True), ex.c.group_id.in_(my_groups)
        )
    )
    return (
        select(
            a.c.id.label("app_id"),
            a.c.package_name,
            a.c.display_name,
            a.c.role,
            v.c.id.label("version_id"),
            v.c.version_name,
            v.c.version_code,
            v.c.sha256,
            v.c.size,
            v.c.signing_cert_sha256,
            v.c.min_sdk,
            v.c.external_url,
            asg.c.intent,
            inv.c.version_code.label("installed_code"),
            st.c.install_state,
            st.c.work,
            st.c.version_code.label("status_code"),
            st.c.next_attempt_at,
        )
        .select_from(a)
        .join(v, v.c.id == newest)
        .outerjoin(
            asg,
            and_(
                asg.c.app_id == a.c.id,
                asg.c.exclude.is_(False),
                asg.c.group_id.in_(my_groups),
            ),
        )
        .outerjoin(inv, and_(inv.c.device_id == device, inv.c.package_name == a.c.package_name))
        .outerjoin(st, and_(st.c.device_id == device, st.c.app_id == a.c.id))
        .where((a.c.role.is_not(None)) | (asg.c.id.is_not(None) & ~excluded))
    )


# Built once: the check-in runs it every time.
_WORK = _work_statement()


@dataclass(frozen=True)
class Target:
    """One app as it applies to one device."""

    row: Any
    intent: str  # required | uninstall
    conflict: bool  # targeted both ways (install won)


def targets(db: Executor, device_id: str) -> list[Target]:
    by_app: dict[str, list[Any]] = {}
    for row in db.execute(_WORK, {"device_id": device_id}):
        by_app.setdefault(row.app_id, []).append(row)
    out = []
    for rows in by_app.values():
        intents = {REQUIRED if r.role else r.intent for r in rows}
        intent = REQUIRED if REQUIRED in intents else UNINSTALL
        out.append(Target(rows[0], intent, conflict=len(intents) > 1))
    return out


def work_for(
    db: Executor, settings: Settings, device_id: str, now: datetime
) -> list[protocol.AppWork]:
    """The app work due on a device now, and its install states brought up to date (written
    only when they change)."""
    work: list[protocol.AppWork] = []
    for target in targets(db, device_id):
        row = target.row
        installed = row.installed_code
        details = {"conflict": True} if target.conflict else {}
        if target.intent == REQUIRED:
            if installed is not None and installed >= row.version_code:
                _set_state(db, device_id, row, INSTALLED, "install", now, details)
                continue
            if not row.sha256:
                # A version as provisioned, with no file here: nothing can be sent.
                _set_state(db, device_id, row, NOT_INSTALLED, "install", now, details)
                continue
            kind = "install"
        else:
            if installed is None:
                _set_state(db, device_id, row, NOT_INSTALLED, "uninstall", now, details)
                continue
            kind = "uninstall"
        # A failure holds only for the same work on the same version: anything else is new
        # work, pending from now.
        failed = (
            row.install_state in (FAILED, UNINSTALL_FAILED)
            and row.work == kind
            and row.status_code == row.version_code
        )
        if failed and row.next_attempt_at is not None and row.next_attempt_at > now:
            continue
        if not failed:
            _set_state(db, device_id, row, PENDING, kind, now, details)
        work.append(
            protocol.AppWork(
                id=protocol.app_work_id(kind, row.app_id, row.version_code),
                type=kind,
                app_id=row.app_id,
                package_name=row.package_name,
                display_name=row.display_name,
                version_name=row.version_name,
                version_code=row.version_code,
                download_url=_url(settings, row) if kind == "install" else None,
                sha256=row.sha256 if kind == "install" else None,
                size=row.size if kind == "install" else None,
                signing_cert_sha256=row.signing_cert_sha256 if kind == "install" else None,
                min_sdk=row.min_sdk if kind == "install" else None,
            )
        )
    return work


def _set_state(
    db: Executor,
    device_id: str,
    row: Any,
    state: str,
    kind: str,
    now: datetime,
    details: dict[str, Any],
) -> None:
    if row.install_state == state and row.work == kind and row.status_code == row.version_code:
        return
    values = {
        "install_state": state,
        "work": kind,
        "version_code": row.version_code,
        "error_code": None,
        "message": "",
        "attempts": 0,
        "next_attempt_at": None,
        "last_updated_at": now,
        "details": details,
    }
    if row.install_state is None:
        db.execute(insert(_STATUS).values(device_id=device_id, app_id=row.app_id, **values))
    else:
        db.execute(
            update(_STATUS)
            .where(_STATUS.c.device_id == device_id, _STATUS.c.app_id == row.app_id)
            .values(**values)
        )


def file_for_download(
    db: Executor, settings: Settings, device_id: str, version_id: str
) -> tuple[Path, str, str] | None:
    """An uploaded version's file: (path, file name, sha256), for a device the app applies to
    (a required app applies to every device); None otherwise, or if there is none."""
    if "\x00" in version_id or len(version_id) > 64:
        return None
    row = db.execute(
        select(
            _VERSIONS.c.sha256,
            _VERSIONS.c.file_name,
            _APPS.c.package_name,
            _APPS.c.id,
            _APPS.c.role,
        )
        .join(_APPS, _APPS.c.id == _VERSIONS.c.app_id)
        .where(_VERSIONS.c.id == version_id)
    ).first()
    if row is None or not row.sha256:
        return None
    if row.role is None and row.id not in {t.row.app_id for t in targets(db, device_id)}:
        return None
    path = file_path(settings, row.sha256)
    if not path.is_file():
        return None
    return path, row.file_name or f"{row.package_name}.apk", row.sha256


def _kind(target: Target) -> str:
    return "install" if target.intent == REQUIRED else "uninstall"


def is_app_result(command_id: str) -> bool:
    return command_id.startswith("app:")


def record_results(
    db: Executor,
    settings: Settings,
    device_id: str,
    results: Sequence[protocol.CommandResult],
    actor: Actor,
) -> list[str]:
    """Store a device's results for app work: recorded, duplicate, or unknown (work the
    device does not have now, e.g. for a version since replaced)."""
    now = clock.now()
    outcomes = []
    current: dict[str, tuple[str, int]] | None = None
    for result in results:
        parts = result.command_id.split(":")
        if len(parts) != 4 or parts[1] not in ("i", "u") or not parts[3].isdigit():
            outcomes.append("unknown")
            continue
        kind = "install" if parts[1] == "i" else "uninstall"
        app_id, code = parts[2], int(parts[3])
        if current is None:
            current = {
                t.row.app_id: (
                    "install" if t.intent == REQUIRED else "uninstall",
                    t.row.version_code,
                )
                for t in targets(db, device_id)
            }
        if current.get(app_id) != (kind, code):
            outcomes.append("unknown")  # work the device does not have now
            continue
        status = db.execute(
            select(_STATUS).where(_STATUS.c.device_id == device_id, _STATUS.c.app_id == app_id)
        ).first()
        if status is None or status.work != kind or status.version_code != code:
            outcomes.append("unknown")
            continue
        if result.status in ("accepted", "notNow"):
            outcomes.append("recorded")
            continue
        if result.status == "done":
            state = INSTALLED if kind == "install" else NOT_INSTALLED
            values: dict[str, Any] = {
                "install_state": state,
                "error_code": None,
                "message": result.message,
                "attempts": 0,
                "next_attempt_at": None,
            }
        else:
            state = FAILED if kind == "install" else UNINSTALL_FAILED
            attempts = status.attempts + 1 if status.install_state == state else 1
            delay = min(
                timedelta(seconds=settings.app_retry_seconds * 2 ** (attempts - 1)),
                MAX_RETRY_DELAY,
            )
            default_code = (
                protocol.APP_INSTALL_FAILED if kind == "install" else protocol.APP_UNINSTALL_FAILED
            )
            values = {
                "install_state": state,
                "error_code": result.error_code or default_code,
                "message": result.message
                or protocol.APP_ERRORS.get(result.error_code or default_code, ""),
                "attempts": attempts,
                "next_attempt_at": now + delay,
            }
        if status.install_state == state and status.attempts == values["attempts"]:
            outcomes.append("duplicate")
            continue
        db.execute(
            update(_STATUS)
            .where(_STATUS.c.device_id == device_id, _STATUS.c.app_id == app_id)
            .values(last_updated_at=now, **values)
        )
        outcomes.append("recorded")
        name = db.scalar(select(_APPS.c.display_name).where(_APPS.c.id == app_id)) or app_id
        audit.record(
            db,
            actor,
            category=CATEGORY,
            activity=f"App {kind} {'succeeded' if result.status == 'done' else 'failed'}",
            operation="Action",
            result="success" if result.status == "done" else "failure",
            target_type="managedDevice",
            target_id=device_id,
            target_name=name,
            details={
                "appId": app_id,
                "versionCode": code,
                "errorCode": values["error_code"],
                "message": values["message"],
            },
        )
    return outcomes


# --- reports ------------------------------------------------------------------------------------


def error_code_json(code: int | None) -> int | None:
    """Graph's errorCode is a signed 32-bit number (Intune shows 0x87D1041C as -2016345060)."""
    if code is None:
        return None
    return code - 2**32 if code >= 2**31 else code


def device_statuses(session: Session, actor: Actor, app: MobileApp) -> list[dict[str, Any]]:
    """Per device the admin may see: the app's install state there (targeted devices without
    a status yet are ``pending``)."""
    from aospmdm.devices import service as devices

    visible = devices.device_statement(actor).with_only_columns(ManagedDevice.id).order_by(None)
    latest = _latest_versions(session).get(app.id)
    rows = session.execute(
        select(ManagedDevice.id, ManagedDevice.device_name, DeviceAppStatus, DeviceApp.version_name)
        .select_from(ManagedDevice)
        .outerjoin(
            DeviceAppStatus,
            and_(DeviceAppStatus.device_id == ManagedDevice.id, DeviceAppStatus.app_id == app.id),
        )
        .outerjoin(
            DeviceApp,
            and_(
                DeviceApp.device_id == ManagedDevice.id,
                DeviceApp.package_name == app.package_name,
            ),
        )
        .where(ManagedDevice.id.in_(visible))
        .where(
            (DeviceAppStatus.device_id.is_not(None))
            | ManagedDevice.id.in_(targeted_device_ids(app))
        )
        .order_by(ManagedDevice.device_name)
    ).all()
    out = []
    targeted = set(session.scalars(targeted_device_ids(app)))
    for device_id, name, status, installed_version in rows:
        state = status.install_state if status is not None else PENDING
        if state == PENDING and device_id not in targeted:
            continue  # the assignment went away before the device answered
        out.append(
            {
                "id": f"{app.id}_{device_id}",
                "deviceId": device_id,
                "deviceName": name,
                "installState": state,
                "errorCode": error_code_json(status.error_code if status else None),
                "errorCodeHex": (
                    f"0x{status.error_code:08X}" if status and status.error_code else None
                ),
                "installStateDetail": status.message if status else "",
                "lastSyncDateTime": clock.iso(status.last_updated_at) if status else None,
                # Beyond Graph: what is installed, what is wanted, and a conflict if any.
                "installedVersion": installed_version,
                "targetVersionCode": status.version_code
                if status
                else (latest.version_code if latest else None),
                "intent": status.work if status else None,
                "conflict": bool(status and status.details.get("conflict")),
            }
        )
    return out


def targeted_device_ids(app: MobileApp) -> Select[Any]:
    """The devices an app applies to (every device for a required app)."""
    if app.role is not None:
        return select(ManagedDevice.id)
    m, asg = _MEMBERS, _ASSIGNMENTS
    included = select(asg.c.group_id).where(asg.c.app_id == app.id, asg.c.exclude.is_(False))
    excluded = select(asg.c.group_id).where(asg.c.app_id == app.id, asg.c.exclude.is_(True))
    return (
        select(m.c.device_id)
        .where(m.c.group_id.in_(included))
        .where(m.c.device_id.not_in(select(m.c.device_id).where(m.c.group_id.in_(excluded))))
    )


def status_counts(statuses: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = {"installed": 0, "failed": 0, "notInstalled": 0, "pending": 0, "uninstallFailed": 0}
    for s in statuses:
        counts[s["installState"]] = counts.get(s["installState"], 0) + 1
    return counts
