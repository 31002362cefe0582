"""Who is acting, what they may do, and which objects they may see: the one RBAC and
scope-tag mechanism that every feature calls for reads, lists and writes (SPEC.md §2).

Every tagged object's tags live in ``scope_tag_link`` keyed by the object's table name, so a
feature makes an object scope-tagged by calling ``tag_new`` when it creates it, ``visible`` /
``get_visible`` when it reads, and ``set_tags`` when an admin edits ``roleScopeTagIds``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, delete, exists, or_, select
from sqlalchemy.orm import Session

from aospmdm.core import permissions
from aospmdm.core.db import Executor
from aospmdm.core.errors import BadRequest, Forbidden, NotFound
from aospmdm.tenant.models import (
    DEFAULT_SCOPE_TAG_ID,
    Admin,
    RoleAssignment,
    RoleAssignmentMember,
    RoleAssignmentScopeTag,
    RoleDefinition,
    ScopeTag,
    ScopeTagLink,
)

MAX_TAGS_PER_OBJECT = 100
ActorType = Literal["admin", "cli", "anonymous", "device", "system"]
T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """The acting principal. ``grants`` maps each permission it holds to the scope tag ids it
    holds it for, or to None when some assignment gives it without tags (sees everything)."""

    name: str
    type: ActorType
    admin_id: str | None = None
    address: str | None = None
    grants: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def can(self, perm: str) -> bool:
        return perm in self.grants

    def require(self, perm: str) -> None:
        if perm not in self.grants:
            raise Forbidden(
                f"You need the '{perm}' permission for this. Ask an Intune Administrator to "
                "assign you a role that has it.",
                code="forbidden",
            )

    def scope(self, perm: str) -> frozenset[str] | None:
        """The tags this actor may act within for ``perm``; None means every object."""
        return self.grants.get(perm, frozenset())

    @property
    def is_scoped(self) -> bool:
        return any(tags is not None for tags in self.grants.values())


def cli_actor() -> Actor:
    """The operator at the server's console: not subject to RBAC, audited as cli:<os user>."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(
        name=f"cli:{user}",
        type="cli",
        grants={p.name: None for p in permissions.all_permissions()},
    )


# The server acting on its own rules (a compliance action coming due, a periodic job).
SYSTEM = Actor(name="aospmdm", type="system")


def anonymous(address: str | None) -> Actor:
    return Actor(name="anonymous", type="anonymous", address=address)


def actor_for_admin(session: Session, admin: Admin, address: str | None) -> Actor:
    """Collect an admin's grants over all their role assignments, in one query (it runs on
    every authenticated request)."""
    rows = session.execute(
        select(
            RoleAssignment.id,
            RoleDefinition.is_built_in,
            RoleDefinition.display_name,
            RoleDefinition.permissions,
            RoleAssignmentScopeTag.tag_id,
        )
        .join(RoleAssignmentMember, RoleAssignmentMember.assignment_id == RoleAssignment.id)
        .join(RoleDefinition, RoleDefinition.id == RoleAssignment.role_definition_id)
        .outerjoin(
            RoleAssignmentScopeTag, RoleAssignmentScopeTag.assignment_id == RoleAssignment.id
        )
        .where(RoleAssignmentMember.admin_id == admin.id)
    ).all()
    perms_by_assignment: dict[str, list[str]] = {}
    tags_by_assignment: dict[str, set[str]] = {}
    for assignment_id, built_in, name, custom, tag_id in rows:
        perms_by_assignment[assignment_id] = _permissions(built_in, name, custom)
        if tag_id is not None:
            tags_by_assignment.setdefault(assignment_id, set()).add(tag_id)
    grants: dict[str, frozenset[str] | None] = {}
    for assignment_id, perms in perms_by_assignment.items():
        tags = tags_by_assignment.get(assignment_id)
        for perm in perms:
            if tags is None or grants.get(perm, frozenset()) is None:
                grants[perm] = None
            else:
                grants[perm] = frozenset(grants.get(perm) or frozenset()) | tags
    return Actor(name=admin.email, type="admin", admin_id=admin.id, address=address, grants=grants)


def role_permissions(role: RoleDefinition) -> list[str]:
    return _permissions(role.is_built_in, role.display_name, role.permissions)


def _permissions(built_in: bool, name: str, custom: list[str]) -> list[str]:
    if built_in:
        return sorted(permissions.builtin_role_permissions(name))
    return sorted(p for p in custom if permissions.is_permission(p))


# --- the scope-tag mechanism ------------------------------------------------------------


def _kind(model: Any) -> str:
    return str(model.__tablename__)


def visible(
    stmt: Select[Any],
    model: Any,
    actor: Actor,
    perm: str,
    also: ColumnElement[bool] | None = None,
) -> Select[Any]:
    """Limit a query over a tagged model to the objects the actor may see for ``perm``.

    ``also`` names objects everyone with the permission sees whatever their tags (built-in
    roles, as in Intune)."""
    actor.require(perm)
    tags = actor.scope(perm)
    if tags is None:
        return stmt
    link = ScopeTagLink
    shares_tag = exists().where(
        link.kind == _kind(model), link.object_id == model.id, link.tag_id.in_(sorted(tags))
    )
    return stmt.where(shares_tag if also is None else or_(shares_tag, also))


