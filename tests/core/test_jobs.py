"""Periodic jobs: one worker at a time does a run; pruning forgets only stale nonces."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from aospmdm.core import clock
from aospmdm.core.jobs import Job, run_once
from aospmdm.sync.models import RequestNonce
from aospmdm.sync.service import prune_nonces
from tests.conftest import Env
from tests.sync.device import Device, secret_of


def test_prune_forgets_only_nonces_past_the_window(env: Env) -> None:
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    from aospmdm.tenant import access, service

    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), 1)
    expires = (clock.now() + timedelta(days=1)).isoformat()
    p = env.call(
        "POST",
        "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles",
        json={"displayName": "j", "wifiSsid": "s", "tokenExpirationDateTime": expires},
    ).json()
    dev = Device(env.client)
    dev.enroll(secret_of(p))
    assert dev.checkin().status_code == 200
    clock.advance(11 * 60)
    assert dev.checkin().status_code == 200
    assert run_once(env.sessions, Job("prune", 1, prune_nonces))
    with env.db() as s:
        assert s.scalar(select(func.count()).select_from(RequestNonce)) == 1


def test_only_one_worker_runs_a_job_at_a_time(env: Env) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow(_session: object) -> None:
        runs.append("ran")
        started.set()
        release.wait(10)

    job = Job("exclusive", 1, slow)
    first = threading.Thread(target=run_once, args=(env.sessions, job))
    first.start()
    assert started.wait(10)
    if env.app.state.engine.dialect.name == "postgresql":
        assert run_once(env.sessions, job) is False, "the second worker skips the run"
        release.set()
    else:
        # SQLite: the second run waits for the first to commit, then takes its turn.
        second = threading.Thread(target=run_once, args=(env.sessions, job))
        second.start()
        release.set()
        second.join(10)
    first.join(10)
    assert runs.count("ran") == (1 if env.app.state.engine.dialect.name == "postgresql" else 2)


def test_idle_console_sessions_and_old_failures_are_pruned(env: Env) -> None:
    from aospmdm.tenant import service
    from aospmdm.tenant.models import ConsoleSession, SignInFailure
    from tests.conftest import PASSWORD

    with env.db() as s:
        assert service.sign_in(s, env.settings, "root@example.com", PASSWORD, "1.2.3.4").admin
        service.sign_in(s, env.settings, "root@example.com", "wrong password!", "1.2.3.4")
    clock.advance(env.settings.session_idle_minutes * 60 - 5)
    with env.db() as s:
        service.sign_in(s, env.settings, "root@example.com", PASSWORD, "1.2.3.4")
    clock.advance(10)
    job = Job("prune sign-in state", 1, lambda s: service.prune_sign_in_state(s, env.settings))
    assert run_once(env.sessions, job)
    with env.db() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleSession)) == 1, "the fresh one"
        assert s.scalar(select(func.count()).select_from(SignInFailure)) == 0
