"""create_app(): every feature's routers, the console, middleware and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from aospmdm import __version__
from aospmdm.actions import api as actions_api
from aospmdm.actions import pages as actions_pages
from aospmdm.actions import service as actions_service
from aospmdm.actions import wakeups
from aospmdm.apps import api as apps_api
from aospmdm.apps import pages as apps_pages
from aospmdm.apps import service as apps_service
from aospmdm.core.config import Settings
from aospmdm.core.db import make_engine, make_sessionmaker, transaction
from aospmdm.core.errors import DomainError, error_body
from aospmdm.core.http import BodyLimit, validation_error_body
from aospmdm.core.jobs import Job, run_forever
from aospmdm.devices import api as devices_api
from aospmdm.devices import pages as devices_pages
from aospmdm.enrollment import api as enrollment_api
from aospmdm.enrollment import pages as enrollment_pages
from aospmdm.groups import api as groups_api
from aospmdm.groups import pages as groups_pages
from aospmdm.policies import api as policies_api
from aospmdm.policies import pages as policies_pages
from aospmdm.policies import service as policies_service
from aospmdm.support import api as support_api
from aospmdm.support import pages as support_pages
from aospmdm.support import service as support_service
from aospmdm.sync import api as sync_api
from aospmdm.sync import service as sync_service
from aospmdm.tenant import access, audit, service
from aospmdm.tenant import api as tenant_api
from aospmdm.tenant import pages as tenant_pages
from aospmdm.tenant.deps import SignInRequired, client_address
from aospmdm.users import api as users_api
from aospmdm.users import service as users_service
from aospmdm.web import pages as web_pages
from aospmdm.web.templating import HERE as WEB_DIR
from aospmdm.web.templating import render

log = logging.getLogger("aospmdm")

_HTTP_CODES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    405: "methodNotAllowed",
    406: "notAcceptable",
    409: "conflict",
    413: "payloadTooLarge",
    415: "unsupportedMediaType",
    429: "tooManyRequests",
}


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = engine or make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    settings.instance_key  # noqa: B018  (made now, not at the first sign-in)
    service.ensure_bootstrapped(sessions)
    with transaction(sessions) as session:
        apps_service.ensure_required_apps(session, settings)

    jobs = [
        Job("prune request nonces", 300, sync_service.prune_nonces),
        Job("prune sign-in state", 600, lambda s: service.prune_sign_in_state(s, settings)),
        Job("compliance", 300, policies_service.compliance_job),
        Job("prune device actions", 3600, actions_service.prune),
        Job("compliance locks", 60, actions_service.carry_out_compliance_locks),
        Job("end expired device sessions", 600, users_service.end_expired_sessions),
        Job("prune device logs", 3600, lambda s: support_service.prune(s, settings)),
        Job(
            "send notifications",
            60,
            lambda f: policies_service.send_outbox(f, settings),
            own_transactions=True,
        ),
    ]

    notifier = wakeups.Notifier()
    wakeups.install(sessions, notifier)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(run_forever(sessions, jobs))]
        if engine.dialect.name == "postgresql":
            # Wake-ups across workers: every worker listens.
            url = engine.url.render_as_string(hide_password=False)
            tasks.append(asyncio.create_task(wakeups.listen(url, notifier)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        lifespan=lifespan,
        title="aospmdm",
        version=__version__,
        description="Graph-shaped admin API of aospmdm. See docs/api.md.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.notifier = notifier

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: 200 while the process serves."""
        return {"status": "ok"}

    app.include_router(tenant_api.router, tags=["tenant"])
    app.include_router(enrollment_api.router, tags=["enrollment"])
    app.include_router(actions_api.router, tags=["remote actions"])
    app.include_router(devices_api.router, tags=["devices"])
    app.include_router(devices_api.fleet, tags=["devices"])
    app.include_router(groups_api.router, tags=["groups"])
    app.include_router(policies_api.router, tags=["policies"])
    app.include_router(apps_api.router, tags=["apps"])
    app.include_router(support_api.router, tags=["device logs"])
    app.include_router(sync_api.router, tags=["device protocol"])
    app.include_router(sync_api.sso, tags=["device protocol"])
    app.include_router(users_api.router, tags=["users"])
    app.include_router(users_api.device_actions, tags=["remote actions"])
    app.include_router(web_pages.router, include_in_schema=False)
    app.include_router(tenant_pages.router, include_in_schema=False)
    app.include_router(enrollment_pages.router, include_in_schema=False)
    # Before the device pages: /console/devices/actions is not a device id.
    app.include_router(actions_pages.router, include_in_schema=False)
    app.include_router(devices_pages.router, include_in_schema=False)
    app.include_router(groups_pages.router, include_in_schema=False)
    app.include_router(policies_pages.router, include_in_schema=False)
    app.include_router(apps_pages.router, include_in_schema=False)
    app.include_router(support_pages.router, include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    _install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        # An APK upload carries the file and a few form fields.
        larger={
            apps_api.PREFIX: settings.max_apk_bytes + 64 * 1024,
            apps_pages.UPLOAD: settings.max_apk_bytes + 64 * 1024,
            # Device logs arrive as the raw body.
            sync_api.LOGS: settings.max_log_bytes,
        },
    )
    return app


