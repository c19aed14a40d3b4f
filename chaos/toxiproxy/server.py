"""Run the server in-process: on a running asyncio loop, or on its own loop in a thread."""
from __future__ import annotations

import asyncio
import random
import threading
from types import TracebackType

from aiohttp import web

from chaos.toxiproxy.api import make_app
from chaos.toxiproxy.proxy_collection import ProxyCollection

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServerThread", "ToxiproxyServer"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8474  # Toxiproxy's


class ToxiproxyServer:
    """The HTTP API and every proxy it manages, on the caller's event loop.

        async with ToxiproxyServer(port=0, rng=random.Random(7)) as server:
            ...  # server.url is e.g. "http://127.0.0.1:40123"

    `rng` drives every random choice (toxicity rolls, jitter, slicer sizes).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.proxies = ProxyCollection(rng if rng is not None else random.Random())
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Bind the API (port 0 picks a free port, shown in `port` and `url`); returns url."""
        runner = web.AppRunner(make_app(self.proxies), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        """Stop every proxy (dropping their connections), then the API."""
        await self.proxies.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ToxiproxyServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ServerThread:
    """A ToxiproxyServer on its own event loop in a daemon thread, for synchronous callers.

        with ServerThread(port=0) as url:
            Toxiproxy().update_api_consumer("127.0.0.1", ...)
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.server = ToxiproxyServer(host, port, rng=rng)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout_s: float = 10.0) -> str:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError(f"toxiproxy server did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise TimeoutError(f"toxiproxy server did not stop within {timeout_s} s")
            self._thread = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as error:  # reported to start()'s caller
            self._error = error
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
