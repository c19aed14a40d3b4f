"""What a Toxiproxy proxy with no toxic costs: request/response round trips over TCP, direct to an
echo server vs through dynalab's Toxiproxy server (or the real one, with --server URL).

    python -m chaos.overhead [--seconds 3] [--connections 32] [--size 1024] [--server URL]

The echo server and dynalab's Toxiproxy server each run in a process of their own (as in a
cluster), the client in this one. Prints ops/s and latency percentiles of both paths and the
ratios. Every process started is ended by its pid.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["Measurement", "main", "measure"]

_ECHO = """
import asyncio
async def handle(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""
_START_S = 30.0


@dataclass(frozen=True)
class Measurement:
    ops_per_s: float
    p50_ms: float
    p99_ms: float


async def _connection(address: tuple[str, int], size: int, until: float,
                      latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(*address)
    payload = b"x" * size
    try:
        while time.monotonic() < until:  # bounded by the deadline
            start = time.perf_counter()
            writer.write(payload)
            await reader.readexactly(size)
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def _measure(address: tuple[str, int], seconds: float, connections: int,
                   size: int) -> Measurement:
    latencies: list[float] = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(_connection(address, size, until, latencies)
                           for _ in range(connections)))
    latencies.sort()

    def pick_ms(quantile: float) -> float:
        return latencies[min(len(latencies) - 1, int(quantile * len(latencies)))] * 1000

    return Measurement(len(latencies) / seconds, pick_ms(0.5), pick_ms(0.99))


def measure(address: str, seconds: float, connections: int, size: int) -> Measurement:
    host, port = address.rsplit(":", 1)
    return asyncio.run(_measure((host, int(port)), seconds, connections, size))


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a process that prints one line once it listens; (process, that line)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()  # the child prints once bound, or exits
    if not line:
        process.kill()
        raise RuntimeError(f"{argv[:4]} did not start")
    return process, line


def _api(url: str, path: str, body: object) -> dict[str, Any]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=_START_S) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--size", type=int, default=1024, help="bytes per request")
    parser.add_argument("--server", help="an already running Toxiproxy API URL")
    args = parser.parse_args(argv)
    started: list[subprocess.Popen[str]] = []
    try:
        echo, port = _start([sys.executable, "-c", _ECHO])
        started.append(echo)
        url = args.server
        if url is None:
            proxy_server, line = _start([sys.executable, "-m", "dynalab.cli", "toxiproxy",
                                         "--port", "0"])
            started.append(proxy_server)
            url = line.rsplit(" ", 1)[-1]
        proxy = _api(url, "/proxies", {"name": f"overhead-{port}", "listen": "127.0.0.1:0",
                                       "upstream": f"127.0.0.1:{port}"})
        results = {}
        for connections in sorted({1, args.connections}):
            direct = measure(f"127.0.0.1:{port}", args.seconds, connections, args.size)
            proxied = measure(proxy["listen"], args.seconds, connections, args.size)
            results[connections] = (direct, proxied)
            print(f"{connections:3d} connection(s), {args.size} B: direct {direct.ops_per_s:9,.0f}"
                  f" ops/s p50 {direct.p50_ms:.3f} ms p99 {direct.p99_ms:.3f} ms | proxied "
                  f"{proxied.ops_per_s:9,.0f} ops/s p50 {proxied.p50_ms:.3f} ms p99 "
                  f"{proxied.p99_ms:.3f} ms | throughput "
                  f"x{proxied.ops_per_s / direct.ops_per_s:.2f}"
                  f", p50 x{proxied.p50_ms / direct.p50_ms:.1f}", flush=True)
    finally:
        for process in started:
            process.kill()  # by pid: only what this run started
            process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
