"""Use cases of the worker directory and of shared-device sessions.

The directory sits behind ``Directory`` (find a user, check a password): the local one keeps
argon2 hashes; an external OIDC provider can take its place (docs/api.md, "Replacing the
directory with an OIDC provider"). Users are tenant-wide, as in Entra: no scope tags.

A session is a worker signed in on a shared device. Its token (stored as SHA-256) is what
the participating apps present at ``/sso/v1/introspect``; one open session per device: a new
sign-in replaces the previous one, and sign-out, an admin, expiry, disabling or deleting the
user end it for every app at once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy import Select, Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from aospmdm.actions import service as actions
from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.db import Executor, new_id
from aospmdm.core.errors import BadRequest, Conflict, DomainError, Forbidden, NotFound, Unauthorized
from aospmdm.core.permissions import Permission
from aospmdm.core.security import hash_password, hash_secret, new_secret, verify_password
from aospmdm.devices import service as devices
from aospmdm.devices.models import ManagedDevice
from aospmdm.tenant import audit
from aospmdm.tenant.access import Actor
from aospmdm.users.models import DeviceSession, DeviceSignInFailure, DirectoryUser

READ = "users.read"
WRITE = "users.write"
permissions.register(
    Permission(READ, "Read the worker directory, and who signed in on which shared device."),
    # Intune Administrator only: Intune's Help Desk Operator cannot edit directory users
    # either. The help desk ends a device's session (devices.endSession) instead.
    Permission(WRITE, "Create, change, disable and delete workers in the directory."),
)

CATEGORY = "User"
SESSION_CATEGORY = "UserSession"
GRAPH_TYPE = "#microsoft.graph.user"
MIN_PASSWORD_LENGTH = 8
SIGN_OUT_ACTION = "signOutUser"
_SESSIONS = cast("Table", DeviceSession.__table__)
_FAILURES = cast("Table", DeviceSignInFailure.__table__)
# name@domain: the local part as e-mail allows it (no spaces, no second @), a domain of
# letter/digit/hyphen labels.
_UPN = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


# --- the directory ---------------------------------------------------------------------------

Refusal = Literal["invalidCredentials", "userDisabled"]


class Directory(Protocol):
    """Where workers and their passwords live. The local directory below; an external OIDC
    provider would implement the same two methods (docs/api.md)."""

    def get(self, db: Session, id_or_upn: str) -> DirectoryUser | None:
        """The user with this id or user principal name (any case), or None."""
        ...

    def authenticate(self, db: Session, upn: str, password: str) -> DirectoryUser | Refusal:
        """The user these credentials prove, or why not. Unknown users and wrong passwords
        are the same refusal, and cost the same time."""
        ...


class LocalDirectory:
    def get(self, db: Session, id_or_upn: str) -> DirectoryUser | None:
        if "\x00" in id_or_upn:  # no user has one, and PostgreSQL cannot even compare it
            return None
        text = id_or_upn.strip()
        return db.scalars(
            select(DirectoryUser).where(
                or_(DirectoryUser.id == text, DirectoryUser.user_principal_name == text.lower())
            )
        ).first()

    def authenticate(self, db: Session, upn: str, password: str) -> DirectoryUser | Refusal:
        user = db.scalars(
            select(DirectoryUser).where(DirectoryUser.user_principal_name == upn)
        ).first()
        if not verify_password(user.password_hash if user else None, password) or user is None:
            return "invalidCredentials"
        if not user.account_enabled:
            return "userDisabled"
        return user


DIRECTORY: Directory = LocalDirectory()


# --- validation ------------------------------------------------------------------------------


def checked_upn(value: str, target: str = "userPrincipalName") -> str:
    upn = value.strip().lower()
    if len(upn) > 254 or not _UPN.match(upn):
        raise BadRequest(
            f"{target} must look like name@domain (e.g. jane.doe@contoso.com); got {value!r}.",
            target=target,
        )
    return upn


def checked_display_name(value: str, target: str = "displayName") -> str:
    name = value.strip()
    if not name:
        raise BadRequest(f"{target} must not be empty.", target=target)
    if len(name) > 256 or "\x00" in name:
        raise BadRequest(
            f"{target} must be at most 256 characters, without NUL characters.", target=target
        )
    return name


def checked_password(value: str, target: str = "passwordProfile.password") -> str:
    if len(value) < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            f"{target} must be at least {MIN_PASSWORD_LENGTH} characters long.", target=target
        )
    if len(value) > 256:
        raise BadRequest(f"{target} must be at most 256 characters long.", target=target)
    return value


def _refuse_taken(db: Session, upn: str, except_id: str | None = None) -> None:
    stmt = select(DirectoryUser.id).where(DirectoryUser.user_principal_name == upn)
    if except_id is not None:
        stmt = stmt.where(DirectoryUser.id != except_id)
    if db.scalars(stmt).first() is not None:
        raise Conflict(
            f"A user with userPrincipalName '{upn}' already exists.",
            target="userPrincipalName",
            code="userPrincipalNameInUse",
        )


# --- the directory's use cases ---------------------------------------------------------------


def user_statement(actor: Actor) -> Select[Any]:
    """Every user, by user principal name (users.read)."""
    actor.require(READ)
    return select(DirectoryUser).order_by(DirectoryUser.user_principal_name, DirectoryUser.id)


def find_user(session: Session, actor: Actor, id_or_upn: str) -> DirectoryUser:
    """One user by id or user principal name: 403 without users.read, else 404."""
    actor.require(READ)
    user = DIRECTORY.get(session, id_or_upn)
    if user is None:
        shown = id_or_upn.replace("\x00", "")
        raise NotFound(f"No user with id or userPrincipalName '{shown}' exists.")
    return user


def create_user(
    session: Session,
    actor: Actor,
    *,
    user_principal_name: str,
    display_name: str,
    password: str,
    account_enabled: bool = True,
) -> DirectoryUser:
    actor.require(WRITE)
    upn = checked_upn(user_principal_name)
    name = checked_display_name(display_name)
    checked_password(password)
    _refuse_taken(session, upn)
    now = clock.now()
    user = DirectoryUser(
        id=new_id(),
        user_principal_name=upn,
        display_name=name,
        account_enabled=account_enabled,
        password_hash=hash_password(password),
        source="local",
        created_at=now,
        last_modified_at=now,
    )
    session.add(user)
    session.flush()
    _audit(session, actor, user, "Create user", "Create", {"accountEnabled": account_enabled})
    return user


def update_user(
    session: Session, actor: Actor, id_or_upn: str, changes: dict[str, Any]
) -> DirectoryUser:
    """Change a user; ``changes`` may hold user_principal_name, display_name,
    account_enabled and password. Disabling a user ends their open sessions at once."""
    actor.require(WRITE)
    user = find_user(session, actor, id_or_upn)
    changed: dict[str, Any] = {}
    if changes.get("user_principal_name") is not None:
        upn = checked_upn(changes["user_principal_name"])
        if upn != user.user_principal_name:
            _refuse_taken(session, upn, user.id)
            changed["userPrincipalName"] = {"old": user.user_principal_name, "new": upn}
            user.user_principal_name = upn
    if changes.get("display_name") is not None:
        name = checked_display_name(changes["display_name"])
        if name != user.display_name:
            changed["displayName"] = {"old": user.display_name, "new": name}
            user.display_name = name
    if changes.get("password") is not None:
        user.password_hash = hash_password(checked_password(changes["password"]))
        changed["password"] = "changed"  # never the password itself
    enabled = changes.get("account_enabled")
    if enabled is not None and enabled != user.account_enabled:
        changed["accountEnabled"] = {"old": user.account_enabled, "new": enabled}
        user.account_enabled = enabled
    if not changed:
        return user
    user.last_modified_at = clock.now()
    session.flush()
    _audit(session, actor, user, "Update user", "Patch", changed)
    if enabled is False:
        end_sessions_of_user(session, actor, user, "userDisabled")
    return user


def delete_user(session: Session, actor: Actor, id_or_upn: str) -> None:
    """Remove a user; their open sessions end at once (their history stays)."""
    actor.require(WRITE)
    user = find_user(session, actor, id_or_upn)
    end_sessions_of_user(session, actor, user, "userDeleted")
    _audit(session, actor, user, "Delete user", "Delete")
    session.delete(user)
    session.flush()


def _audit(
    db: Executor,
    actor: Actor,
    user: DirectoryUser,
    activity: str,
    operation: audit.Operation,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        db,
        actor,
        category=CATEGORY,
        activity=activity,
        operation=operation,
        target_type="user",
        target_id=user.id,
        target_name=user.user_principal_name,
        details=details,
    )


# --- bulk import -----------------------------------------------------------------------------

CSV_COLUMNS = ("userPrincipalName", "displayName", "password")


@dataclass(frozen=True)
class ImportRow:
    line: int
    user_principal_name: str
    display_name: str
    password: str


@dataclass(frozen=True)
class ImportCounts:
    created: int
    updated: int


def parse_csv(text: str) -> list[ImportRow]:
    """The rows of a ``userPrincipalName,displayName,password`` file, each checked; the
    first bad one is refused naming its line and field."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise BadRequest(
                f"line 1: the header must be {','.join(CSV_COLUMNS)}; "
                f"got {','.join(header or []) or 'nothing'}."
            )
        rows: list[ImportRow] = []
        seen: dict[str, int] = {}
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(CSV_COLUMNS):
                raise BadRequest(
                    f"line {line}: expected {len(CSV_COLUMNS)} fields "
                    f"({','.join(CSV_COLUMNS)}), got {len(cells)}."
                )
            upn_text, name_text, password = cells
            try:
                upn = checked_upn(upn_text)
                name = checked_display_name(name_text)
                checked_password(password, target="password")
            except BadRequest as exc:
                raise BadRequest(f"line {line}: {exc.message}", target=exc.target) from None
            if "\x00" in upn + name + password:
                raise BadRequest(f"line {line}: text may not contain NUL characters.")
            if upn in seen:
                raise BadRequest(
                    f"line {line}: userPrincipalName '{upn}' is already on line {seen[upn]}.",
                    target="userPrincipalName",
                )
            seen[upn] = line
            rows.append(ImportRow(line, upn, name, password))
    except csv.Error as exc:
        raise BadRequest(f"line {reader.line_num}: not valid CSV: {exc}.") from None
    return rows


