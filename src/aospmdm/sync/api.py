"""The device API, /device/v1 (docs/protocol.md). Every route here is device-facing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from aospmdm import protocol
from aospmdm.actions import service as actions
from aospmdm.actions.wakeups import Notifier
from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.db import transaction, turn_if_free
from aospmdm.core.errors import BadRequest
from aospmdm.sync import service
from aospmdm.tenant.deps import client_address

router = APIRouter(prefix="/device/v1")
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
