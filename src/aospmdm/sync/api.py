"""The device API, /device/v1 (docs/protocol.md). Every route here is device-facing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from aospmdm import protocol
from aospmdm.actions import service as actions
from aospmdm.actions.wakeups import Notifier
from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.db import transaction, turn_if_free
from aospmdm.core.errors import BadRequest, DomainError
from aospmdm.sync import service
from aospmdm.tenant.deps import client_address

router = APIRouter(prefix="/device/v1")
# Token introspection for the participating (SSO) apps on a device (docs/protocol.md §14).
sso = APIRouter(prefix="/sso/v1")
LOGS = protocol.LOGS_PATH
M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ()))
        if err.get("type") == "json_invalid":
            raise BadRequest("The request body is not valid JSON.") from None
        if err.get("type") == "extra_forbidden":
            raise BadRequest(f"Property '{field}' is not known.", target=field) from None
        raise BadRequest(f"Property '{field}': {err.get('msg')}.", target=field or None) from None


def signed_path(request: Request) -> str:
    """The path as the device signed it: with its query string, when there is one."""
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(
        model.model_dump_json(by_alias=True), status_code=status, media_type="application/json"
    )


@router.post("/enroll", status_code=201, response_model=protocol.EnrollResponse)
async def enroll(request: Request) -> Response:
    """Enroll a device with the token from its QR code (unsigned: the device has no key on
    the server yet; it sends the public key it just generated)."""
    body = _parse(protocol.EnrollRequest, await request.body())
    settings: Settings = request.app.state.settings
    address = client_address(request)

    def work() -> protocol.EnrollResponse:
        with transaction(request.app.state.sessions) as session:
            device, next_seconds = service.enroll(session, settings, body, address)
            return protocol.EnrollResponse(
                device_id=device.id,
                device_name=device.device_name,
                server_time=clock.iso(device.enrolled_at) or "",
                next_check_in_seconds=next_seconds,
                required_apps=service.required_apps(session, settings),
            )

    return _json(await run_in_threadpool(work), 201)


@router.post("/checkin", response_model=protocol.CheckinResponse)
async def checkin(request: Request) -> Response:
    """A signed check-in: facts and (when changed) installed apps in; work and the next
    check-in time out."""
    raw = await request.body()
    settings: Settings = request.app.state.settings
    engine: Engine = request.app.state.engine

    def work() -> protocol.CheckinResponse:
        # The hot path: Core statements on one connection, one short transaction.
        with engine.begin() as conn:
            device = service.authenticate(
                conn, request.method, signed_path(request), request.headers, raw
            )
            request.state.actor = service.device_actor(device, client_address(request))
            return service.check_in(conn, settings, device, _parse(protocol.CheckinRequest, raw))

    # On SQLite the work is in-process CPU: when the write turn is free, doing it right here
    # saves a thread switch per check-in. It never waits for the turn on the event loop (the
    # holder may be a request that needs the loop to finish): then it goes to a thread.
    with turn_if_free(engine) as free:
        if free:
            return _json(work())
    return _json(await run_in_threadpool(work))


@router.get("/wait", response_model=protocol.WaitResponse)
async def wait(request: Request) -> Response:
    """A signed long poll: answers as soon as the device has work, or after about a minute.
    Async end to end: a waiting device holds no worker thread, only an event."""
    raw = await request.body()
    settings: Settings = request.app.state.settings
    engine: Engine = request.app.state.engine
    notifier: Notifier = request.app.state.notifier

    def look() -> bool:
        with engine.begin() as conn:
            device = service.authenticate(
                conn, request.method, signed_path(request), request.headers, raw
            )
            request.state.actor = service.device_actor(device, client_address(request))
            return actions.has_work(conn, device.id)

    # Registered before looking at the queue: work queued in between still wakes it.
    with notifier.waiting(request.headers.get(protocol.HEADER_DEVICE, "")) as woken:
        work = await run_in_threadpool(look)
        if not work:
            await _until_woken_or_gone(request, woken, settings.wait_seconds)
            work = woken.is_set()
    return _json(protocol.WaitResponse(work=work))


async def _until_woken_or_gone(request: Request, woken: asyncio.Event, seconds: float) -> None:
    """Wait for the wake-up, the end of the wait, or the device hanging up (then nothing
    is left to answer, and the server can shut down without waiting for it)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(woken.wait()), asyncio.ensure_future(gone())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@router.post("/results", response_model=protocol.ResultsResponse)
async def results(request: Request) -> Response:
    """Signed results of the device's commands (remote actions)."""
    raw = await request.body()
    engine: Engine = request.app.state.engine

    def work() -> protocol.ResultsResponse:
        with engine.begin() as conn:
            device = service.authenticate(
                conn, request.method, signed_path(request), request.headers, raw
            )
            address = client_address(request)
            request.state.actor = service.device_actor(device, address)
            body = _parse(protocol.ResultsRequest, raw)
            return service.results(conn, settings, device, body, address)

    settings: Settings = request.app.state.settings
    return _json(await run_in_threadpool(work))


