"""HTTP plumbing that knows no feature: the body-size cap and Graph-style error responses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aospmdm.core.errors import error_body


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over a cap with 413, before they are read into memory.

    Checks Content-Length up front and counts the bytes of chunked bodies as they arrive.
    ``larger`` gives the paths (exact, e.g. an upload route) that take a larger cap."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.larger.get(scope.get("path", ""), self.max_bytes)
        if cap != self.max_bytes:
            await BodyLimit(self.app, cap)(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                    await _send_error(send, 400, "badRequest", "Content-Length is not a number.")
                    return
                if too_big:
                    await self._refuse(send)
                    return
        seen = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks may catch the error raised while reading and answer on their own
            # (FastAPI says 400); an over-long body gets the 413 it deserves instead.
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await _send_error(
            send,
            413,
            "payloadTooLarge",
            f"The request body is larger than {self.max_bytes} bytes.",
        )


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    """Turn the first validation error into a Graph error that names the field."""
    errors = exc.errors()
    if not errors:
        return error_body("badRequest", "The request is not valid.")
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
    field = ".".join(loc)
    kind = err.get("type", "")
    if kind == "json_invalid":
        return error_body("badRequest", "The request body is not valid JSON.")
    if kind == "extra_forbidden":
        return error_body(
            "badRequest", f"Property '{field}' is not known on this resource.", target=field
        )
    if not field and kind in ("model_attributes_type", "dict_type", "model_type"):
        return error_body(
            "badRequest",
            "The request body must be a JSON object, sent with Content-Type: application/json.",
        )
    if kind == "missing" and not field:
        return error_body("badRequest", "A JSON request body is required.")
    if kind == "missing":
        return error_body("badRequest", f"Property '{field}' is required.", target=field)
    # Our own validators' messages arrive as "Value error, <message>" from pydantic.
    msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ").rstrip(".")
    if field:
        return error_body("badRequest", f"Property '{field}': {msg}.", target=field)
    return error_body("badRequest", f"The request body: {msg}.")
