"""aospmdm agent enroll / checkin / run / status / sign-in / sign-out, and aospmdm simulate:
the reference device agent on a simulated AOSP device (RealWear Navigator 500 unless told
otherwise), and a fleet of them. These talk to a server over HTTP, as a device does; they
never open its database."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from aospmdm import protocol as p
from aospmdm.agent import DEFAULT_AGENT_VERSION, AgentError, apps, logs, qr
from aospmdm.agent.client import AgentClient
from aospmdm.agent.device import Device
from aospmdm.agent.simulator import Report, simulate
from aospmdm.cli.common import fail

app = typer.Typer(
    no_args_is_help=True,
    help="The reference device agent, on a simulated AOSP device kept in a state directory.",
)

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir", help="Where the simulated device keeps its state.", show_default=False
    ),
]
QrFile = Annotated[
    Path,
    typer.Option(
        "--qr",
        help="The enrollment QR code (.png) or the token's JSON export (.json).",
        show_default=False,
    ),
]
AgentVersion = Annotated[
    str, typer.Option("--agent-version", help="The agent version the device reports.")
]
Busy = Annotated[
    int | None,
    typer.Option(
        "--busy",
        min=0,
        help="The device is in use: it answers notNow to the commands of its next N "
        "check-ins that bring any (0: no longer busy).",
        show_default=False,
    ),
]


@contextmanager
def _refusals() -> Iterator[None]:
    """Any refusal or unusable input: one line naming the error code, exit code 2."""
    try:
        yield
    except AgentError as exc:
        fail(f"{exc.code}: {exc.message}")


@app.command("enroll")
def enroll(
    qr_file: QrFile,
    state_dir: StateDir,
    serial: Annotated[
        str | None, typer.Option(help="Serial number (default: the device's, or a random one).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model (default Navigator 500).")] = None,
    manufacturer: Annotated[
        str | None, typer.Option(help="Manufacturer (default RealWear).")
    ] = None,
    os_version: Annotated[str | None, typer.Option(help="Android version (default 11).")] = None,
    security_patch: Annotated[
        str | None, typer.Option(help="Security patch level (default 2024-05-05).")
    ] = None,
    sdk_level: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Android API level (default: the one of the Android version).",
            show_default=False,
        ),
    ] = None,
    agent_version: AgentVersion = DEFAULT_AGENT_VERSION,
    unsupported_setting: Annotated[
        list[str] | None,
        typer.Option(
            help="A policy setting this device lacks (repeatable; wifiNetworks: no Wi-Fi); "
            "reported notSupported. Replaces the device's list.",
            show_default=False,
        ),
    ] = None,
    failing_setting: Annotated[
        list[str] | None,
        typer.Option(
            help="A policy setting this device refuses to change (repeatable); reported "
            "failed. Replaces the device's list.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Read the QR code (or JSON export), join its Wi-Fi, make the device key and enroll."""
    with _refusals():
        extras = qr.read(qr_file)
        device = Device.open(
            state_dir,
            serial=serial,
            model=model,
            manufacturer=manufacturer,
            os_version=os_version,
            security_patch=security_patch,
            sdk=sdk_level,
            unsupported_settings=unsupported_setting or None,
            failing_settings=failing_setting or None,
        )
        with AgentClient() as client:
            answer = client.enroll(device, extras, agent_version)
        device.save()
    state = device.state
    typer.echo(
        f"enrolled {device.hardware.manufacturer} {device.hardware.model} "
        f"{device.hardware.serial} as {answer.device_name} (device id {answer.device_id}) "
        f"with {state.server_url}"
    )
    if state.wifi_ssid:
        typer.echo(f"joined Wi-Fi {state.wifi_ssid}")
    for app_ in answer.required_apps:
        typer.echo(f"installed and opened {app_.display_name} {app_.version_name}")
    typer.echo(f"next check-in in {answer.next_check_in_seconds} s")


@app.command("checkin")
def checkin(state_dir: StateDir, busy: Busy = None) -> None:
    """Check in once, doing any work the server returns. When that work updates the agent
    itself, the agent closes after the check-in and the update is installed at once; its
    result goes with the next check-in."""
    with _refusals():
        device = _load(state_dir, busy)
        _start(device)
        with AgentClient() as client:
            _resume(client, device)
            _checkin(client, device)
        _start(device)