def import_users(
    session: Session, actor: Actor, rows: Sequence[ImportRow], update_existing: bool = False
) -> ImportCounts:
    """Create the users of ``rows`` (all of them or, on any refusal, none: the caller's
    transaction rolls back). A user principal name already in the directory is refused,
    or with ``update_existing`` gets the row's display name and password."""
    actor.require(WRITE)
    existing = {
        u.user_principal_name: u
        for u in session.scalars(
            select(DirectoryUser).where(
                DirectoryUser.user_principal_name.in_([r.user_principal_name for r in rows])
            )
        )
    }
    if not update_existing:
        for row in rows:
            if row.user_principal_name in existing:
                raise Conflict(
                    f"line {row.line}: userPrincipalName '{row.user_principal_name}' already "
                    "exists (use --update to update existing users).",
                    target="userPrincipalName",
                )
    created = updated = 0
    for row in rows:
        user = existing.get(row.user_principal_name)
        if user is None:
            create_user(
                session,
                actor,
                user_principal_name=row.user_principal_name,
                display_name=row.display_name,
                password=row.password,
            )
            created += 1
        else:
            update_user(
                session,
                actor,
                user.id,
                {"display_name": row.display_name, "password": row.password},
            )
            updated += 1
    return ImportCounts(created, updated)


