"""Running the server: in-process on a loop, on a thread, and as `dynalab toxiproxy` (a
process, ended by PID)."""
from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from chaos.toxiproxy import DEFAULT_PORT, ServerThread, ToxiproxyServer
from chaos.toxiproxy.cli import main
from tests.chaos.helpers import EchoServer, connect, http, recv_exactly

REPO = Path(__file__).resolve().parents[2]


def test_in_process_on_a_running_loop(echo: EchoServer) -> None:
    async def scenario() -> None:
        async with ToxiproxyServer(port=0) as server:
            assert server.port != 0
            async with aiohttp.ClientSession() as session:
                async with session.get(server.url + "/version") as reply:
                    assert reply.status == 200 and "version" in await reply.json()
            proxy = await server.proxies.create({"name": "p", "upstream": echo.address})
            host, port = proxy.listen.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"hi")
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"hi"
            writer.close()
        # stop() stopped the proxies too
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, int(port))

    asyncio.run(scenario())


def test_thread_reports_a_port_in_use() -> None:
    with ServerThread(port=0) as url:
        busy = ServerThread(port=int(url.rsplit(":", 1)[1]))
        with pytest.raises(OSError):
            busy.start()


def test_default_port_is_toxiproxys() -> None:
    assert DEFAULT_PORT == 8474
    with pytest.raises(SystemExit) as exit_info:
        main(["toxiproxy", "--help"])
    assert exit_info.value.code == 0


def read_line(process: subprocess.Popen[str], deadline_s: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=deadline_s):
            raise AssertionError("no output from dynalab toxiproxy")
    return process.stdout.readline()


def start_cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "dynalab.cli", "toxiproxy", "--host", "127.0.0.1", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def stop_by_pid(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str]:
    """(exit code, stderr); SIGKILL if the signal did not stop it within the deadline."""
    os.kill(process.pid, sig)
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=10)
    return process.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signalled(sig: signal.Signals, echo: EchoServer, tmp_path: Path) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text(json.dumps([{"name": "from_file", "upstream": echo.address}]))
    process = start_cli("--port", "0", "--seed", "3", "--config", str(config))
    try:
        line = read_line(process, deadline_s=20)
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        status, proxies = http(url, "GET", "/proxies")
        assert status == 200 and set(proxies) == {"from_file"}
        with connect(proxies["from_file"]["listen"]) as sock:
            sock.sendall(b"cli")
            assert recv_exactly(sock, 3) == b"cli"
    finally:
        code, err = stop_by_pid(process, sig)
    assert code == 0 and "Traceback" not in err
