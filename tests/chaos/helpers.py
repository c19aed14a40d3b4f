"""Test helpers for the Toxiproxy-compatible server: TCP echo servers, socket reads bounded by
deadlines, and plain HTTP for what the toxiproxy-python client cannot send."""
from __future__ import annotations

import json
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from typing import Any

from toxiproxy.proxy import Proxy

DEADLINE_S = 5.0  # every blocking socket call in these tests gives up after this


class EchoServer:
    """Echoes every byte back, after `prefix` on each read; when the client half-closes it
    closes too. Threads are daemons; close() stops accepting."""

    def __init__(self, prefix: bytes = b"") -> None:
        outer_prefix = prefix

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(30)
                try:
                    while data := self.request.recv(65536):
                        self.request.sendall(outer_prefix + data)
                except OSError:
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(DEADLINE_S)


def connect(listen: str) -> socket.socket:
    host, port = listen.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE_S)
    sock.settimeout(DEADLINE_S)
    return sock


def connect_proxy(proxy: Proxy) -> socket.socket:
    return connect(proxy.listen)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Up to `size` bytes; fewer only if the peer closed first."""
    data = b""
    while len(data) < size:  # each pass gains >= 1 byte or stops
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_until_eof(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while len(data) <= limit:  # each pass gains >= 1 byte or stops
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"no EOF after {limit} bytes")


def http(
    base_url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON body or None) for one request to the API."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode()
