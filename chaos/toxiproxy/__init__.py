"""dynalab's Toxiproxy-compatible server: Toxiproxy's HTTP API (aiohttp) and TCP proxies
(asyncio) with its toxics, so the toxiproxy-python client drives it exactly as it drives the
real `toxiproxy-server`.

    from chaos.toxiproxy import ServerThread, ToxiproxyServer
    with ServerThread(port=0) as url: ...            # synchronous callers
    async with ToxiproxyServer(port=0) as server: ... # on a running loop
"""
from chaos.toxiproxy.api import VERSION
from chaos.toxiproxy.server import DEFAULT_HOST, DEFAULT_PORT, ServerThread, ToxiproxyServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "VERSION", "ServerThread", "ToxiproxyServer"]