# --- shared-device sessions --------------------------------------------------------------------


class TooManySignInFailures(DomainError):
    status = 429
    code = "tooManySignInFailures"


@dataclass
class SignInOutcome:
    """A sign-in's session and token, or the refusal to raise once the failure records
    are committed (a refusal must not roll them back)."""

    session: DeviceSession | None = None
    token: str | None = None
    user: DirectoryUser | None = None
    refusal: DomainError | None = None


def sign_in(
    db: Session,
    settings: Settings,
    device: devices.DeviceState,
    actor: Actor,
    upn_text: str,
    password: str,
) -> SignInOutcome:
    """A worker signs in on a device: throttled per user principal name and per device,
    every outcome audited. Success ends the device's previous open session (replaced)."""
    now = clock.now()
    upn = upn_text.strip().lower()[:254]
    if device.deleted:
        _audit_session(db, actor, device.id, device.device_name, upn, "Sign in", "deviceDeleted")
        return SignInOutcome(
            refusal=Forbidden(
                "This device was deleted: no one can sign in on it.", code="deviceDeleted"
            )
        )
    # The device row, locked first: sign-ins on one device are counted one after the other,
    # so parallel guesses cannot all pass the throttle before any failure is written.
    db.execute(
        select(ManagedDevice.id).where(ManagedDevice.id == device.id).with_for_update()
    ).first()
    since = now - timedelta(minutes=settings.signin_window_minutes)
    by_user = db.scalar(
        select(func.count()).where(
            DeviceSignInFailure.user_principal_name == upn, DeviceSignInFailure.at >= since
        )
    )
    by_device = db.scalar(
        select(func.count()).where(
            DeviceSignInFailure.device_id == device.id, DeviceSignInFailure.at >= since
        )
    )
    if (by_user or 0) >= settings.signin_max_failures_per_account or (
        by_device or 0
    ) >= settings.signin_max_failures_per_address:
        _audit_session(db, actor, device.id, device.device_name, upn, "Sign in", "throttled")
        return SignInOutcome(
            refusal=TooManySignInFailures(
                "Too many failed sign-ins for this user or on this device. Wait "
                f"{settings.signin_window_minutes} minutes, then try again."
            )
        )
    found = DIRECTORY.authenticate(db, upn, password)
    if isinstance(found, str):
        db.add(
            DeviceSignInFailure(user_principal_name=upn, device_id=device.id, at=now, reason=found)
        )
        _audit_session(db, actor, device.id, device.device_name, upn, "Sign in", found)
        refusal: DomainError = (
            Forbidden(
                "This user is disabled: ask your admin to enable the account.", code="userDisabled"
            )
            if found == "userDisabled"
            else Unauthorized("The user name or password is wrong.", code="invalidCredentials")
        )
        return SignInOutcome(refusal=refusal)
    _end_device_sessions(db, actor, device.id, "replaced", now)
    # An admin's sign-out still on its way to the device was for the worker just replaced:
    # it must not sign out the new one.
    actions.cancel_open(db, actor, device.id, SIGN_OUT_ACTION, "a new worker signed in")
    token = new_secret("amss_")
    row = DeviceSession(
        id=new_id(),
        device_id=device.id,
        device_name=device.device_name,
        user_id=found.id,
        user_principal_name=found.user_principal_name,
        token_hash=hash_secret(token),
        started_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
        ended_at=None,
        ended_reason=None,
    )
    db.add(row)
    db.flush()
    _audit_session(
        db,
        actor,
        device.id,
        device.device_name,
        found.user_principal_name,
        "Sign in",
        None,
        {"sessionId": row.id, "userId": found.id},
    )
    return SignInOutcome(session=row, token=token, user=found)


