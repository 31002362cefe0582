"""The audit log: written in the same transaction as the change it records; append-only."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from aospmdm.core import clock
from aospmdm.core.db import Executor, new_id
from aospmdm.core.odata import Field
from aospmdm.tenant.access import Actor
from aospmdm.tenant.models import AuditEvent

Operation = Literal["Create", "Patch", "Delete", "Action", "SignIn", "SignOut", "Refused"]

# Graph's auditEvent property paths that $filter may use.
FILTER_FIELDS = {
    "activityDateTime": Field(AuditEvent.activity_at, "datetime"),
    "category": Field(AuditEvent.category),
    "activity": Field(AuditEvent.activity),
    "activityResult": Field(AuditEvent.result),
    "activityOperationType": Field(AuditEvent.operation_type),
    "actor/userPrincipalName": Field(AuditEvent.actor),
    "actor/type": Field(AuditEvent.actor_type),
    "resources/resourceId": Field(AuditEvent.target_id),
    "resources/type": Field(AuditEvent.target_type),
}


def record(
    session: Executor,
    actor: Actor,
    *,
    category: str,
    activity: str,
    operation: Operation,
    target_type: str | None = None,
    target_id: str | None = None,
    target_name: str | None = None,
    result: Literal["success", "failure"] = "success",
    details: dict[str, Any] | None = None,
    message: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        activity_at=clock.now(),
        actor=actor.name,
        actor_type=actor.type,
        actor_address=actor.address,
        category=category,
        activity=activity,
        operation_type=operation,
        result=result,
        target_type=target_type,
        target_id=target_id,
        target_name=target_name,
        details=details or {},
        message=message,
    )
    if isinstance(session, Session):
        session.add(event)
        session.flush()
    else:
        # A Core connection (the device check-in path): the same row, as one INSERT.
        values = {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}
        values["id"] = values["id"] or new_id()
        event.id = values["id"]
        session.execute(insert(AuditEvent).values(**values))
    return event


def list_statement(actor: Actor) -> Select[Any]:
    actor.require("audit.read")
    return select(AuditEvent).order_by(AuditEvent.activity_at.desc(), AuditEvent.id)


def to_graph(e: AuditEvent) -> dict[str, Any]:
    resources = []
    if e.target_type or e.target_id:
        resources.append(
            {"displayName": e.target_name, "type": e.target_type, "resourceId": e.target_id}
        )
    return {
        "id": e.id,
        "displayName": e.activity,
        "componentName": e.category,
        "category": e.category,
        "activity": e.activity,
        "activityDateTime": clock.iso(e.activity_at),
        "activityType": e.activity,
        "activityOperationType": e.operation_type,
        "activityResult": e.result,
        "actor": {
            "type": e.actor_type,
            "userPrincipalName": e.actor,
            "ipAddress": e.actor_address,
        },
        "resources": resources,
        "details": e.details,
        "message": e.message,
    }