@router.get("/apps/{version_id}")
async def download_app(version_id: str, request: Request) -> Response:
    """A signed download of an app version's APK, with HTTP Range support (a device resumes
    an interrupted download with ``Range: bytes=N-``)."""
    raw = await request.body()
    settings: Settings = request.app.state.settings
    engine: Engine = request.app.state.engine

    def look() -> tuple[Path, str, str]:
        with engine.begin() as conn:
            device = service.authenticate(
                conn, request.method, signed_path(request), request.headers, raw
            )
            request.state.actor = service.device_actor(device, client_address(request))
            return service.download(conn, settings, device, version_id)

    path, name, sha = await run_in_threadpool(look)
    return FileResponse(
        path,
        media_type="application/vnd.android.package-archive",
        filename=name,
        headers={"X-Aospmdm-Sha256": sha},
    )


@router.post(
    LOGS.removeprefix(router.prefix),
    status_code=201,
    response_model=protocol.LogUploadResponse,
)
async def upload_logs(request: Request) -> Response:
    """A signed upload of the device's logs (the raw zip or UTF-8 text as the body): answers
    the incident ID the user gives the help desk."""
    raw = await request.body()
    settings: Settings = request.app.state.settings

    def work() -> protocol.LogUploadResponse:
        with transaction(request.app.state.sessions) as session:
            device = service.authenticate(
                session, request.method, signed_path(request), request.headers, raw
            )
            address = client_address(request)
            request.state.actor = service.device_actor(device, address)
            return service.upload_logs(
                session,
                settings,
                device,
                raw,
                request.headers.get("content-type", ""),
                request.headers.get(protocol.HEADER_LOG_NAME),
                address,
            )

    return _json(await run_in_threadpool(work), 201)


# --- shared-device sessions (docs/protocol.md §14) ------------------------------------------


@router.post("/sessions", status_code=201, response_model=protocol.SessionResponse)
async def sign_in(request: Request) -> Response:
    """A signed sign-in of a worker on the shared device: the session token for the
    participating apps, with its expiry. It replaces the device's previous session."""
    raw = await request.body()
    settings: Settings = request.app.state.settings

    def work() -> protocol.SessionResponse | DomainError:
        with transaction(request.app.state.sessions) as session:
            device = service.authenticate(
                session, request.method, signed_path(request), request.headers, raw
            )
            address = client_address(request)
            request.state.actor = service.device_actor(device, address)
            body = _parse(protocol.SignInRequest, raw)
            return service.sign_in(session, settings, device, body, address)

    answer = await run_in_threadpool(work)
    if isinstance(answer, DomainError):
        raise answer  # after the failure's records were committed
    return _json(answer, 201)


@router.delete("/sessions/current", status_code=204)
async def sign_out(request: Request) -> Response:
    """Signed global sign-out: the device's session ends for every app on it (204 also
    when no one was signed in)."""
    raw = await request.body()

    def work() -> None:
        with transaction(request.app.state.sessions) as session:
            device = service.authenticate(
                session, request.method, signed_path(request), request.headers, raw
            )
            address = client_address(request)
            request.state.actor = service.device_actor(device, address)
            service.sign_out(session, device, address)

    await run_in_threadpool(work)
    return Response(status_code=204)


def _introspected_token(request: Request, raw: bytes) -> str:
    """The ``token`` parameter: form-encoded as RFC 7662 says, or a JSON object."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            data = json.loads(raw or b"null")
            token = data.get("token") if isinstance(data, dict) else None
        else:
            values = parse_qs(raw.decode(), keep_blank_values=True).get("token")
            token = values[0] if values else None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid.", code="invalid_request") from None
    if not isinstance(token, str) or not token:
        raise BadRequest(
            "Send the token to introspect as the 'token' parameter.",
            target="token",
            code="invalid_request",
        )
    return token


@sso.post("/introspect")
async def introspect(request: Request) -> Response:
    """RFC 7662 token introspection of a session token, signed by the device the token was
    issued on: ``{"active": true, "sub", "username", "exp", "iat", "device_id"}``, or only
    ``{"active": false}``."""
    raw = await request.body()

    def work() -> dict[str, object]:
        with transaction(request.app.state.sessions) as session:
            device = service.authenticate(
                session, request.method, signed_path(request), request.headers, raw
            )
            request.state.actor = service.device_actor(device, client_address(request))
            return service.introspect(session, device, _introspected_token(request, raw))

    answer = await run_in_threadpool(work)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
