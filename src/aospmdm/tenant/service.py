"""Use cases of the tenant. Plain functions: a session, the acting principal, domain errors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from aospmdm.core import clock, permissions
from aospmdm.core.config import Settings
from aospmdm.core.db import Executor, serialize_setup, transaction
from aospmdm.core.errors import BadRequest, Conflict, NotFound
from aospmdm.core.permissions import (
    BUILTIN_ROLES,
    INTUNE_ADMINISTRATOR,
    Permission,
    builtin_role_id,
)
from aospmdm.core.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    hash_secret,
    new_password,
    new_secret,
    verify_password,
)
from aospmdm.tenant import access, audit
from aospmdm.tenant.access import Actor
from aospmdm.tenant.models import (
    DEFAULT_SCOPE_TAG_ID,
    Admin,
    ApiToken,
    ConsoleSession,
    Organization,
    RoleAssignment,
    RoleAssignmentMember,
    RoleAssignmentScopeTag,
    RoleDefinition,
    ScopeTag,
    ScopeTagLink,
    SignInFailure,
)
from aospmdm.tenant.schemas import (
    RoleAssignmentCreate,
    RoleDefinitionCreate,
    RoleDefinitionUpdate,
    ScopeTagCreate,
    ScopeTagUpdate,
)

permissions.register(
    Permission("organization.read", "Read the organization, MDM authority and licenses."),
    Permission("organization.write", "Set the MDM authority and the organization's name."),
    Permission("admins.read", "See the console's administrators."),
    Permission("admins.write", "Add and disable administrators."),
    Permission("roles.read", "Read roles, role assignments and scope tags."),
    Permission("roles.write", "Create and change roles, role assignments and scope tags."),
    Permission("audit.read", "Read the audit log."),
)

FIRST_ADMIN_EMAIL = "admin@aospmdm.local"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
CATEGORY = "Role"

# --- bootstrap ------------------------------------------------------------------------------


def bootstrap(session: Session) -> None:
    """Make the rows every installation has: the organization, the Default scope tag and the
    built-in roles. Idempotent, so every start and every CLI command may call it."""
    now = clock.now()
    if session.scalar(select(func.count()).select_from(Organization)) == 0:
        session.add(Organization(display_name="aospmdm", created_at=now))
    if session.get(ScopeTag, DEFAULT_SCOPE_TAG_ID) is None:
        session.add(
            ScopeTag(
                id=DEFAULT_SCOPE_TAG_ID,
                display_name="Default",
                description="Put on every object that has no other scope tag.",
                is_built_in=True,
                created_at=now,
            )
        )
    for name, description in BUILTIN_ROLES.items():
        if session.get(RoleDefinition, builtin_role_id(name)) is None:
            session.add(
                RoleDefinition(
                    id=builtin_role_id(name),
                    display_name=name,
                    description=description,
                    is_built_in=True,
                    permissions=[],
                    created_at=now,
                    last_modified_at=now,
                )
            )
    session.flush()


def ensure_bootstrapped(factory: sessionmaker[Session]) -> None:
    """Bootstrap in its own transaction, under the setup lock: processes starting together
    on an empty database make the rows once."""
    with transaction(factory) as session:
        serialize_setup(session)
        bootstrap(session)


def ensure_first_admin(session: Session) -> tuple[str, str] | None:
    """On first start, create an Intune Administrator with a random password.

    Returns (email, password) once, when it creates the admin; None ever after."""
    serialize_setup(session)
    if session.scalar(select(func.count()).select_from(Admin)) != 0:
        return None
    password = new_password()
    create_admin(
        session,
        access.cli_actor(),
        FIRST_ADMIN_EMAIL,
        password,
        role_name=INTUNE_ADMINISTRATOR,
        display_name="First administrator",
    )
    return FIRST_ADMIN_EMAIL, password


# --- organization, MDM authority, licenses -------------------------------------------------


def organization(session: Session) -> Organization:
    org = session.scalars(select(Organization)).first()
    if org is None:
        raise RuntimeError("the database is not bootstrapped")
    return org


def get_organization(
    session: Session, actor: Actor, org_id: str, perm: str = "organization.read"
) -> Organization:
    actor.require(perm)
    org = organization(session)
    if org.id != org_id:
        raise NotFound(f"No organization with id '{org_id}' exists.")
    return org


def update_organization(session: Session, actor: Actor, org_id: str, display_name: str) -> None:
    org = get_organization(session, actor, org_id, "organization.write")
    old = org.display_name
    org.display_name = display_name
    audit.record(
        session,
        actor,
        category="Organization",
        activity="Rename organization",
        operation="Patch",
        target_type="organization",
        target_id=org.id,
        target_name=display_name,
        details={"displayName": {"old": old, "new": display_name}},
    )


def set_mdm_authority(session: Session, actor: Actor, org_id: str) -> bool:
    """Set the MDM authority once. Repeating it changes nothing and returns False."""
    org = get_organization(session, actor, org_id, "organization.write")
    if org.mdm_authority != "unknown":
        return False
    org.mdm_authority = "intune"
    org.mdm_authority_set_at = clock.now()
    audit.record(
        session,
        actor,
        category="Organization",
        activity="Set MDM authority",
        operation="Action",
        target_type="organization",
        target_id=org.id,
        target_name=org.display_name,
        details={"mobileDeviceManagementAuthority": "intune"},
    )
    return True


def mdm_authority_is_set(session: Session) -> bool:
    return organization(session).mdm_authority != "unknown"


def set_license_count(session: Session, actor: Actor, count: int) -> None:
    if count < 0 or count > 10_000_000:
        raise BadRequest("The license count must be between 0 and 10,000,000.", target="count")
    org = organization(session)
    if count < org.licenses_consumed:
        raise Conflict(
            f"{org.licenses_consumed} licenses are in use; the count cannot go below that. "
            "Wipe or delete devices first."
        )
    old = org.license_count
    org.license_count = count
    audit.record(
        session,
        actor,
        category="Organization",
        activity="Set device licenses",
        operation="Patch",
        target_type="organization",
        target_id=org.id,
        target_name=org.display_name,
        details={"licenses": {"old": old, "new": count}},
    )


def consume_license(session: Session) -> bool:
    """Take one device license, atomically: False when none is free (no race between two
    enrollments can overdraw the count)."""
    result = session.execute(
        update(Organization)
        .where(Organization.licenses_consumed < Organization.license_count)
        .values(licenses_consumed=Organization.licenses_consumed + 1)
    )
    return bool(getattr(result, "rowcount", 0))


def release_license(db: Executor) -> None:
    """Give one device license back (a device was wiped or deleted)."""
    db.execute(
        update(Organization)
        .where(Organization.licenses_consumed > 0)
        .values(licenses_consumed=Organization.licenses_consumed - 1)
    )


# --- admins and credentials ----------------------------------------------------------------


def _normal_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise BadRequest(f"'{email}' is not an email address.", target="email")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            target="password",
        )
    if len(password) > 1024:
        raise BadRequest("The password is longer than 1024 characters.", target="password")


def create_admin(
    session: Session,
    actor: Actor,
    email: str,
    password: str,
    *,
    role_name: str,
    scope_tag_names: list[str] | None = None,
    display_name: str | None = None,
) -> Admin:
    """Create an admin and assign them a role, scoped to the named tags (none: all objects)."""
    actor.require("admins.write")
    email = _normal_email(email)
    check_password_strength(password)
    role = session.scalars(
        select(RoleDefinition).where(func.lower(RoleDefinition.display_name) == role_name.lower())
    ).first()
    if role is None:
        names = ", ".join(sorted(session.scalars(select(RoleDefinition.display_name))))
        raise BadRequest(f"No role is named '{role_name}'. Roles: {names}.", target="role")
    tag_ids = [scope_tag_by_name(session, n).id for n in (scope_tag_names or [])]
    if session.scalars(select(Admin).where(Admin.email == email)).first() is not None:
        raise Conflict(f"An admin with email '{email}' already exists.", target="email")
    admin = Admin(
        email=email,
        display_name=display_name or email,
        password_hash=hash_password(password),
        created_at=clock.now(),
    )
    session.add(admin)
    session.flush()
    audit.record(
        session,
        actor,
        category="Role",
        activity="Create administrator",
        operation="Create",
        target_type="administrator",
        target_id=admin.id,
        target_name=email,
    )
    create_role_assignment(
        session,
        actor,
        RoleAssignmentCreate(
            display_name=f"{role.display_name}: {email}",
            role_definition_id=role.id,
            members=[admin.id],
            role_scope_tag_ids=tag_ids,
        ),
    )
    return admin


def list_admins(session: Session, actor: Actor) -> list[Admin]:
    actor.require("admins.read")
    return list(session.scalars(select(Admin).order_by(Admin.email)))


def admin_by_email(session: Session, email: str) -> Admin:
    admin = session.scalars(select(Admin).where(Admin.email == email.strip().lower())).first()
    if admin is None:
        raise NotFound(f"No admin has the email '{email}'.", target="email")
    return admin


def create_api_token(session: Session, actor: Actor, email: str, name: str) -> str:
    """A new bearer token for an admin. Only its hash is kept; the token is shown once."""
    actor.require("admins.write")
    admin = admin_by_email(session, email)
    token = new_secret("amdm_")
    row = ApiToken(
        admin_id=admin.id, name=name[:128], token_hash=hash_secret(token), created_at=clock.now()
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        category="Role",
        activity="Create API token",
        operation="Create",
        target_type="apiToken",
        target_id=row.id,
        target_name=f"{admin.email}: {row.name}",
    )
    return token


def admin_for_token(session: Session, token: str) -> Admin | None:
    """The enabled admin holding an unrevoked API token, or None."""
    found = session.execute(
        select(ApiToken, Admin)
        .join(Admin, Admin.id == ApiToken.admin_id)
        .where(
            ApiToken.token_hash == hash_secret(token),
            ApiToken.revoked_at.is_(None),
            Admin.enabled.is_(True),
        )
    ).first()
    if found is None:
        return None
    row, admin = found
    now = clock.now()
    # Write the last-use time at most once a minute: a write per API call would cost more.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return admin


# --- console sign-in ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    admin: Admin | None
    session_token: str | None = None
    csrf_token: str | None = None
    error: str | None = None
    throttled: bool = False


def sign_in(
    session: Session, settings: Settings, email: str, password: str, address: str
) -> SignIn:
    """Check a console sign-in. Failures are recorded and throttled per account and per
    address over a window; they are returned, not raised, so their records are committed."""
    email = email.strip().lower()[:254]
    now = clock.now()
    since = now - timedelta(minutes=settings.signin_window_minutes)
    by_account = session.scalar(
        select(func.count()).where(SignInFailure.email == email, SignInFailure.at >= since)
    )
    by_address = session.scalar(
        select(func.count()).where(SignInFailure.address == address, SignInFailure.at >= since)
    )
    who = access.Actor(name=email or "anonymous", type="anonymous", address=address)
    if (by_account or 0) >= settings.signin_max_failures_per_account or (
        by_address or 0
    ) >= settings.signin_max_failures_per_address:
        audit.record(
            session,
            who,
            category="Authentication",
            activity="Sign in",
            operation="SignIn",
            result="failure",
            message="throttled",
        )
        return SignIn(
            admin=None,
            throttled=True,
            error="Too many failed sign-ins. Wait "
            f"{settings.signin_window_minutes} minutes, then try again.",
        )
    admin = session.scalars(select(Admin).where(Admin.email == email)).first()
    ok = verify_password(admin.password_hash if admin else None, password)
    if not ok or admin is None or not admin.enabled:
        session.add(SignInFailure(email=email, address=address, at=now))
        audit.record(
            session,
            who,
            category="Authentication",
            activity="Sign in",
            operation="SignIn",
            result="failure",
            message="disabled account" if (ok and admin) else "wrong email or password",
        )
        return SignIn(admin=None, error="The email or password is wrong.")
    token = new_secret()
    csrf = new_secret()
    session.add(
        ConsoleSession(
            admin_id=admin.id,
            token_hash=hash_secret(token),
            csrf_token=csrf,
            address=address[:64],
            created_at=now,
            last_seen_at=now,
        )
    )
    admin.last_sign_in_at = now
    audit.record(
        session,
        access.Actor(name=admin.email, type="admin", admin_id=admin.id, address=address),
        category="Authentication",
        activity="Sign in",
        operation="SignIn",
        target_type="administrator",
        target_id=admin.id,
        target_name=admin.email,
    )
    return SignIn(admin=admin, session_token=token, csrf_token=csrf)


def console_session(
    session: Session, settings: Settings, token: str
) -> tuple[Admin, ConsoleSession] | None:
    """The live console session for a cookie's token; an idle one is over (the
    ``prune_sign_in_state`` job deletes it)."""
    row = session.scalars(
        select(ConsoleSession).where(ConsoleSession.token_hash == hash_secret(token))
    ).first()
    if row is None:
        return None
    now = clock.now()
    if now - row.last_seen_at > timedelta(minutes=settings.session_idle_minutes):
        return None
    admin = session.get(Admin, row.admin_id)
    if admin is None or not admin.enabled:
        return None
    if now - row.last_seen_at > timedelta(seconds=30):
        row.last_seen_at = now
    return admin, row


def prune_sign_in_state(session: Session, settings: Settings) -> None:
    """Delete idle console sessions and failed sign-ins older than the throttling window."""
    now = clock.now()
    session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.last_seen_at < now - timedelta(minutes=settings.session_idle_minutes)
        )
    )
    session.execute(
        delete(SignInFailure).where(
            SignInFailure.at < now - timedelta(minutes=settings.signin_window_minutes)
        )
    )


def sign_out(session: Session, actor: Actor, row: ConsoleSession) -> None:
    session.delete(row)
    audit.record(
        session,
        actor,
        category="Authentication",
        activity="Sign out",
        operation="SignOut",
        target_type="administrator",
        target_id=actor.admin_id,
        target_name=actor.name,
    )


# --- scope tags ---------------------------------------------------------------------------


def scope_tag_by_name(session: Session, name: str) -> ScopeTag:
    tag = session.scalars(
        select(ScopeTag).where(func.lower(ScopeTag.display_name) == name.strip().lower())
    ).first()
    if tag is None:
        raise NotFound(
            f"No scope tag is named '{name}'. Create it first: aospmdm scope-tag create "
            f'"{name}".',
            target="scopeTag",
        )
    return tag


def list_scope_tags(session: Session, actor: Actor) -> Any:
    actor.require("roles.read")
    return select(ScopeTag).order_by(ScopeTag.display_name)


def get_scope_tag(
    session: Session, actor: Actor, tag_id: str, perm: str = "roles.read"
) -> ScopeTag:
    actor.require(perm)
    tag = session.get(ScopeTag, tag_id)
    if tag is None:
        raise NotFound(f"No roleScopeTag with id '{tag_id}' exists.")
    return tag


def _unique_tag_name(session: Session, name: str, except_id: str | None = None) -> None:
    clash = session.scalars(
        select(ScopeTag).where(func.lower(ScopeTag.display_name) == name.lower())
    ).first()
    if clash is not None and clash.id != except_id:
        raise Conflict(f"A scope tag named '{name}' already exists.", target="displayName")


def create_scope_tag(session: Session, actor: Actor, data: ScopeTagCreate) -> ScopeTag:
    actor.require("roles.write")
    _unique_tag_name(session, data.display_name)
    tag = ScopeTag(
        display_name=data.display_name, description=data.description, created_at=clock.now()
    )
    session.add(tag)
    session.flush()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Create scope tag",
        operation="Create",
        target_type="roleScopeTag",
        target_id=tag.id,
        target_name=tag.display_name,
    )
    return tag


def update_scope_tag(session: Session, actor: Actor, tag_id: str, data: ScopeTagUpdate) -> ScopeTag:
    tag = get_scope_tag(session, actor, tag_id, "roles.write")
    changes = data.given()
    if tag.is_built_in and "display_name" in changes and changes["display_name"] != "Default":
        raise BadRequest("The Default scope tag cannot be renamed.", target="displayName")
    if data.display_name is not None:
        _unique_tag_name(session, data.display_name, except_id=tag.id)
        tag.display_name = data.display_name
    if data.description is not None:
        tag.description = data.description
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Update scope tag",
        operation="Patch",
        target_type="roleScopeTag",
        target_id=tag.id,
        target_name=tag.display_name,
        details={k: v for k, v in changes.items()},
    )
    return tag


def delete_scope_tag(session: Session, actor: Actor, tag_id: str) -> None:
    tag = get_scope_tag(session, actor, tag_id, "roles.write")
    if tag.is_built_in:
        raise BadRequest("The Default scope tag cannot be deleted.", target="id")
    in_use = session.scalar(
        select(func.count()).select_from(ScopeTagLink).where(ScopeTagLink.tag_id == tag.id)
    ) or session.scalar(
        select(func.count())
        .select_from(RoleAssignmentScopeTag)
        .where(RoleAssignmentScopeTag.tag_id == tag.id)
    )
    if in_use:
        raise Conflict(
            f"Scope tag '{tag.display_name}' is on objects or role assignments; "
            "remove it from them first."
        )
    session.delete(tag)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Delete scope tag",
        operation="Delete",
        target_type="roleScopeTag",
        target_id=tag.id,
        target_name=tag.display_name,
    )


# --- role definitions --------------------------------------------------------------------

_BUILTIN = RoleDefinition.is_built_in.is_(True)


def role_statement(actor: Actor) -> Any:
    return access.visible(
        select(RoleDefinition).order_by(
            RoleDefinition.is_built_in.desc(), RoleDefinition.display_name
        ),
        RoleDefinition,
        actor,
        "roles.read",
        also=_BUILTIN,
    )


def get_role(
    session: Session, actor: Actor, role_id: str, perm: str = "roles.read"
) -> RoleDefinition:
    return access.get_visible(session, RoleDefinition, role_id, actor, perm, also=_BUILTIN)


def _permissions_from(data: RoleDefinitionCreate | RoleDefinitionUpdate) -> list[str]:
    names: list[str] = []
    for rp in data.role_permissions or []:
        for ra in rp.resource_actions:
            names.extend(ra.allowed_resource_actions)
    unknown = [n for n in names if not permissions.is_permission(n)]
    if unknown:
        raise BadRequest(
            f"'{unknown[0]}' is not a permission. See GET "
            "/beta/deviceManagement/resourceOperations for the list.",
            target="rolePermissions",
        )
    if not names:
        raise BadRequest("A role needs at least one permission.", target="rolePermissions")
    return sorted(set(names))


def _unique_role_name(session: Session, name: str, except_id: str | None = None) -> None:
    clash = session.scalars(
        select(RoleDefinition).where(func.lower(RoleDefinition.display_name) == name.lower())
    ).first()
    if clash is not None and clash.id != except_id:
        raise Conflict(f"A role named '{name}' already exists.", target="displayName")


def _no_escalation(
    actor: Actor, perms: list[str], tags: list[str] | None = None, target: str = "rolePermissions"
) -> None:
    """An admin cannot hand out a permission they do not hold themselves, nor, when granting
    it through an assignment, beyond the scope tags they hold it for."""
    for perm in perms:
        if not actor.can(perm):
            raise BadRequest(
                f"You cannot grant '{perm}': you do not hold it yourself.", target=target
            )
        scope = actor.scope(perm)
        if tags is not None and scope is not None and (not tags or not set(tags) <= scope):
            raise BadRequest(
                f"You hold '{perm}' only within your scope tags, so you can only grant it "
                "within them.",
                target="roleScopeTagIds",
            )


def create_role(session: Session, actor: Actor, data: RoleDefinitionCreate) -> RoleDefinition:
    actor.require("roles.write")
    perms = _permissions_from(data)
    _no_escalation(actor, perms)
    _unique_role_name(session, data.display_name)
    now = clock.now()
    role = RoleDefinition(
        display_name=data.display_name,
        description=data.description,
        is_built_in=False,
        permissions=perms,
        created_at=now,
        last_modified_at=now,
    )
    session.add(role)
    session.flush()
    access.tag_new(session, RoleDefinition, role.id, actor, "roles.write", data.role_scope_tag_ids)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Create role",
        operation="Create",
        target_type="roleDefinition",
        target_id=role.id,
        target_name=role.display_name,
        details={"permissions": perms},
    )
    return role


def update_role(
    session: Session, actor: Actor, role_id: str, data: RoleDefinitionUpdate
) -> RoleDefinition:
    actor.require("roles.write")
    role = get_role(session, actor, role_id, "roles.write")
    if role.is_built_in:
        raise BadRequest("Built-in roles cannot be changed; copy them into a custom role.")
    changes: dict[str, Any] = {}
    if data.display_name is not None:
        _unique_role_name(session, data.display_name, except_id=role.id)
        changes["displayName"] = data.display_name
        role.display_name = data.display_name
    if data.description is not None:
        role.description = data.description
        changes["description"] = data.description
    if data.role_permissions is not None:
        perms = _permissions_from(data)
        _no_escalation(actor, perms)
        role.permissions = perms
        changes["permissions"] = perms
    if data.role_scope_tag_ids is not None:
        changes["roleScopeTagIds"] = access.set_tags(
            session, RoleDefinition, role.id, actor, "roles.write", data.role_scope_tag_ids
        )
    role.last_modified_at = clock.now()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Update role",
        operation="Patch",
        target_type="roleDefinition",
        target_id=role.id,
        target_name=role.display_name,
        details=changes,
    )
    return role


def delete_role(session: Session, actor: Actor, role_id: str) -> None:
    actor.require("roles.write")
    role = get_role(session, actor, role_id, "roles.write")
    if role.is_built_in:
        raise BadRequest("Built-in roles cannot be deleted.")
    if session.scalar(select(func.count()).where(RoleAssignment.role_definition_id == role.id)):
        raise Conflict(f"Role '{role.display_name}' is assigned; remove its assignments first.")
    access.untag(session, RoleDefinition, role.id)
    session.delete(role)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Delete role",
        operation="Delete",
        target_type="roleDefinition",
        target_id=role.id,
        target_name=role.display_name,
    )


# --- role assignments --------------------------------------------------------------------


def _within_scope(actor: Actor, perm: str) -> Any:
    """A scoped admin sees only assignments it could have made: scoped, inside its tags."""
    actor.require(perm)
    scope = actor.scope(perm)
    if scope is None:
        return true()
    link = RoleAssignmentScopeTag
    scoped = exists().where(link.assignment_id == RoleAssignment.id)
    foreign = exists().where(
        link.assignment_id == RoleAssignment.id, link.tag_id.not_in(sorted(scope))
    )
    return and_(scoped, ~foreign)


def assignment_statement(actor: Actor) -> Any:
    return (
        select(RoleAssignment)
        .where(_within_scope(actor, "roles.read"))
        .order_by(RoleAssignment.display_name, RoleAssignment.id)
    )


def get_assignment(
    session: Session, actor: Actor, assignment_id: str, perm: str = "roles.read"
) -> RoleAssignment:
    row = session.scalars(
        select(RoleAssignment).where(RoleAssignment.id == assignment_id, _within_scope(actor, perm))
    ).first()
    if row is None:
        raise NotFound(
            f"No roleAssignment with id '{assignment_id}' exists, or you may not see it."
        )
    return row


def assignment_details(
    session: Session, rows: Sequence[RoleAssignment]
) -> dict[str, tuple[list[Admin], list[str]]]:
    """Members and scope tags of several assignments, in two queries."""
    ids = [r.id for r in rows]
    out: dict[str, tuple[list[Admin], list[str]]] = {i: ([], []) for i in ids}
    if not ids:
        return out
    for aid, admin in session.execute(
        select(RoleAssignmentMember.assignment_id, Admin)
        .join(Admin, Admin.id == RoleAssignmentMember.admin_id)
        .where(RoleAssignmentMember.assignment_id.in_(ids))
        .order_by(Admin.email)
    ):
        out[aid][0].append(admin)
    for aid, tid in session.execute(
        select(RoleAssignmentScopeTag.assignment_id, RoleAssignmentScopeTag.tag_id)
        .where(RoleAssignmentScopeTag.assignment_id.in_(ids))
        .order_by(RoleAssignmentScopeTag.tag_id)
    ):
        out[aid][1].append(tid)
    return out


def create_role_assignment(
    session: Session, actor: Actor, data: RoleAssignmentCreate
) -> RoleAssignment:
    actor.require("roles.write")
    try:
        role = get_role(session, actor, data.role_definition_id, "roles.write")
    except NotFound:
        raise BadRequest(
            f"No role definition with id '{data.role_definition_id}' exists, or you may not "
            "see it.",
            target="roleDefinitionId",
        ) from None
    tag_ids = list(dict.fromkeys(data.role_scope_tag_ids))
    if len(tag_ids) > access.MAX_TAGS_PER_OBJECT:
        raise BadRequest(
            f"A role assignment can hold at most {access.MAX_TAGS_PER_OBJECT} scope tags.",
            target="roleScopeTagIds",
        )
    if tag_ids:
        known = set(session.scalars(select(ScopeTag.id).where(ScopeTag.id.in_(tag_ids))))
        missing = [t for t in tag_ids if t not in known]
        if missing:
            raise BadRequest(f"Scope tag '{missing[0]}' does not exist.", target="roleScopeTagIds")
    scope = actor.scope("roles.write")
    if scope is not None and (not tag_ids or not set(tag_ids) <= scope):
        raise BadRequest(
            "A scoped admin can only assign roles scoped to their own scope tags.",
            target="roleScopeTagIds",
        )
    _no_escalation(actor, access.role_permissions(role), tag_ids, target="roleDefinitionId")
    members: list[Admin] = []
    for ref in dict.fromkeys(data.members):
        admin = session.scalars(
            select(Admin).where(or_(Admin.id == ref, Admin.email == ref.strip().lower()))
        ).first()
        if admin is None:
            raise BadRequest(f"No admin has the id or email '{ref}'.", target="members")
        members.append(admin)
    row = RoleAssignment(
        display_name=data.display_name,
        description=data.description,
        role_definition_id=role.id,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    session.add_all(RoleAssignmentMember(assignment_id=row.id, admin_id=a.id) for a in members)
    session.add_all(RoleAssignmentScopeTag(assignment_id=row.id, tag_id=t) for t in tag_ids)
    session.flush()
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Create role assignment",
        operation="Create",
        target_type="roleAssignment",
        target_id=row.id,
        target_name=row.display_name,
        details={
            "role": role.display_name,
            "members": [a.email for a in members],
            "roleScopeTagIds": tag_ids,
        },
    )
    return row


def delete_role_assignment(session: Session, actor: Actor, assignment_id: str) -> None:
    row = get_assignment(session, actor, assignment_id, "roles.write")
    full_admin = builtin_role_id(INTUNE_ADMINISTRATOR)
    if row.role_definition_id == full_admin and not _other_full_admin(session, row.id):
        raise Conflict(
            "This is the last assignment of Intune Administrator; removing it would leave "
            "nobody able to administer the tenant."
        )
    session.delete(row)
    audit.record(
        session,
        actor,
        category=CATEGORY,
        activity="Delete role assignment",
        operation="Delete",
        target_type="roleAssignment",
        target_id=row.id,
        target_name=row.display_name,
    )


def _other_full_admin(session: Session, except_assignment: str) -> bool:
    """Whether an enabled admin keeps an unscoped Intune Administrator assignment."""
    unscoped = ~exists().where(RoleAssignmentScopeTag.assignment_id == RoleAssignment.id)
    return bool(
        session.scalar(
            select(func.count())
            .select_from(RoleAssignment)
            .join(RoleAssignmentMember, RoleAssignmentMember.assignment_id == RoleAssignment.id)
            .join(Admin, Admin.id == RoleAssignmentMember.admin_id)
            .where(
                RoleAssignment.role_definition_id == builtin_role_id(INTUNE_ADMINISTRATOR),
                RoleAssignment.id != except_assignment,
                Admin.enabled.is_(True),
                unscoped,
            )
        )
    )


def set_admin_enabled(session: Session, actor: Actor, email: str, enabled: bool) -> Admin:
    """Disable (or re-enable) an admin: a disabled admin's tokens and sessions stop working."""
    actor.require("admins.write")
    admin = admin_by_email(session, email)
    if admin.enabled == enabled:
        return admin
    admin.enabled = enabled
    session.flush()
    if not enabled:
        if not _other_full_admin(session, except_assignment=""):
            raise Conflict(
                f"{admin.email} is the last enabled Intune Administrator; disabling them would "
                "leave nobody able to administer the tenant."
            )
        session.execute(delete(ConsoleSession).where(ConsoleSession.admin_id == admin.id))
    audit.record(
        session,
        actor,
        category="Role",
        activity="Enable administrator" if enabled else "Disable administrator",
        operation="Patch",
        target_type="administrator",
        target_id=admin.id,
        target_name=admin.email,
    )
    return admin


def revoke_api_tokens(session: Session, actor: Actor, email: str) -> int:
    """Revoke every API token of an admin; returns how many were live."""
    actor.require("admins.write")
    admin = admin_by_email(session, email)
    now = clock.now()
    live = list(
        session.scalars(
            select(ApiToken).where(ApiToken.admin_id == admin.id, ApiToken.revoked_at.is_(None))
        )
    )
    for token in live:
        token.revoked_at = now
    audit.record(
        session,
        actor,
        category="Role",
        activity="Revoke API tokens",
        operation="Action",
        target_type="administrator",
        target_id=admin.id,
        target_name=admin.email,
        details={"revoked": len(live)},
    )
    return len(live)
