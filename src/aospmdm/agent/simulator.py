"""The fleet simulator: many devices enrolled from one provisioning payload, checking in from
one process (asyncio + httpx), as a demonstration and as the load generator of benchmarks.

A run has two phases. Devices enroll first, their starts staggered over a short ramp (as
devices switched on one after another) and at most ``concurrency`` requests in flight. Then,
for ``duration`` seconds, every enrolled device checks in: it follows the schedule the server
gives it, or, with ``interval``, waits that long between check-ins (0: back to back, a load
test). Latencies are measured per check-in, from the moment its request is made to the
moment its answer is applied, so they include the simulator's own signing and parsing.
A check-in that brings a policy includes applying it and the check-in that reports on it
(docs/protocol.md §10), and one that brings commands includes carrying them out and sending
their results (§11), as on a device. A restarted device checks in again at once; a wiped one
stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from aospmdm import protocol as p

from . import DEFAULT_AGENT_VERSION, AgentError, qr
from .client import TIMEOUT_SECONDS, checkin_async, enroll_async
from .device import Device, Hardware

# After these a device stops checking in: a real agent cannot get past them on its own.
FATAL_CODES = frozenset({"agentUpdateRequired", "deviceUnknown", "deviceRemoved", "notEnrolled"})
# Following the schedule, a failed check-in is tried again this much later.
RETRY_SECONDS = 60.0
MAX_RAMP_SECONDS = 5.0


@dataclass(frozen=True)
class Report:
    devices: int
    enrolled: int
    checkins: int
    errors: dict[str, int]  # error code -> how many requests failed with it
    duration_s: float  # the check-in phase, as measured
    checkins_per_s: float
    p50_ms: float | None  # check-in latency percentiles; None without check-ins
    p95_ms: float | None
    p99_ms: float | None
    cpu_s: float  # CPU time this process used during the check-in phase
    policies_applied: int = 0  # devices with a policy in force at the end
    commands_done: int = 0  # commands carried out (answered done), over all devices
    wiped: int = 0  # devices a wipe (or factory reset command) reset


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolating linearly between the closest ranks
    (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def simulate(
    extras: dict[str, Any],
    devices: int,
    duration: float,
    concurrency: int,
    interval: float | None,
    progress: bool,
    *,
    agent_version: str = DEFAULT_AGENT_VERSION,
    serial_prefix: str = "SIM-",
    transport: httpx.AsyncBaseTransport | None = None,
) -> Report:
    """Enroll ``devices`` simulated devices (serials SIM-1, SIM-2, ...) and let them check in
    for ``duration`` seconds; ``transport`` (e.g. ``httpx.ASGITransport``) sends the requests
    somewhere other than the network."""
    if devices < 1 or concurrency < 1:
        raise ValueError("devices and concurrency must be at least 1")
    if duration < 0 or (interval is not None and interval < 0):
        raise ValueError("duration and interval cannot be negative")
    qr.validate(extras)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        transport=transport, limits=limits, timeout=TIMEOUT_SECONDS
    ) as http:
        fleet = _Fleet(http, extras, concurrency, interval, agent_version)
        with fleet.progress_bar(progress, devices, duration):
            return await fleet.run(devices, duration, serial_prefix)


class _Fleet:
    def __init__(
        self,
        http: httpx.AsyncClient,
        extras: dict[str, Any],
        concurrency: int,
        interval: float | None,
        agent_version: str,
    ):
        self.http = http
        self.extras = extras
        self.interval = interval
        self.agent_version = agent_version
        self.slots = asyncio.Semaphore(concurrency)
        self.errors: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.commands_done = 0
        self.progress: Progress | None = None
        self.tasks: tuple[TaskID, TaskID] | None = None

    async def run(self, devices: int, duration: float, serial_prefix: str) -> Report:
        step = min(duration / 10, MAX_RAMP_SECONDS) / devices
        started = await asyncio.gather(
            *(self.enroll(f"{serial_prefix}{n + 1}", n * step) for n in range(devices))
        )
        enrolled = [d for d in started if d is not None]
        self.start_checkins()
        begin, cpu_begin = time.perf_counter(), time.process_time()
        deadline = begin + duration
        ticker = asyncio.create_task(self.tick(begin, duration))
        try:
            await asyncio.gather(
                *(self.checkins(d, n * step, deadline) for n, d in enumerate(enrolled))
            )
        finally:
            ticker.cancel()
        elapsed = time.perf_counter() - begin
        self.show_time(elapsed, duration)
        lat = self.latencies_ms
        return Report(
            devices=devices,
            enrolled=len(enrolled),
            checkins=len(lat),
            errors=dict(self.errors.most_common()),
            duration_s=elapsed,
            checkins_per_s=len(lat) / elapsed if elapsed > 0 else 0.0,
            p50_ms=percentile(lat, 50),
            p95_ms=percentile(lat, 95),
            p99_ms=percentile(lat, 99),
            cpu_s=time.process_time() - cpu_begin,
            policies_applied=sum(1 for d in enrolled if d.state.applied_policy_version != "0"),
            commands_done=self.commands_done,
            wiped=sum(1 for d in enrolled if not d.state.enrolled),
        )

    async def enroll(self, serial: str, delay: float) -> Device | None:
        await asyncio.sleep(delay)
        device = Device(Hardware(serial=serial))
        try:
            async with self.slots:
                await enroll_async(self.http, device, self.extras, self.agent_version)
        except AgentError as exc:
            self.errors[exc.code] += 1
            return None
        finally:
            self.advance()
        return device

    async def checkins(self, device: Device, delay: float, deadline: float) -> None:
        await asyncio.sleep(delay)
        while time.perf_counter() < deadline:
            async with self.slots:
                start = time.perf_counter()
                reboots = device.hardware.reboot_count
                results: list[tuple[p.Command, p.CommandResult]] = []
                try:
                    answer = await checkin_async(self.http, device, results)
                except AgentError as exc:
                    self.errors[exc.code] += 1
                    if exc.code in FATAL_CODES:
                        return
                    wait = RETRY_SECONDS if self.interval is None else self.interval
                else:
                    self.latencies_ms.append((time.perf_counter() - start) * 1000)
                    self.commands_done += sum(1 for _, r in results if r.status == "done")
                    if not device.state.enrolled:
                        return
                    wait = answer.next_check_in_seconds if self.interval is None else self.interval
                    if device.hardware.reboot_count != reboots:
                        wait = 0
                    if device.state.pending_self_update is not None:
                        # The agent closes for its update and starts again at once.
                        wait = 0
            # The device stays on until the end, so the phase lasts ``duration`` even when
            # its next check-in falls after it. Back to back (0 s), the other devices still
            # get their turn.
            await asyncio.sleep(min(wait, max(deadline - time.perf_counter(), 0)))

    # --- the progress bar ------------------------------------------------------------------

    @contextlib.contextmanager
    def progress_bar(self, show: bool, devices: int, duration: float) -> Iterator[None]:
        if not show:
            yield
            return
        self.progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.tasks = (
            self.progress.add_task("enrolling", total=devices, detail=""),
            self.progress.add_task("checking in", total=duration or 1, start=False, detail=""),
        )
        with self.progress:
            yield

    def advance(self) -> None:
        if self.progress and self.tasks:
            self.progress.advance(self.tasks[0])
            self.progress.update(self.tasks[0], detail=self.detail())

    def start_checkins(self) -> None:
        if self.progress and self.tasks:
            self.progress.start_task(self.tasks[1])

    def show_time(self, elapsed: float, duration: float) -> None:
        if self.progress and self.tasks:
            self.progress.update(
                self.tasks[1], completed=min(elapsed, duration) or 1, detail=self.detail()
            )

    def detail(self) -> str:
        failed = sum(self.errors.values())
        return f"{len(self.latencies_ms)} check-ins, {failed} errors"

    async def tick(self, begin: float, duration: float) -> None:
        while self.progress:
            self.show_time(time.perf_counter() - begin, duration)
            await asyncio.sleep(0.25)