def sign_out(db: Session, device: devices.DeviceState, actor: Actor) -> DeviceSession | None:
    """Global sign-out: the device's open session ends for every app (None when no one was
    signed in; audited either way)."""
    ended = _end_device_sessions(db, actor, device.id, "signOut", clock.now(), audited=False)
    upn = ended[0].user_principal_name if ended else None
    _audit_session(
        db,
        actor,
        device.id,
        device.device_name,
        upn,
        "Sign out",
        None,
        {"sessionId": ended[0].id, "userId": ended[0].user_id} if ended else None,
        message=None if ended else "no one was signed in",
    )
    return ended[0] if ended else None


def end_device_session(db: Session, actor: Actor, device_id: str) -> None:
    """An admin ends the device's session (the signOutUser action): at once, before the
    device hears of it."""
    _end_device_sessions(db, actor, device_id, "admin", clock.now())


def end_sessions_of_user(db: Session, actor: Actor, user: DirectoryUser, reason: str) -> int:
    now = clock.now()
    rows = list(
        db.scalars(
            select(DeviceSession).where(
                DeviceSession.user_id == user.id, DeviceSession.ended_at.is_(None)
            )
        )
    )
    for row in rows:
        _end(db, actor, row, reason, now)
    return len(rows)


def _end_device_sessions(
    db: Session, actor: Actor, device_id: str, reason: str, now: datetime, audited: bool = True
) -> list[DeviceSession]:
    rows = list(
        db.scalars(
            select(DeviceSession).where(
                DeviceSession.device_id == device_id, DeviceSession.ended_at.is_(None)
            )
        )
    )
    for row in rows:
        _end(db, actor, row, reason, now, audited)
    return rows


