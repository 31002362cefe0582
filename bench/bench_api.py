"""Admin-API overhead: an authenticated, RBAC-checked Graph read and an audited write,
against the same server's trivial endpoint (/healthz), measured in one run."""

from __future__ import annotations

import itertools

from bench.server import running_server, throughput

SECONDS = 5.0


def main() -> None:
    with running_server() as server:
        token = server.cli("admin", "token", "admin@aospmdm.local").strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {token}"}
        n = itertools.count()
        health = throughput(lambda c: c.get(f"{server.url}/healthz"), SECONDS)
        read = throughput(lambda c: c.get(f"{server.url}/beta/organization", headers=auth), SECONDS)
        write = throughput(
            lambda c: c.post(
                f"{server.url}/beta/deviceManagement/roleScopeTags",
                headers=auth,
                json={"displayName": f"bench {next(n)}"},
            ),
            SECONDS,
        )
    print("bench_api (SQLite, 1 server process, 8 concurrent loopback clients)")
    print(f"  GET /healthz                   {health:8.0f} req/s")
    print(f"  GET /beta/organization (auth)  {read:8.0f} req/s  = {read / health:.2f} x healthz")
    print(f"  POST roleScopeTags (audited)   {write:8.0f} req/s  = {write / health:.2f} x healthz")
