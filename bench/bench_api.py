"""Admin-API overhead: an authenticated, RBAC-checked Graph read and an audited write,
against the same server's trivial endpoint (/healthz), with the same load generator in one
run. The last line is one JSON object."""

from __future__ import annotations

import asyncio
import itertools
import json
import os

from bench.loadgen import drive, http_request
from bench.server import running_server

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))


def main() -> None:
    with running_server() as server:
        token = server.cli("admin", "token", "admin@aospmdm.local").strip().splitlines()[-1]
        host = server.url.split("//", 1)[1]
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        health = http_request("GET", "/healthz", host, {}, b"")
        read = http_request("GET", "/beta/organization", host, auth, b"")
        n = itertools.count()

        def write(_worker: int) -> bytes:
            body = json.dumps({"displayName": f"bench {next(n)}"}).encode()
            return http_request("POST", "/beta/deviceManagement/roleScopeTags", host, auth, body)

        results = {
            "healthz": asyncio.run(drive(server.url, lambda _w: health, SECONDS, CONNECTIONS)),
            "read": asyncio.run(drive(server.url, lambda _w: read, SECONDS, CONNECTIONS)),
            "write": asyncio.run(drive(server.url, write, SECONDS, CONNECTIONS)),
        }
    trivial = results["healthz"].per_s
    print(f"bench_api (SQLite, 1 server process, {CONNECTIONS} connections, {SECONDS:.0f} s each)")
    for label, key in (
        ("GET /healthz", "healthz"),
        ("GET /beta/organization (auth)", "read"),
        ("POST roleScopeTags (audited)", "write"),
    ):
        r = results[key]
        print(
            f"  {label:30} {r.per_s:7.0f} req/s = {r.per_s / trivial:.2f} x healthz;"
            f" statuses {r.statuses}"
        )
    print(json.dumps({k: round(v.per_s, 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
