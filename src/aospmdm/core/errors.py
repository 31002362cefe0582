"""Domain errors, and their Graph-style body: {"error": {"code", "message", "target"?}}.

Services raise these; the HTTP layer turns them into responses. Nothing here knows HTTP
frameworks, so the CLI reports the same messages.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "badRequest"

    def __init__(self, message: str, *, target: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.target = target
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.target)


class BadRequest(DomainError):
    status = 400
    code = "badRequest"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "notFound"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payloadTooLarge"


def error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if target:
        err["target"] = target
    return {"error": err}