def get_visible(
    session: Session,
    model: type[T],
    obj_id: str,
    actor: Actor,
    perm: str,
    also: ColumnElement[bool] | None = None,
) -> T:
    """One tagged object by id: 403 without the permission, then 404 if missing or out of scope."""
    actor.require(perm)
    if "\x00" in obj_id:  # no object has one, and PostgreSQL cannot even compare it
        raise not_found(model, obj_id.replace("\x00", ""))
    where = model.id == obj_id  # type: ignore[attr-defined]
    stmt = visible(select(model).where(where), model, actor, perm, also)
    obj: T | None = session.scalars(stmt).first()
    if obj is None:
        raise not_found(model, obj_id)
    return obj


def not_found(model: Any, obj_id: str) -> NotFound:
    noun = getattr(model, "__graph_name__", _kind(model))
    return NotFound(f"No {noun} with id '{obj_id}' exists, or you may not see it.")


def usable_tags(session: Session, actor: Actor, perm: str) -> list[ScopeTag]:
    """The scope tags this admin may put on what ``perm`` writes (the console's pickers)."""
    scope = actor.scope(perm)
    stmt = select(ScopeTag).order_by(ScopeTag.display_name)
    if scope is not None:
        stmt = stmt.where(ScopeTag.id.in_(sorted(scope)))
    return list(session.scalars(stmt))


def tags_of(session: Session, model: Any, ids: Sequence[str]) -> dict[str, list[str]]:
    """The tag ids of several objects, in one query."""
    out: dict[str, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    for oid, tid in session.execute(
        select(ScopeTagLink.object_id, ScopeTagLink.tag_id)
        .where(ScopeTagLink.kind == _kind(model), ScopeTagLink.object_id.in_(list(ids)))
        .order_by(ScopeTagLink.tag_id)
    ):
        out[oid].append(tid)
    return out


def _checked_tags(session: Session, actor: Actor, perm: str, requested: Iterable[str]) -> list[str]:
    tag_ids = list(dict.fromkeys(str(t) for t in requested))
    if len(tag_ids) > MAX_TAGS_PER_OBJECT:
        raise BadRequest(
            f"An object can hold at most {MAX_TAGS_PER_OBJECT} scope tags; "
            f"{len(tag_ids)} were given.",
            target="roleScopeTagIds",
        )
    if tag_ids:
        known = set(session.scalars(select(ScopeTag.id).where(ScopeTag.id.in_(tag_ids))))
        missing = [t for t in tag_ids if t not in known]
        if missing:
            raise BadRequest(f"Scope tag '{missing[0]}' does not exist.", target="roleScopeTagIds")
    scope = actor.scope(perm)
    if scope is not None:
        outside = [t for t in tag_ids if t not in scope]
        if outside:
            raise BadRequest(
                f"You cannot assign scope tag '{outside[0]}': it is not one of your scope tags.",
                target="roleScopeTagIds",
            )
    return tag_ids


def tag_new(
    session: Session,
    model: Any,
    obj_id: str,
    actor: Actor,
    perm: str,
    requested: Sequence[str] | None = None,
) -> list[str]:
    """Tag a new object: the requested tags, else its creator's tags, else ``Default``."""
    if requested:
        tag_ids = _checked_tags(session, actor, perm, requested)
    else:
        scope = actor.scope(perm)
        tag_ids = sorted(scope) if scope else [DEFAULT_SCOPE_TAG_ID]
    _write(session, model, obj_id, tag_ids)
    return tag_ids


def set_tags(
    session: Session, model: Any, obj_id: str, actor: Actor, perm: str, requested: Sequence[str]
) -> list[str]:
    """Replace an object's tags. A scoped admin changes only the tags in its scope: tags it
    cannot see stay, so it cannot hide an object from the admins scoped to them. A scoped
    admin cannot remove the last tag; an unscoped admin who clears them gets ``Default``,
    since every object carries at least one tag."""
    tag_ids = _checked_tags(session, actor, perm, requested)
    scope = actor.scope(perm)
    if scope is not None:
        kept = [t for t in tags_of(session, model, [obj_id])[obj_id] if t not in scope]
        tag_ids = list(dict.fromkeys([*tag_ids, *kept]))
        if len(tag_ids) > MAX_TAGS_PER_OBJECT:
            raise BadRequest(
                f"An object can hold at most {MAX_TAGS_PER_OBJECT} scope tags, counting the "
                "ones outside your scope that it keeps.",
                target="roleScopeTagIds",
            )
    if not tag_ids:
        if actor.scope(perm) is not None:
            raise BadRequest(
                "You cannot remove the last scope tag from an object.", target="roleScopeTagIds"
            )
        tag_ids = [DEFAULT_SCOPE_TAG_ID]
    session.execute(
        delete(ScopeTagLink).where(
            ScopeTagLink.kind == _kind(model), ScopeTagLink.object_id == obj_id
        )
    )
    _write(session, model, obj_id, tag_ids)
    return tag_ids


def untag(session: Executor, model: Any, obj_id: str) -> None:
    session.execute(
        delete(ScopeTagLink).where(
            ScopeTagLink.kind == _kind(model), ScopeTagLink.object_id == obj_id
        )
    )


def _write(session: Session, model: Any, obj_id: str, tag_ids: Sequence[str]) -> None:
    session.add_all(ScopeTagLink(kind=_kind(model), object_id=obj_id, tag_id=t) for t in tag_ids)
    session.flush()


def copy_tags(session: Session, from_model: Any, from_id: str, to_model: Any, to_id: str) -> None:
    """Give a new object the tags of another, as a device inherits its enrollment profile's.

    No actor is involved: the server does this on the device's behalf."""
    tags = tags_of(session, from_model, [from_id])[from_id] or [DEFAULT_SCOPE_TAG_ID]
    _write(session, to_model, to_id, tags)
