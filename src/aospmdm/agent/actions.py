"""What the simulated device does with the commands a check-in brings (docs/protocol.md §11):
one small handler per command type, the rules every command follows (each id handled once,
expiry, a busy device answering notNow) and the wipe's confirm-before-reset marker.

Pure of the network: ``handle`` changes the device and returns the results to send;
``client.py`` sends them and carries out a confirmed wipe."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aospmdm import protocol as p

from .device import Device, PendingWipe
from .policy import passcode_meets, passcode_requirement

# How many final results the device remembers (as many as one results request carries): a
# command delivered again within them is answered from memory, not carried out again.
KEPT_RESULTS = 100
# Commands handled from one answer; the rest stay pending on the server and come again.
MAX_COMMANDS = 100
# These end with a factory reset, after the device confirmed them.
WIPES = frozenset({"wipe", "factoryReset"})
ID_LENGTH = 64  # the longest commandId a result carries
WIPE_CONFIRMED = "Confirmed; the device resets now."

CommandHandler = Callable[[Device, p.Command], p.CommandResult]


def _done(command: p.Command, message: str = "") -> p.CommandResult:
    return p.CommandResult(command_id=command.id, status="done", message=message)


def _failed(command: p.Command, message: str) -> p.CommandResult:
    return p.CommandResult(command_id=command.id, status="failed", message=message)


def remote_lock(device: Device, command: p.Command) -> p.CommandResult:
    device.state.locked = True
    return _done(command)


def reset_passcode(device: Device, command: p.Command) -> p.CommandResult:
    """Set the temporary passcode the server chose. Android refuses a passcode that falls
    short of the policy in force, and so does the simulated device."""
    passcode = command.payload.get("passcode", "")
    if not (passcode.isascii() and passcode.isdigit()):
        return _failed(command, "The passcode must be digits.")
    required = passcode_requirement(device.state.restrictions)
    if required is not None and not passcode_meets(passcode, *required):
        kind, length = required
        return _failed(
            command, f"The passcode does not meet the policy ({kind}, at least {length})."
        )
    device.state.passcode = passcode
    return _done(command)


def reboot_now(device: Device, command: p.Command) -> p.CommandResult:
    device.reboot()
    return _done(command)


# What the agent does for each command type it knows; wipes are handled apart (``handle``).
COMMAND_HANDLERS: dict[str, CommandHandler] = {
    "remoteLock": remote_lock,
    "resetPasscode": reset_passcode,
    "rebootNow": reboot_now,
}


def handle(
    device: Device, commands: Sequence[p.Command], now: datetime | None = None
) -> list[p.CommandResult]:
    """Carry out ``commands`` on the device and return their results, in order. A command
    handled before gets its kept result again. A wipe is only accepted here: it is marked
    pending (``device.state.pending_wipe``), to be carried out once the server has its
    result."""
    now = now or datetime.now(UTC)
    state, hardware = device.state, device.hardware
    kept = {r.command_id: r for r in state.command_results}
    busy = hardware.busy_checkins > 0
    results: list[p.CommandResult] = []
    wipes: list[str] = []
    # An id the results cannot carry cannot be answered: such a command is left alone.
    answerable = [c for c in commands if 0 < len(c.id) <= ID_LENGTH]
    for command in answerable[:MAX_COMMANDS]:
        result = kept.get(command.id)
        if result is None:
            result = _first_time(device, command, now, busy)
            if result.status != "notNow":
                kept[command.id] = result
                _keep(device, result)
        if command.type in WIPES and result.status == "done" and command.id not in wipes:
            wipes.append(command.id)
        results.append(result)
    if busy and any(r.status == "notNow" for r in results):
        hardware.busy_checkins -= 1
    if wipes and state.pending_wipe is None:
        state.pending_wipe = PendingWipe(command_ids=wipes, factory_resets=hardware.factory_resets)
    return results


def _first_time(device: Device, command: p.Command, now: datetime, busy: bool) -> p.CommandResult:
    expiry = _time(command.expires_at)
    if expiry is not None and expiry <= now:
        return _failed(command, f"The command expired at {command.expires_at}.")
    if busy:
        return p.CommandResult(
            command_id=command.id, status="notNow", message="The device is busy."
        )
    if command.type in WIPES:
        return _done(command, WIPE_CONFIRMED)
    handler = COMMAND_HANDLERS.get(command.type)
    if handler is None:
        message = f"This agent does not know the command {command.type!r}."
        return p.CommandResult(command_id=command.id, status="notSupported", message=message[:256])
    return handler(device, command)


def _keep(device: Device, result: p.CommandResult) -> None:
    results = device.state.command_results
    device.state.command_results = [*results, result][-KEPT_RESULTS:]


def wipe_results(device: Device) -> list[p.CommandResult]:
    """The confirmation a pending wipe still owes the server (none without one)."""
    pending = device.state.pending_wipe
    if pending is None:
        return []
    return [
        p.CommandResult(command_id=i, status="done", message=WIPE_CONFIRMED)
        for i in pending.command_ids
    ]


def _time(text: str | None) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; UTC when it has neither); None when absent or
    unreadable, as a command without an expiry."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
