"""Toxiproxy's HTTP API on aiohttp: the same routes, JSON shapes, status codes and errors."""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from chaos.toxiproxy.errors import BAD_REQUEST_BODY, ApiError
from chaos.toxiproxy.proxy_collection import ProxyCollection

__all__ = ["VERSION", "make_app"]

# The Toxiproxy API version this server speaks, tagged so a caller can tell it from the real one.
VERSION = "2.12.0+dynalab"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Toxiproxy refuses browsers, so a web page cannot drive a local Toxiproxy (CSRF).
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(text="User agent not allowed", status=403)
    try:
        return await handler(request)
    except ApiError as error:
        return _json(error.to_json(), error.status)


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError as error:
        raise BAD_REQUEST_BODY(str(error)) from None


class _Handlers:
    def __init__(self, proxies: ProxyCollection) -> None:
        self.proxies = proxies

    async def version(self, _: web.Request) -> web.Response:
        return _json({"version": VERSION})

    async def proxy_index(self, _: web.Request) -> web.Response:
        return _json({proxy.name: proxy.to_json() for proxy in self.proxies.all()})

    async def proxy_create(self, request: web.Request) -> web.Response:
        proxy = await self.proxies.create(await _body(request))
        return _json(proxy.to_json(), 201)

    async def populate(self, request: web.Request) -> web.Response:
        try:
            proxies = await self.proxies.populate(await _body(request))
        except ApiError as error:
            return _json({**error.to_json(), "proxies": None}, error.status)
        return _json({"proxies": [proxy.to_json() for proxy in proxies]}, 201)

    async def proxy_show(self, request: web.Request) -> web.Response:
        return _json(self.proxies.get(request.match_info["proxy"]).to_json())

    async def proxy_update(self, request: web.Request) -> web.Response:
        proxy = await self.proxies.update(request.match_info["proxy"], await _body(request))
        return _json(proxy.to_json())

    async def proxy_delete(self, request: web.Request) -> web.Response:
        await self.proxies.remove(request.match_info["proxy"])
        return web.Response(status=204)

    async def toxic_index(self, request: web.Request) -> web.Response:
        toxics = self.proxies.get(request.match_info["proxy"]).toxics
        return _json([spec.to_json() for spec in toxics.specs()])

    async def toxic_create(self, request: web.Request) -> web.Response:
        toxics = self.proxies.get(request.match_info["proxy"]).toxics
        spec = await toxics.add(await _body(request))
        return _json(spec.to_json())  # 200, not 201: Toxiproxy's clients check for 200

    async def toxic_show(self, request: web.Request) -> web.Response:
        toxics = self.proxies.get(request.match_info["proxy"]).toxics
        return _json(toxics.get(request.match_info["toxic"]).to_json())

    async def toxic_update(self, request: web.Request) -> web.Response:
        toxics = self.proxies.get(request.match_info["proxy"]).toxics
        spec = await toxics.update(request.match_info["toxic"], await _body(request))
        return _json(spec.to_json())

    async def toxic_delete(self, request: web.Request) -> web.Response:
        toxics = self.proxies.get(request.match_info["proxy"]).toxics
        await toxics.remove(request.match_info["toxic"])
        return web.Response(status=204)

    async def reset(self, _: web.Request) -> web.Response:
        await self.proxies.reset()
        return web.Response(status=204)


def make_app(proxies: ProxyCollection) -> web.Application:
    h = _Handlers(proxies)
    app = web.Application(middlewares=[_errors])
    proxy, toxic = "/proxies/{proxy}", "/proxies/{proxy}/toxics/{toxic}"
    app.add_routes(
        [
            web.post("/reset", h.reset),
            web.get("/proxies", h.proxy_index),
            web.post("/proxies", h.proxy_create),
            web.post("/populate", h.populate),
            web.get(proxy, h.proxy_show),
            web.post(proxy, h.proxy_update),
            web.patch(proxy, h.proxy_update),
            web.delete(proxy, h.proxy_delete),
            web.get(proxy + "/toxics", h.toxic_index),
            web.post(proxy + "/toxics", h.toxic_create),
            web.get(toxic, h.toxic_show),
            web.post(toxic, h.toxic_update),
            web.patch(toxic, h.toxic_update),
            web.delete(toxic, h.toxic_delete),
            web.get("/version", h.version),
        ]
    )
    return app
