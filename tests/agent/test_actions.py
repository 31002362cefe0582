"""The reference agent carries out remote actions (docs/protocol.md §11): each command type on
the simulated device, the results it sends, each command id handled once, notNow and
notSupported, and the wipe that confirms before it resets and survives a crash in between;
first against a fake server, then end to end against the real one."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aospmdm import protocol as p
from aospmdm.agent import AgentError, actions, qr
from aospmdm.agent.client import RESULTS_PATH, AgentClient
from aospmdm.agent.device import Device, Hardware
from aospmdm.agent.policy import passcode_type
from aospmdm.agent.simulator import simulate
from aospmdm.cli import agent as cli_agent
from aospmdm.cli import app as cli_app
from aospmdm.core import clock
from tests.agent.fleet import Fleet, make_fleet
from tests.agent.test_agent import FakeServer, compact, payload, qr_png
from tests.agent.test_policy import restrictions
from tests.conftest import Env

runner = CliRunner()
FINAL = {"done", "failed", "notSupported"}


class Crash(BaseException):
    """The process dies (not an error the agent could catch)."""


class CommandServer:
    """The fake server with a command queue: a command is delivered at every check-in until
    a final result for it arrives at /device/v1/results (signed, like a check-in)."""

    def __init__(self) -> None:
        self.fake = FakeServer()
        self.pending: dict[str, p.Command] = {}
        self.final: dict[str, str] = {}
        self.posts: list[list[dict[str, Any]]] = []
        # What the results endpoint does: answer, fail on the network, let the agent's
        # process die before its request leaves, or no longer know the device.
        self.results_mode = "answer"

    def queue(self, type_: str, id_: str | None = None, **payload: str) -> str:
        command_id = id_ or f"c{len(self.pending) + len(self.final) + 1}"
        self.pending[command_id] = p.Command(id=command_id, type=type_, payload=payload)
        return command_id

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != RESULTS_PATH:
            self.fake.commands = [
                c.model_dump(by_alias=True, mode="json") for c in self.pending.values()
            ]
            return self.fake(request)
        if self.results_mode == "crash":
            raise Crash
        if self.results_mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        refused = self.fake.check_signature(request)
        if refused or self.results_mode == "forgotten":
            code = refused or "deviceUnknown"
            return httpx.Response(401, json={"error": {"code": code, "message": code}})
        body = p.ResultsRequest.model_validate_json(request.content)
        self.posts.append([r.model_dump(by_alias=True) for r in body.results])
        outcomes = []
        for r in body.results:
            if r.command_id in self.final:
                outcomes.append("duplicate")
            elif r.command_id not in self.pending:
                outcomes.append("unknown")
            elif r.status in FINAL:
                self.final[r.command_id] = r.status
                del self.pending[r.command_id]
                outcomes.append("recorded")
            else:
                outcomes.append("recorded")
        return httpx.Response(200, json={"outcomes": outcomes})


@pytest.fixture
def server() -> CommandServer:
    return CommandServer()


@pytest.fixture
def client(server: CommandServer) -> AgentClient:
    return AgentClient(transport=httpx.MockTransport(server))


def enrolled(client: AgentClient, state_dir: Path | None = None) -> Device:
    device = Device.open(state_dir, serial="RW-1") if state_dir else Device(Hardware(serial="RW-1"))
    client.enroll(device, payload())
    device.save()
    return device


def command(type_: str, id_: str = "c1", **over: Any) -> p.Command:
    return p.Command.model_validate({"id": id_, "type": type_, **over})


def results(server: CommandServer) -> list[tuple[str, str]]:
    return [(r["commandId"], r["status"]) for post in server.posts for r in post]


# --- the handlers, on hand-made commands ------------------------------------------------------


def test_lock_reboot_and_passcode_change_the_device() -> None:
    d = Device(Hardware(serial="RW-1"))
    out = actions.handle(
        d,
        [
            command("remoteLock", "a"),
            command("rebootNow", "b"),
            command("resetPasscode", "c", payload={"passcode": "905718"}),
        ],
    )
    assert [(r.command_id, r.status) for r in out] == [("a", "done"), ("b", "done"), ("c", "done")]
    assert d.state.locked is True
    assert d.hardware.reboot_count == 1
    assert d.state.passcode == "905718"
    facts = d.facts()
    assert (facts.passcode_type, facts.passcode_length) == ("numericComplex", 6)
    actions.handle(d, [command("resetPasscode", "d", payload={"passcode": "1111"})])
    assert (d.facts().passcode_type, d.facts().passcode_length) == ("numeric", 4)
    status = d.status()
    assert status["locked"] is True and status["passcode"] == "1111"
    assert status["rebootCount"] == 1 and status["factoryResets"] == 0
    assert [r["commandId"] for r in status["lastResults"]] == ["a", "b", "c", "d"]
    assert status["pendingWipe"] is None


def test_a_command_is_carried_out_once_and_answered_again_from_memory() -> None:
    d = Device(Hardware(serial="RW-1"))
    first = actions.handle(d, [command("rebootNow", "r1")])
    again = actions.handle(d, [command("rebootNow", "r1"), command("rebootNow", "r1")])
    assert again == [first[0], first[0]]
    assert d.hardware.reboot_count == 1
    actions.handle(d, [command("rebootNow", "r2")])
    assert d.hardware.reboot_count == 2


def test_the_device_remembers_a_bounded_number_of_results() -> None:
    d = Device(Hardware(serial="RW-1"))
    for n in range(actions.KEPT_RESULTS + 5):
        actions.handle(d, [command("remoteLock", f"l{n}")])
    kept = [r.command_id for r in d.state.command_results]
    assert len(kept) == actions.KEPT_RESULTS and kept[-1] == f"l{actions.KEPT_RESULTS + 4}"


def test_unknown_expired_and_unusable_commands() -> None:
    d = Device(Hardware(serial="RW-1"))
    past = (clock.now() - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    future = (clock.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    out = actions.handle(
        d,
        [
            command("fromTheFuture", "u"),
            command("remoteLock", "x", expiresAt=past),
            command("rebootNow", "f", expiresAt=future),
            command("resetPasscode", "n", payload={"passcode": "12ab"}),
            command("resetPasscode", "m"),
            command("remoteLock", "z" * 65),  # an id no result can carry: left alone
        ],
    )
    got = {r.command_id: (r.status, r.message) for r in out}
    assert got["u"] == ("notSupported", "This agent does not know the command 'fromTheFuture'.")
    assert got["x"][0] == "failed" and "expired" in got["x"][1]
    assert got["f"] == ("done", "")
    assert got["n"] == ("failed", "The passcode must be digits.")
    assert got["m"][0] == "failed"
    assert len(out) == 5 and d.state.locked is False and d.state.passcode is None


def test_a_passcode_that_falls_short_of_the_policy_is_refused() -> None:
    d = Device(Hardware(serial="RW-1"))
    d.apply_policy(
        p.EffectivePolicy(
            version="a1",
            restrictions={"passwordRequiredType": "numericComplex", "passwordMinimumLength": 6},
        )
    )
    before = d.state.passcode
    (short,) = actions.handle(d, [command("resetPasscode", "s", payload={"passcode": "2580"})])
    assert short.status == "failed" and "numericComplex, at least 6" in short.message
    (weak,) = actions.handle(d, [command("resetPasscode", "w", payload={"passcode": "123456"})])
    assert weak.status == "failed"
    (good,) = actions.handle(d, [command("resetPasscode", "g", payload={"passcode": "905718"})])
    assert good.status == "done" and d.state.passcode == "905718" != before
    assert passcode_type(d.state.passcode) == "numericComplex"


def test_a_busy_device_answers_not_now_and_keeps_nothing() -> None:
    d = Device(Hardware(serial="RW-1", busy_checkins=1))
    # No commands: still busy.
    assert actions.handle(d, []) == [] and d.hardware.busy_checkins == 1
    (later,) = actions.handle(d, [command("rebootNow", "r")])
    assert later.status == "notNow" and d.hardware.busy_checkins == 0
    assert d.hardware.reboot_count == 0 and d.state.command_results == []
    (now,) = actions.handle(d, [command("rebootNow", "r")])
    assert now.status == "done" and d.hardware.reboot_count == 1


def test_a_wipe_is_only_accepted_by_the_handlers() -> None:
    d = Device(Hardware(serial="RW-1"))
    out = actions.handle(d, [command("wipe", "w"), command("factoryReset", "f")])
    assert [r.status for r in out] == ["done", "done"]
    assert d.state.pending_wipe is not None
    assert d.state.pending_wipe.command_ids == ["w", "f"]
    assert d.hardware.factory_resets == 0
    assert [r.command_id for r in actions.wipe_results(d)] == ["w", "f"]


# --- against the fake server ------------------------------------------------------------------


def test_results_go_in_one_signed_post_and_the_commands_stop(
    server: CommandServer, client: AgentClient
) -> None:
    device = enrolled(client)
    server.queue("remoteLock", "l")
    server.queue("rebootNow", "r")
    server.queue("fromTheFuture", "u")
    answer = client.checkin(device)
    assert [c.type for c in answer.commands] == ["remoteLock", "rebootNow", "fromTheFuture"]
    assert results(server) == [("l", "done"), ("r", "done"), ("u", "notSupported")]
    assert len(server.posts) == 1 and server.pending == {}
    assert [(c.id, r.status) for c, r in client.results] == [
        ("l", "done"),
        ("r", "done"),
        ("u", "notSupported"),
    ]
    assert device.state.locked and device.hardware.reboot_count == 1
    client.checkin(device)
    assert len(server.posts) == 1, "nothing new, nothing sent"


def test_a_redelivered_command_is_not_carried_out_twice(
    server: CommandServer, client: AgentClient, tmp_path: Path
) -> None:
    device = enrolled(client, tmp_path)
    server.queue("rebootNow", "r")
    server.results_mode = "down"
    with pytest.raises(AgentError) as caught:
        client.checkin(device)
    assert caught.value.code == "networkError"
    # The reboot happened and was saved before the results were sent.
    again = Device.load(tmp_path)
    assert again.hardware.reboot_count == 1
    assert [r.command_id for r in again.state.command_results] == ["r"]
    server.results_mode = "answer"
    client.checkin(again)
    assert again.hardware.reboot_count == 1
    assert results(server) == [("r", "done")] and server.pending == {}


def test_not_now_brings_the_command_again(server: CommandServer, client: AgentClient) -> None:
    device = enrolled(client)
    device.hardware.busy_checkins = 1
    server.queue("remoteLock", "l")
    client.checkin(device)
    assert results(server) == [("l", "notNow")] and "l" in server.pending
    assert device.state.locked is False
    client.checkin(device)
    assert results(server)[-1] == ("l", "done") and server.pending == {}
    assert device.state.locked is True


def test_a_wipe_confirms_then_resets(
    server: CommandServer, client: AgentClient, tmp_path: Path
) -> None:
    device = enrolled(client, tmp_path)
    device.hardware.reboot_count = 2
    server.queue("remoteLock", "l")
    server.queue("wipe", "w")
    client.checkin(device)
    assert results(server) == [("l", "done"), ("w", "done")]
    for d in (device, Device.load(tmp_path)):
        assert d.state.enrolled is False and d.key is None and d.state.pending_wipe is None
        assert d.hardware.factory_resets == 1 and d.hardware.reboot_count == 2
        assert d.state.locked is False
    with pytest.raises(AgentError) as caught:
        client.checkin(device)
    assert caught.value.code == "notEnrolled"


def test_a_crash_before_the_confirmation_is_recovered_at_the_next_start(
    server: CommandServer, client: AgentClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = enrolled(client, tmp_path)
    server.queue("wipe", "w")
    server.results_mode = "crash"
    with pytest.raises(Crash):
        client.checkin(device)
    # What the dead process left: still enrolled, the wipe marked, nothing confirmed.
    left = Device.load(tmp_path)
    assert left.state.enrolled and left.state.pending_wipe is not None
    assert left.state.pending_wipe.command_ids == ["w"]
    assert left.hardware.factory_resets == 0 and server.posts == []
    # The next start cannot reach the server: the marker waits.
    server.results_mode = "down"
    with pytest.raises(AgentError):
        client.checkin(left)
    assert Device.load(tmp_path).state.pending_wipe is not None
    # `agent status` is a start too: it confirms and finishes the reset.
    server.results_mode = "answer"
    monkeypatch.setattr(
        cli_agent,
        "AgentClient",
        functools.partial(AgentClient, transport=httpx.MockTransport(server)),
    )
    status = json.loads(cli("agent", "status", "--state-dir", str(tmp_path)).split("\n", 1)[1])
    assert status["enrolled"] is False and status["factoryResets"] == 1
    assert status["pendingWipe"] is None
    assert results(server) == [("w", "done")] and server.final == {"w": "done"}


def test_a_wipe_the_server_already_completed_is_finished_on_device_unknown(
    server: CommandServer, client: AgentClient, tmp_path: Path
) -> None:
    device = enrolled(client, tmp_path)
    server.queue("factoryReset", "f")
    server.results_mode = "crash"
    with pytest.raises(Crash):
        client.checkin(device)
    server.results_mode = "forgotten"
    left = Device.load(tmp_path)
    assert client.resume(left) is True
    assert left.state.enrolled is False and left.hardware.factory_resets == 1
    assert client.resume(left) is False


def test_a_reset_interrupted_after_counting_is_not_counted_twice(
    client: AgentClient, tmp_path: Path
) -> None:
    device = enrolled(client, tmp_path)
    actions.handle(device, [command("wipe", "w")])
    device.save()
    # The crash came after the counter was written and before the state was.
    device.hardware.factory_resets += 1
    device.factory_reset()
    assert device.hardware.factory_resets == 1


def test_non_wipe_refusals_of_results_are_errors(
    server: CommandServer, client: AgentClient
) -> None:
    device = enrolled(client)
    server.queue("remoteLock", "l")
    server.results_mode = "forgotten"
    with pytest.raises(AgentError) as caught:
        client.checkin(device)
    assert (caught.value.code, caught.value.status) == ("deviceUnknown", 401)
    assert device.state.enrolled, "only a confirmed wipe resets the device"


# --- the command line and the simulator -------------------------------------------------------


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def cli_server(server: CommandServer, monkeypatch: pytest.MonkeyPatch) -> CommandServer:
    monkeypatch.setattr(
        cli_agent,
        "AgentClient",
        functools.partial(AgentClient, transport=httpx.MockTransport(server)),
    )
    return server


def test_cli_busy_restart_lock_and_wipe(cli_server: CommandServer, tmp_path: Path) -> None:
    state = str(tmp_path / "device")
    qr_file = qr_png(tmp_path / "qr.png", compact(payload()))
    cli("agent", "enroll", "--qr", str(qr_file), "--state-dir", state)
    cli_server.queue("remoteLock", "l")
    out = cli("agent", "checkin", "--state-dir", state, "--busy", "1")
    assert "command remoteLock l: notNow (The device is busy.)" in out
    cli_server.queue("rebootNow", "r")
    # The restart makes the loop check in again at once: its second check-in is immediate.
    out = cli("agent", "run", "--state-dir", state, "--max-checkins", "2")
    assert "command remoteLock l: done" in out and "command rebootNow r: done" in out
    assert "restarted: checking in again at once" in out
    status = json.loads(cli("agent", "status", "--state-dir", state))
    assert status["locked"] is True and status["rebootCount"] == 1
    assert [(r["commandId"], r["status"]) for r in status["lastResults"]] == [
        ("l", "done"),
        ("r", "done"),
    ]
    cli_server.queue("wipe", "w")
    out = cli("agent", "run", "--state-dir", state)
    assert "command wipe w: done" in out and "wiped: the device was factory-reset" in out
    status = json.loads(cli("agent", "status", "--state-dir", state))
    assert status["enrolled"] is False and status["factoryResets"] == 1
    assert status["rebootCount"] == 1 and status["locked"] is False


def test_the_simulator_carries_out_commands(server: CommandServer) -> None:
    # Every check-in brings a restart to the devices SIM-1 and SIM-2 (not yet done by
    # them), and SIM-3 is wiped.
    done: set[tuple[str, str]] = set()

    def commands(request: httpx.Request) -> httpx.Response:
        if request.url.path == RESULTS_PATH:
            device = request.headers[p.HEADER_DEVICE]
            for r in p.ResultsRequest.model_validate_json(request.content).results:
                done.add((device, r.command_id))
            return httpx.Response(200, json={"outcomes": ["recorded"]})
        if request.url.path == "/device/v1/checkin":
            serial = json.loads(request.content)["facts"]["serialNumber"]
            device = request.headers[p.HEADER_DEVICE]
            kind = "wipe" if serial == "SIM-3" else "rebootNow"
            cmd = command(kind, f"{kind}-{serial}")
            pending = [] if (device, cmd.id) in done else [cmd.model_dump(by_alias=True)]
            server.fake.commands = pending
        return server.fake(request)

    report = asyncio.run(
        simulate(
            payload(),
            devices=3,
            duration=0.3,
            concurrency=3,
            interval=0.02,
            progress=False,
            transport=httpx.MockTransport(commands),
        )
    )
    assert report.errors == {}
    assert report.commands_done == 3 and report.wiped == 1


# --- end to end: the real server's remote actions ---------------------------------------------

D = "/beta/deviceManagement/managedDevices"
PROFILE_NAME = "Factory 2 devices"


@pytest.fixture
def fleet(env: Env, tmp_path: Path) -> Fleet:
    return make_fleet(env, tmp_path, PROFILE_NAME, "Factory 2")


def action_states(fleet: Fleet, d: Device) -> dict[str, str]:
    r = fleet.env.call("GET", f"{D}/{d.state.device_id}")
    assert r.status_code == 200, r.text
    return {a["actionName"]: a["actionState"] for a in r.json()["deviceActionResults"]}


def test_restart_reaches_the_agent_and_its_result_the_admin(fleet: Fleet) -> None:
    d = fleet.device("RW-ACT-1")
    r = fleet.env.call("POST", f"{D}/{d.state.device_id}/rebootNow")
    assert r.status_code == 204, r.text
    assert action_states(fleet, d) == {"rebootNow": "pending"}
    fleet.agent.checkin(d)
    assert d.hardware.reboot_count == 1
    assert action_states(fleet, d) == {"rebootNow": "done"}
    fleet.agent.checkin(d)
    assert d.hardware.reboot_count == 1, "a recorded command is not delivered again"


def test_lock_and_passcode_need_a_passcode_policy(fleet: Fleet) -> None:
    d = fleet.device("RW-ACT-2")
    fleet.agent.checkin(d)
    r = fleet.env.call("POST", f"{D}/{d.state.device_id}/remoteLock")
    assert r.status_code == 409 and r.json()["error"]["code"] == "passcodePolicyRequired"
    restrictions(fleet, passwordRequiredType="numeric", passwordMinimumLength=6)
    fleet.agent.checkin(d)
    assert d.facts().passcode_length == 6
    for action in ("remoteLock", "resetPasscode"):
        r = fleet.env.call("POST", f"{D}/{d.state.device_id}/{action}")
        assert r.status_code == 204, r.text
    old = d.state.passcode
    fleet.agent.checkin(d)
    assert d.state.locked is True
    assert d.state.passcode != old and d.state.passcode is not None
    assert d.state.passcode.isdigit() and len(d.state.passcode) >= 6
    assert action_states(fleet, d) == {"remoteLock": "done", "resetPasscode": "done"}
    shown = fleet.env.call("GET", f"{D}/{d.state.device_id}/deviceActionResults").json()
    passcodes = [a.get("passcode") for a in shown["value"] if a["actionName"] == "resetPasscode"]
    assert passcodes == [d.state.passcode]


def test_a_wipe_removes_the_device_once_the_agent_confirms(fleet: Fleet) -> None:
    d = fleet.device("RW-ACT-3")
    device_id = d.state.device_id
    r = fleet.env.call("POST", f"{D}/{device_id}/wipe")
    assert r.status_code == 204, r.text
    assert fleet.env.call("GET", f"{D}/{device_id}").json()["managementState"] == "wipePending"
    fleet.agent.checkin(d)
    assert d.state.enrolled is False and d.hardware.factory_resets == 1
    assert fleet.env.call("GET", f"{D}/{device_id}").status_code == 404
    # The reset device enrolls again, as a new device.
    fleet.agent.enroll(d, qr.read(fleet.png))
    assert d.state.device_id != device_id


def test_a_deleted_device_factory_resets_and_its_credential_is_refused(fleet: Fleet) -> None:
    d = fleet.device("RW-ACT-4")
    device_id = d.state.device_id
    assert fleet.env.call("DELETE", f"{D}/{device_id}").status_code == 204
    assert fleet.env.call("GET", f"{D}/{device_id}").status_code == 404
    key, ident, url = d.key, d.state.device_id, d.state.server_url
    fleet.agent.checkin(d)
    assert d.state.enrolled is False and d.hardware.factory_resets == 1
    # The old credential no longer checks in.
    ghost = Device(Hardware(serial="RW-ACT-4"))
    ghost.state.enrolled, ghost.state.device_id = True, ident
    ghost.state.server_url = url
    ghost.key = key
    with pytest.raises(AgentError) as caught:
        fleet.agent.checkin(ghost)
    assert (caught.value.status, caught.value.code) == (401, "deviceUnknown")
