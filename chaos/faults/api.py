"""The Toxiproxy HTTP API as the faults use it, through the toxiproxy-python client.

The client's `APIConsumer` does the HTTP (requests) and maps 404/409/400 to its exceptions. Its
endpoint is class-level state, and its `Proxy` helpers send no timeout, so this wrapper sets the
endpoint under a lock for each call and passes a timeout: a paused or dead Toxiproxy must make
a fault command fail, not hang. It drives the real `toxiproxy-server` and dynalab's own alike.
"""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

__all__ = ["ToxiproxyApi", "ToxiproxyError"]

_CLIENT_LOCK = threading.Lock()  # APIConsumer.host/port are shared by the whole process


class ToxiproxyError(RuntimeError):
    """The Toxiproxy API refused a request or cannot be reached; the message says which."""


def _quote(name: str) -> str:
    # Proxy names such as "az:us-east-1a->node:use1-b1" hold characters a path must escape.
    return urllib.parse.quote(name, safe="")


class ToxiproxyApi:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname is None or parsed.port is None:
            raise ValueError(f"Toxiproxy API URL needs a host and a port: {url!r}")
        self.url = url
        self._host, self._port = parsed.hostname, parsed.port
        self._timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        with _CLIENT_LOCK:
            APIConsumer.host, APIConsumer.port = self._host, self._port
            try:
                if method == "GET":
                    response = APIConsumer.get(path, timeout=self._timeout_s)
                elif method == "DELETE":
                    response = APIConsumer.delete(path, timeout=self._timeout_s)
                else:
                    response = APIConsumer.post(path, json=body, timeout=self._timeout_s)
            except (NotFound, ProxyExists, InvalidToxic) as error:
                raise ToxiproxyError(f"{method} {path}: {type(error).__name__}: "
                                     f"{_text(error)}") from None
            except requests.RequestException as error:
                raise ToxiproxyError(f"cannot reach the Toxiproxy API at {self.url}: "
                                     f"{type(error).__name__}") from None
        if response.status_code >= 400:  # the client maps only 400/404/409
            raise ToxiproxyError(f"{method} {path}: HTTP {response.status_code} "
                                 f"{response.text[:200]}")
        return response.json() if response.content else None

    def version(self) -> str:
        with _CLIENT_LOCK:
            APIConsumer.host, APIConsumer.port = self._host, self._port
            try:
                return str(APIConsumer.get("/version", timeout=self._timeout_s).text)
            except requests.RequestException as error:
                raise ToxiproxyError(f"cannot reach the Toxiproxy API at {self.url}: "
                                     f"{type(error).__name__}") from None

    def proxies(self) -> dict[str, dict[str, Any]]:
        """name -> proxy (with its toxics), as GET /proxies returns them."""
        return dict(self._call("GET", "/proxies"))

    def populate(self, proxies: list[dict[str, Any]]) -> None:
        self._call("POST", "/populate", proxies)

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self._call("POST", f"/proxies/{_quote(proxy)}", {"enabled": enabled})

    def add_toxic(self, proxy: str, toxic: dict[str, Any]) -> None:
        self._call("POST", f"/proxies/{_quote(proxy)}/toxics", toxic)

    def update_toxic(self, proxy: str, toxic: dict[str, Any]) -> None:
        self._call("POST", f"/proxies/{_quote(proxy)}/toxics/{_quote(toxic['name'])}", toxic)

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}")

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        self._call("POST", "/reset")


def _text(error: Exception) -> str:
    arg = error.args[0] if error.args else ""
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
