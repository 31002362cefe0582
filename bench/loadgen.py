"""A lean HTTP/1.1 load generator for loopback benchmarks: asyncio streams over keep-alive
connections, requests written as bytes. httpx costs more CPU per request than the server
spends on a check-in, and on 2 shared cores that would measure the client, not the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def drive(
    url: str, make_request: Callable[[int], bytes], seconds: float, connections: int
) -> Result:
    """Send requests built by ``make_request(worker)`` back to back on ``connections``
    keep-alive connections for ``seconds``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = Result()
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                request = make_request(n)
                t = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - t) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(connections)))
    result.elapsed_s = time.perf_counter() - start
    return result


def http_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
