"""Check-in throughput (issue 4): a real server on SQLite (or PostgreSQL when
AOSPMDM_DATABASE_URL names one) and simulated devices over loopback, against the same
server's trivial endpoint (/healthz) driven by the same load generator in the same run.

Devices enroll through the protocol, then check in back to back, each check-in freshly
signed (ECDSA P-256, new nonce and timestamp). The load generator shares the 2 cores with
the server: both CPU figures are printed so the result can be read honestly. The last line
is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aospmdm import protocol
from aospmdm.agent.simulator import percentile
from bench.loadgen import Result, drive, http_request
from bench.server import ready_to_enroll, running_server

DEVICES = int(os.environ.get("BENCH_DEVICES", "200"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
PATH = "/device/v1/checkin"


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Fleet:
    def __init__(self, url: str, secret: str, devices: int):
        self.host = url.split("//", 1)[1]
        self.devices: list[tuple[str, ec.EllipticCurvePrivateKey, bytes]] = []
        apps = [
            protocol.InstalledApp(
                package_name="com.realwear.launcher",
                version_name="2.1",
                version_code=21,
                display_name="Launcher",
            )
        ]
        with httpx.Client(base_url=url, timeout=30) as http:
            for n in range(devices):
                key = ec.generate_private_key(ec.SECP256R1())
                der = key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                facts = protocol.DeviceFacts(
                    serial_number=f"BENCH-{n}",
                    manufacturer="RealWear",
                    model="Navigator 500",
                    os_version="11",
                    security_patch_level="2024-05-05",
                    battery_level=90,
                )
                enroll = protocol.EnrollRequest(
                    agent_version="24.9.0",
                    enrollment_token=secret,
                    public_key=protocol.b64url(der),
                    facts=facts,
                    installed_apps=apps,
                )
                r = http.post("/device/v1/enroll", content=enroll.model_dump_json(by_alias=True))
                r.raise_for_status()
                body = (
                    protocol.CheckinRequest(
                        agent_version="24.9.0",
                        facts=facts,
                        installed_apps_hash=protocol.installed_apps_hash(apps),
                    )
                    .model_dump_json(by_alias=True)
                    .encode()
                )
                self.devices.append((r.json()["deviceId"], key, body))
        self.next = 0

    def checkin(self, _worker: int) -> bytes:
        n = self.next % len(self.devices)
        self.next += 1
        return http_request("POST", PATH, self.host, self.headers(n), self.devices[n][2])

    def headers(self, n: int) -> dict[str, str]:
        """Freshly signed headers for device ``n``'s check-in body."""
        device_id, key, body = self.devices[n]
        ts = int(time.time() * 1000)
        nonce = protocol.b64url(os.urandom(16))
        sig = key.sign(
            protocol.signing_string("POST", PATH, ts, nonce, body), ec.ECDSA(hashes.SHA256())
        )
        return {
            "Content-Type": "application/json",
            protocol.HEADER_DEVICE: device_id,
            protocol.HEADER_TIMESTAMP: str(ts),
            protocol.HEADER_NONCE: nonce,
            protocol.HEADER_SIGNATURE: protocol.b64url(sig),
        }


def measured(pid: int, run: Any) -> tuple[Result, float, float]:
    server0, client0 = cpu_of(pid), own_cpu()
    result: Result = asyncio.run(run)
    return result, cpu_of(pid) - server0, own_cpu() - client0


def main() -> None:
    database = "postgresql" if os.environ.get("AOSPMDM_DATABASE_URL") else "sqlite"
    with running_server(keep_database_url=database == "postgresql") as server:
        server.cli("license", "set", str(DEVICES + 10))
        _token, secret = ready_to_enroll(server, f"Bench fleet {os.getpid()}")
        fleet = Fleet(server.url, secret, DEVICES)
        host = server.url.split("//", 1)[1]
        health = http_request("GET", "/healthz", host, {}, b"")
        trivial, t_server, t_client = measured(
            server.pid, drive(server.url, lambda _n: health, SECONDS, CONNECTIONS)
        )
        checkins, c_server, c_client = measured(
            server.pid, drive(server.url, fleet.checkin, SECONDS, CONNECTIONS)
        )
    bad = {s: n for s, n in checkins.statuses.items() if s != 200}
    out = {
        "checkins_per_s": round(checkins.per_s, 1),
        "p50_ms": round(percentile(checkins.latencies_ms, 50) or 0, 2),
        "p99_ms": round(percentile(checkins.latencies_ms, 99) or 0, 2),
        "trivial_per_s": round(trivial.per_s, 1),
        "devices": len(fleet.devices),
        "database": database,
    }
    print(
        f"bench/checkin.py ({database}; {len(fleet.devices)} enrolled devices, "
        f"{CONNECTIONS} connections, {SECONDS:.0f} s per phase; one server process and the "
        "load generator share the 2 cores)"
    )
    for label, r, s_cpu, c_cpu in (
        ("GET /healthz", trivial, t_server, t_client),
        ("POST /device/v1/checkin", checkins, c_server, c_client),
    ):
        print(
            f"  {label:24} {r.per_s:7.0f}/s  p50 {percentile(r.latencies_ms, 50) or 0:6.2f} ms"
            f"  p99 {percentile(r.latencies_ms, 99) or 0:6.2f} ms  CPU: server {s_cpu:4.1f} s,"
            f" load generator {c_cpu:4.1f} s of {r.elapsed_s:4.1f} s"
        )
    print(
        f"  check-ins / trivial = {checkins.per_s / trivial.per_s:.2f};"
        f" non-200 answers: {bad or 'none'}"
    )
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