@app.command("run")
def run(
    state_dir: StateDir,
    max_checkins: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many check-ins (default: run until stopped)."),
    ] = None,
    busy: Busy = None,
) -> None:
    """Check in now, then whenever the server's schedule says, until stopped (or until a
    wipe resets the device). After a restart command the device checks in again at once.
    When the agent updates itself it closes completely, installs the update and starts
    again, checking in at once."""
    done = 0
    with _refusals():
        device = _load(state_dir, busy)
        while True:
            # One life of the agent: it ends when the agent closes to update itself.
            _start(device)
            if max_checkins is not None and done >= max_checkins:
                return
            with AgentClient() as client:
                _resume(client, device)
                while True:
                    wait = _checkin(client, device)
                    done += 1
                    if not device.state.enrolled:
                        return
                    if device.state.pending_self_update is not None:
                        break
                    if max_checkins is not None and done >= max_checkins:
                        return
                    _wait_for_work(client, device, wait)


def _wait_for_work(client: AgentClient, device: Device, seconds: float) -> None:
    """Until the next scheduled check-in, keep a long poll open, so the device acts on an
    admin's action within seconds; return early when the server says there is work."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.wait(device):
                return
        except AgentError as exc:
            # A server that cannot be reached or refuses the wait: fall back to the schedule.
            typer.echo(f"wait: {exc.code}: {exc.message}", err=True)
            time.sleep(max(0.0, min(30.0, deadline - time.monotonic())))


@app.command("status")
def status(state_dir: StateDir) -> None:
    """Print the device's state as JSON (after finishing a wipe an earlier run left
    pending, if the server can be reached)."""
    with _refusals():
        device = Device.load(state_dir)
    if device.state.pending_wipe is not None:
        try:
            with AgentClient() as client:
                _resume(client, device)
        except AgentError as exc:
            typer.echo(f"warning: the pending wipe waits: {exc.code}: {exc.message}", err=True)
    typer.echo(json.dumps(device.status(), indent=2, ensure_ascii=False))


@app.command("upload-logs")
def upload_logs(
    state_dir: StateDir,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Upload this file (.zip as a zip, else UTF-8 text) instead of the agent's "
            "own logs (a zip of its status, without secrets, and its *.log files).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Upload the device's logs for the help desk; print the incident ID as the last line."""
    with _refusals():
        device = Device.load(state_dir)
        body, name, content_type = logs.bundle(device) if file is None else logs.read_file(file)
        with AgentClient() as client:
            answer = client.upload_logs(device, body, content_type, name)
    typer.echo(
        f"uploaded {name} ({answer.size} bytes, SHA-256 {answer.sha256}); kept until "
        f"{answer.expires_date_time}; give the help desk this incident ID:"
    )
    typer.echo(answer.incident_id)


@app.command("sign-in")
def sign_in(
    state_dir: StateDir,
    user: Annotated[
        str, typer.Option("--user", help="The worker's user principal name.", show_default=False)
    ],
    password: Annotated[
        str,
        typer.Option(
            "--password",
            envvar="AOSPMDM_USER_PASSWORD",
            help="The worker's password (or AOSPMDM_USER_PASSWORD).",
            show_default=False,
        ),
    ],
) -> None:
    """Sign a worker in on this shared device: the participating apps share the session
    (SSO) until sign-out. Signing in replaces the previous worker's session."""
    with _refusals():
        device = Device.load(state_dir)
        with AgentClient() as client:
            answer = client.sign_in(device, user, password)
        device.save()
    typer.echo(
        f"signed in {answer.display_name} ({answer.user_principal_name}, user id "
        f"{answer.user_id}) until {answer.expires_date_time}"
    )


@app.command("sign-out")
def sign_out(state_dir: StateDir) -> None:
    """Sign the worker out: the session ends for every app on the device at once."""
    with _refusals():
        device = Device.load(state_dir)
        with AgentClient() as client:
            user = client.sign_out(device)
        device.save()
    if user is None:
        typer.echo("signed out (no one was signed in on this device)")
    else:
        typer.echo(f"signed out {user.display_name} ({user.user_principal_name})")


def _load(state_dir: Path, busy: int | None) -> Device:
    device = Device.load(state_dir)
    if busy is not None:
        device.hardware.busy_checkins = busy
        device.save()
    return device


def _start(device: Device) -> None:
    """What the agent does as it starts: install its own update, if it closed for one."""
    pending = device.state.pending_self_update
    if pending is None:
        return
    typer.echo(
        f"closing to update the agent to {pending.work.version_name} ({pending.work.version_code})"
    )
    result = apps.apply_self_update(device)
    if result is not None and result.status == "done":
        typer.echo(f"restarted as agent {device.state.agent_version}; reporting at next check-in")
    elif result is not None:
        typer.echo(f"the agent update failed: {result.message}")