def _end(
    db: Session,
    actor: Actor,
    row: DeviceSession,
    reason: str,
    now: datetime,
    audited: bool = True,
) -> None:
    """End one session; one that had run out already ends as expired, at its expiry."""
    if row.expires_at <= now:
        row.ended_at, row.ended_reason = row.expires_at, "expired"
        return
    row.ended_at, row.ended_reason = now, reason
    db.flush()
    if audited:
        _audit_session(
            db,
            actor,
            row.device_id,
            row.device_name,
            row.user_principal_name,
            "Sign out",
            None,
            {"sessionId": row.id, "userId": row.user_id, "reason": reason},
        )


def _audit_session(
    db: Executor,
    actor: Actor,
    device_id: str,
    device_name: str,
    upn: str | None,
    activity: str,
    failure: str | None,
    details: dict[str, Any] | None = None,
    message: str | None = None,
) -> None:
    audit.record(
        db,
        actor,
        category=SESSION_CATEGORY,
        activity=activity,
        operation="SignIn" if activity == "Sign in" else "SignOut",
        result="failure" if failure else "success",
        target_type="managedDevice",
        target_id=device_id,
        target_name=device_name,
        details={"userPrincipalName": upn, **(details or {})},
        message=failure or message,
    )


def introspect(db: Session, device_id: str, token: str) -> dict[str, Any]:
    """RFC 7662: whether the token is an open, unexpired session of this device, of an
    enabled user on a device still enrolled. Anything else is only ``{"active": false}``."""
    if not token or len(token) > 512 or "\x00" in token:
        return {"active": False}
    now = clock.now()
    row = db.execute(
        select(DeviceSession, DirectoryUser)
        .join(DirectoryUser, DirectoryUser.id == DeviceSession.user_id)
        .join(ManagedDevice, ManagedDevice.id == DeviceSession.device_id)
        .where(
            DeviceSession.token_hash == hash_secret(token),
            DeviceSession.device_id == device_id,
            DeviceSession.ended_at.is_(None),
            DeviceSession.expires_at > now,
            DirectoryUser.account_enabled.is_(True),
        )
    ).first()
    if row is None:
        return {"active": False}
    found, user = row
    return {
        "active": True,
        "sub": user.id,
        "username": user.user_principal_name,
        "name": user.display_name,
        "exp": int(found.expires_at.timestamp()),
        "iat": int(found.started_at.timestamp()),
        "device_id": found.device_id,
        "token_type": "Bearer",
    }