def app_from_environment() -> FastAPI:
    """The app factory for `aospmdm serve --workers N` (each worker builds its own app from
    the environment)."""
    return create_app(Settings())


def _is_console(request: Request) -> bool:
    return request.url.path.startswith("/console")


def _audit_refusal(request: Request, exc: DomainError) -> None:
    """401s and 403s, and every refusal of the device API, are audited in their own
    transaction: the request's rolled back."""
    actor = getattr(request.state, "actor", None) or access.anonymous(client_address(request))
    try:
        with transaction(request.app.state.sessions) as session:
            audit.record(
                session,
                actor,
                category="Authorization",
                activity=f"{request.method} {request.url.path}"[:256],
                operation="Refused",
                result="failure",
                message=f"{exc.status} {exc.code}: {exc.message}"[:2000],
            )
    except Exception:  # the refusal is still returned; a lost audit row is logged
        log.exception("could not audit a refused request")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    def domain_error(request: Request, exc: DomainError) -> Response:
        if exc.status in (401, 403) or request.url.path.startswith("/device/"):
            _audit_refusal(request, exc)
        if _is_console(request):
            return _console_error(request, exc.status, exc.message)
        bearer = exc.status == 401 and not request.url.path.startswith("/device/")
        headers = {"WWW-Authenticate": "Bearer"} if bearer else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(SignInRequired)
    def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        return web_pages.login_redirect(request.url.path)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        body = validation_error_body(exc)
        if _is_console(request):
            return _console_error(request, 400, body["error"]["message"])
        return JSONResponse(body, status_code=400)

    @app.exception_handler(IntegrityError)
    def integrity(request: Request, exc: IntegrityError) -> Response:
        # Two requests racing for the same unique name: the loser gets a conflict.
        message = "The change conflicts with data that changed meanwhile; try again."
        if _is_console(request):
            return _console_error(request, 409, message)
        return JSONResponse(error_body("conflict", message), status_code=409)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"No resource at {request.url.path}."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            message = str(exc.detail)
        if _is_console(request) and exc.status_code == 404:
            return _console_error(request, 404, message)
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internalServerError", "The server failed; this is a bug."),
            status_code=500,
        )


def _console_error(request: Request, status: int, message: str) -> HTMLResponse:
    console: Any = None
    heading = {403: "Not allowed", 404: "Not found"}.get(status, "Something is wrong")
    return render(
        request,
        "error.html",
        status_code=status,
        console=console,
        error=message,
        heading=heading,
        status=status,
    )