def _resume(client: AgentClient, device: Device) -> None:
    """Finish a wipe an earlier run confirmed but did not carry out."""
    if client.resume(device):
        typer.echo("confirmed the pending wipe and factory-reset the device")


def _checkin(client: AgentClient, device: Device) -> int:
    """One check-in (with the reports on any policy it brought, and the results of its
    commands), saved; returns the seconds until the next one: none after a restart."""
    _, whole, changes = device.inventory()
    report = device.state.policy_report
    device_id, reboots = device.state.device_id, device.hardware.reboot_count
    answer = client.checkin(device)
    device.save()
    if whole is not None:
        sent = "sent the installed apps"
    elif changes is not None:
        sent = (
            f"sent the app changes: {len(changes.upserted)} installed or updated, "
            f"{len(changes.removed)} removed"
        )
    else:
        sent = "installed apps unchanged"
    typer.echo(
        f"checked in as {device_id} ({sent}, {len(answer.commands)} commands, "
        f"{len(answer.apps)} app work); next check-in in {answer.next_check_in_seconds} s"
    )
    for command, result in client.results:
        message = f" ({result.message})" if result.message else ""
        typer.echo(f"command {command.type} {command.id}: {result.status}{message}")
    for result in client.app_results:
        code = f" {result.error_code:#x}" if result.error_code else ""
        message = f" ({result.message})" if result.message else ""
        typer.echo(f"app {result.command_id}: {result.status}{code}{message}")
    pending = device.state.pending_self_update
    if pending is not None:
        typer.echo(f"downloaded and verified agent {pending.work.version_name}: closing")
        return 0
    if not device.state.enrolled:
        typer.echo("wiped: the device was factory-reset and is no longer enrolled")
        return 0
    applied = device.state.policy_report
    if applied is not None and applied is not report:
        typer.echo(_policy_line(device, applied))
    if device.hardware.reboot_count != reboots:
        typer.echo("restarted: checking in again at once")
        return 0
    return answer.next_check_in_seconds


def _policy_line(device: Device, report: p.PolicyReport) -> str:
    """What the device made of the policy it applied."""
    state = device.state
    counts = Counter(s.state for s in report.settings)
    saved = sum(1 for w in report.wifi_networks if w.state == "applied")
    settings = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no settings"
    delivered = "reported" if state.policy_report_delivered else "report not delivered yet"
    return (
        f"applied policy {state.applied_policy_version} ({settings}; {saved} of "
        f"{len(report.wifi_networks)} Wi-Fi networks saved); {delivered}"
    )


def simulate_fleet(
    qr_file: QrFile,
    devices: Annotated[
        int, typer.Option("--devices", min=1, help="How many devices.", show_default=False)
    ],
    duration: Annotated[
        float, typer.Option(min=0, help="Seconds of check-ins after the devices enrolled.")
    ] = 60.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at most.")] = 50,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds between a device's check-ins, instead of the server's schedule "
            "(0: back to back, for load tests).",
            show_default=False,
        ),
    ] = None,
    agent_version: AgentVersion = DEFAULT_AGENT_VERSION,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Enroll N simulated devices from one QR code and let them check in; print a summary."""
    with _refusals():
        extras = qr.read(qr_file)
        report = asyncio.run(
            simulate(
                extras,
                devices,
                duration,
                concurrency,
                interval,
                progress,
                agent_version=agent_version,
            )
        )
    for line in summary(report):
        typer.echo(line)
    if report.errors:
        failed = sum(report.errors.values())
        fail(f"{failed} requests failed: {_codes(report)}")


def summary(report: Report) -> list[str]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    return [
        f"enrolled:  {report.enrolled} of {report.devices} devices",
        f"check-ins: {report.checkins} in {report.duration_s:.1f} s "
        f"({report.checkins_per_s:.1f}/s)",
        f"errors:    {_codes(report) if report.errors else 'none'}",
        f"latency:   p50 {ms(report.p50_ms)}, p95 {ms(report.p95_ms)}, p99 {ms(report.p99_ms)}",
        f"policies:  applied on {report.policies_applied} of {report.enrolled} devices",
        f"commands:  {report.commands_done} done, {report.wiped} devices wiped",
    ]


def _codes(report: Report) -> str:
    return ", ".join(f"{code} {count}" for code, count in report.errors.items())