def end_expired_sessions(session: Session) -> int:
    """Periodic: mark sessions past their expiry as ended (expired), and forget sign-in
    failures older than a day (the throttling window is far shorter)."""
    now = clock.now()
    result = session.execute(
        update(_SESSIONS)
        .where(_SESSIONS.c.ended_at.is_(None), _SESSIONS.c.expires_at <= now)
        .values(ended_at=_SESSIONS.c.expires_at, ended_reason="expired")
    )
    session.execute(delete(_FAILURES).where(_FAILURES.c.at < now - timedelta(days=1)))
    return int(getattr(result, "rowcount", 0) or 0)


# --- reading sessions --------------------------------------------------------------------------


def current_session(db: Session, device_id: str) -> DeviceSession | None:
    """The device's open, unexpired session, if a worker is signed in."""
    return db.scalars(
        select(DeviceSession)
        .where(
            DeviceSession.device_id == device_id,
            DeviceSession.ended_at.is_(None),
            DeviceSession.expires_at > clock.now(),
        )
        .order_by(DeviceSession.started_at.desc())
    ).first()


def sessions_of_device(session: Session, device_id: str, limit: int = 20) -> list[DeviceSession]:
    """The device's sessions, newest first (the caller checked the admin may see it)."""
    return list(
        session.scalars(
            select(DeviceSession)
            .where(DeviceSession.device_id == device_id)
            .order_by(DeviceSession.started_at.desc(), DeviceSession.id)
            .limit(limit)
        )
    )


def _visible_device_ids(actor: Actor) -> Select[Any]:
    return devices.device_statement(actor).with_only_columns(ManagedDevice.id).order_by(None)


def sessions_of_user(
    session: Session, actor: Actor, user_id: str, limit: int = 50
) -> list[DeviceSession]:
    """The user's sign-in history, newest first. A scoped admin sees only the sessions on
    devices it may see; an unscoped one also those on devices removed since."""
    actor.require(READ)
    stmt = select(DeviceSession).where(DeviceSession.user_id == user_id)
    if actor.scope(devices.READ) is not None:
        stmt = stmt.where(DeviceSession.device_id.in_(_visible_device_ids(actor)))
    else:
        actor.require(devices.READ)
    return list(
        session.scalars(
            stmt.order_by(DeviceSession.started_at.desc(), DeviceSession.id).limit(limit)
        )
    )


def devices_of_user(actor: Actor, user_id: str) -> Select[Any]:
    """The devices (the admin may see) that the user has signed in on."""
    actor.require(READ)
    return devices.device_statement(actor).where(
        ManagedDevice.id.in_(
            select(DeviceSession.device_id).where(DeviceSession.user_id == user_id)
        )
    )


def users_logged_on(db: Session, device_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Graph's managedDevice.usersLoggedOn: per device, each user still in the directory who
    signed in on it, with their latest sign-in, newest first."""
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in device_ids}
    if not device_ids:
        return out
    last = func.max(DeviceSession.started_at).label("last")
    rows = db.execute(
        select(DeviceSession.device_id, DeviceSession.user_id, last)
        .join(DirectoryUser, DirectoryUser.id == DeviceSession.user_id)
        .where(DeviceSession.device_id.in_(device_ids))
        .group_by(DeviceSession.device_id, DeviceSession.user_id)
        .order_by(last.desc(), DeviceSession.user_id)
    )
    for device_id, user_id, at in rows:
        out[device_id].append({"userId": user_id, "lastLogOnDateTime": clock.iso(at)})
    return out


# The admin's remote sign-out (the signOutUser action): the session ends the moment it is
# queued, and the command tells the device to forget the worker.
actions.on_queued(SIGN_OUT_ACTION, end_device_session)
