"""The HTTP API of the Toxiproxy-compatible server, driven by toxiproxy-python where it has the
call and by plain HTTP where it does not (status codes, error bodies, /populate, PATCH)."""
from __future__ import annotations

import socket
from typing import Any

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound

from chaos.toxiproxy import ServerThread
from tests.chaos.helpers import EchoServer, connect, connect_proxy, http, recv_exactly

PROXY_KEYS = {"name", "listen", "upstream", "enabled", "toxics"}
TOXIC_KEYS = {"name", "type", "stream", "toxicity", "attributes"}


@pytest.fixture
def api(server_thread: ServerThread) -> str:
    return server_thread.url


def assert_refused(listen: str) -> None:
    with pytest.raises(ConnectionRefusedError):
        connect(listen).close()


def assert_echoes(listen: str, payload: bytes = b"ping") -> None:
    with connect(listen) as sock:
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload


def assert_error(reply: tuple[int, Any], status: int, message: str) -> None:
    code, body = reply
    assert code == status
    assert body["status"] == status
    assert message in body["error"]


def test_version(toxiproxy: Toxiproxy, api: str) -> None:
    assert b'"version"' in toxiproxy.version()
    status, body = http(api, "GET", "/version")
    assert status == 200 and body["version"].startswith("2.")


def test_create_list_get_delete(toxiproxy: Toxiproxy, echo: EchoServer, api: str) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="echo")
    host, port = proxy.listen.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0 and proxy.enabled is True
    assert set(toxiproxy.proxies()) == {"echo"}
    assert toxiproxy.get_proxy("echo").upstream == echo.address

    status, body = http(api, "GET", "/proxies/echo")
    assert status == 200 and set(body) == PROXY_KEYS and body["toxics"] == []
    status, index = http(api, "GET", "/proxies")
    assert status == 200 and index == {"echo": body}
    assert_echoes(proxy.listen)

    assert toxiproxy.destroy(proxy) is True
    assert toxiproxy.get_proxy("echo") is None
    assert_refused(proxy.listen)


def test_create_answers_201_with_the_proxy(api: str, echo: EchoServer) -> None:
    status, body = http(api, "POST", "/proxies", {"name": "p", "upstream": echo.address})
    try:
        assert status == 201 and set(body) == PROXY_KEYS
        assert body["enabled"] is True and not body["listen"].endswith(":0")
    finally:
        assert http(api, "DELETE", "/proxies/p")[0] == 204


def test_null_fields_mean_defaults_as_in_go(api: str, echo: EchoServer) -> None:
    body = {"name": "n", "upstream": echo.address, "listen": None, "enabled": None}
    status, proxy = http(api, "POST", "/proxies", body)
    assert status == 201 and proxy["enabled"] is True and proxy["listen"].startswith("127.0.0.1:")
    status, toxic = http(api, "POST", "/proxies/n/toxics",
                         {"type": "latency", "stream": None, "toxicity": None, "attributes": None})
    assert status == 200 and toxic["stream"] == "downstream" and toxic["toxicity"] == 1.0
    assert http(api, "DELETE", "/proxies/n")[0] == 204


def test_proxy_errors(toxiproxy: Toxiproxy, echo: EchoServer, api: str) -> None:
    toxiproxy.create(upstream=echo.address, name="dup")
    assert_error(http(api, "POST", "/proxies", {"name": "dup", "upstream": echo.address}), 409,
                 "proxy already exists")
    assert_error(http(api, "POST", "/proxies", {"upstream": echo.address}), 400,
                 "missing required field: name")
    assert_error(http(api, "POST", "/proxies", {"name": "x"}), 400,
                 "missing required field: upstream")
    assert_error(http(api, "POST", "/proxies", b"{not json"), 400, "bad request body")
    assert_error(http(api, "POST", "/proxies", {"name": 7, "upstream": "a:1"}), 400,
                 "bad request body")
    assert_error(http(api, "GET", "/proxies/nope"), 404, "proxy not found")
    assert_error(http(api, "POST", "/proxies/nope", {"enabled": False}), 404, "proxy not found")
    assert_error(http(api, "DELETE", "/proxies/nope"), 404, "proxy not found")
    with pytest.raises(NotFound):
        toxiproxy.get_proxy("dup").destroy_toxic("nope")


def test_listen_address_in_use_is_500(echo: EchoServer, api: str) -> None:
    taken = echo.address  # the echo server holds this port
    reply = http(api, "POST", "/proxies", {"name": "p", "listen": taken, "upstream": taken})
    assert_error(reply, 500, "listen tcp")
    assert http(api, "GET", "/proxies/p")[0] == 404


def test_created_disabled_then_enabled(toxiproxy: Toxiproxy, echo: EchoServer, api: str) -> None:
    status, body = http(api, "POST", "/proxies",
                        {"name": "off", "upstream": echo.address, "enabled": False})
    assert status == 201 and body["enabled"] is False
    assert_refused_or_unbound(body["listen"])
    proxy = toxiproxy.get_proxy("off")
    proxy.enable()
    assert toxiproxy.get_proxy("off").enabled is True
    assert_echoes(toxiproxy.get_proxy("off").listen)


def assert_refused_or_unbound(listen: str) -> None:
    # A proxy created disabled has not bound yet, so its listen may still say port 0.
    if not listen.endswith(":0"):
        assert_refused(listen)


def test_disable_drops_connections_and_stops_listening(
    toxiproxy: Toxiproxy, echo: EchoServer
) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="cut")
    sock = connect_proxy(proxy)
    sock.sendall(b"a")
    assert recv_exactly(sock, 1) == b"a"
    with proxy.down():
        assert toxiproxy.get_proxy("cut").enabled is False
        assert sock.recv(1) == b""  # the open connection was closed
        assert_refused(proxy.listen)
    assert_echoes(proxy.listen)  # same address again after enable
    sock.close()


def test_update_upstream_and_listen(toxiproxy: Toxiproxy, echo: EchoServer, api: str) -> None:
    tagged = EchoServer(prefix=b"B:")
    try:
        proxy = toxiproxy.create(upstream=echo.address, name="move")
        old = connect_proxy(proxy)
        status, body = http(api, "POST", "/proxies/move", {"upstream": tagged.address})
        assert status == 200 and body["upstream"] == tagged.address and body["enabled"]
        assert old.recv(1) == b""  # a new upstream restarts the proxy
        old.close()
        with connect(body["listen"]) as sock:
            sock.sendall(b"x")
            assert recv_exactly(sock, 3) == b"B:x"

        status, body = http(api, "PATCH", "/proxies/move", {"listen": "127.0.0.1:0"})
        assert status == 200 and body["listen"] != proxy.listen
        assert_refused(proxy.listen)
        with connect(body["listen"]) as sock:
            sock.sendall(b"y")
            assert recv_exactly(sock, 3) == b"B:y"
    finally:
        tagged.close()


def test_populate(api: str, echo: EchoServer, toxiproxy: Toxiproxy) -> None:
    other = EchoServer(prefix=b"2:")
    try:
        wanted = [
            {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
            {"name": "b", "upstream": other.address, "enabled": False},
        ]
        status, body = http(api, "POST", "/populate", wanted)
        assert status == 201 and [p["name"] for p in body["proxies"]] == ["a", "b"]
        assert body["proxies"][0]["enabled"] is True and body["proxies"][1]["enabled"] is False
        a = body["proxies"][0]
        toxiproxy.get_proxy("a").add_toxic(type="latency", attributes={"latency": 1})

        # Same listen and upstream: kept as it is, toxics and all.
        same = [{"name": "a", "listen": a["listen"], "upstream": echo.address}]
        status, body = http(api, "POST", "/populate", same)
        assert status == 201 and body["proxies"][0]["listen"] == a["listen"]
        assert len(body["proxies"][0]["toxics"]) == 1

        # A different upstream replaces it (toxics gone).
        moved = [{"name": "a", "listen": a["listen"], "upstream": other.address}]
        status, body = http(api, "POST", "/populate", moved)
        assert status == 201 and body["proxies"][0]["toxics"] == []
        with connect(body["proxies"][0]["listen"]) as sock:
            sock.sendall(b"z")
            assert recv_exactly(sock, 3) == b"2:z"

        # One bad entry: error, and nothing changes.
        bad = [{"name": "c", "upstream": echo.address}, {"name": "d"}]
        status, body = http(api, "POST", "/populate", bad)
        assert status == 400 and body["proxies"] is None
        assert "missing required field: upstream at proxy 2" in body["error"]
        assert set(toxiproxy.proxies()) == {"a", "b"}
        assert_error(http(api, "POST", "/populate", {"name": "x"}), 400, "bad request body")
    finally:
        other.close()


def test_reset_enables_proxies_and_removes_toxics(
    toxiproxy: Toxiproxy, echo: EchoServer, api: str
) -> None:
    on = toxiproxy.create(upstream=echo.address, name="on")
    off = toxiproxy.create(upstream=echo.address, name="off")
    on.add_toxic(type="latency", attributes={"latency": 10})
    on.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
    off.disable()
    assert toxiproxy.reset() is True
    assert http(api, "POST", "/reset")[0] == 204
    for name in ("on", "off"):
        assert toxiproxy.get_proxy(name).enabled is True
        assert toxiproxy.get_proxy(name).toxics() == {}
    assert_echoes(off.listen)
    assert_echoes(on.listen)


def test_toxic_crud(toxiproxy: Toxiproxy, echo: EchoServer, api: str) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="tox")
    proxy.add_toxic(type="latency", attributes={"latency": 5, "jitter": 1})
    proxy.add_toxic(type="bandwidth", name="bw", stream="upstream", toxicity=0.5,
                    attributes={"rate": 100})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bw"}
    assert toxics["bw"].attributes == {"rate": 100} and toxics["bw"].toxicity == 0.5

    status, body = http(api, "GET", "/proxies/tox/toxics/latency_downstream")
    assert status == 200 and set(body) == TOXIC_KEYS
    assert body == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                    "toxicity": 1.0, "attributes": {"latency": 5, "jitter": 1}}
    status, listing = http(api, "GET", "/proxies/tox/toxics")
    assert status == 200 and [t["name"] for t in listing] == ["bw", "latency_downstream"]

    # Update: attributes not given are kept; name, type and stream cannot change.
    status, body = http(api, "POST", "/proxies/tox/toxics/latency_downstream",
                        {"attributes": {"latency": 50}, "toxicity": 0.25, "type": "slicer"})
    assert status == 200 and body["attributes"] == {"latency": 50, "jitter": 1}
    assert body["toxicity"] == 0.25 and body["type"] == "latency"
    status, body = http(api, "PATCH", "/proxies/tox/toxics/bw", {"attributes": {"rate": 7}})
    assert status == 200 and body["attributes"] == {"rate": 7} and body["toxicity"] == 0.5
    assert http(api, "GET", "/proxies/tox")[1]["toxics"] == http(api, "GET", "/proxies/tox/toxics")[1]

    assert proxy.destroy_toxic("bw") is True
    assert http(api, "DELETE", "/proxies/tox/toxics/latency_downstream")[0] == 204
    assert proxy.toxics() == {}


def test_toxic_create_answers_200_as_toxiproxy(echo: EchoServer, toxiproxy: Toxiproxy,
                                               api: str) -> None:
    toxiproxy.create(upstream=echo.address, name="t")
    status, body = http(api, "POST", "/proxies/t/toxics", {"type": "slow_close"})
    assert status == 200
    assert body == {"name": "slow_close_downstream", "type": "slow_close",
                    "stream": "downstream", "toxicity": 1.0, "attributes": {"delay": 0}}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"type": "latency", "name": "dup"}, 409, "toxic already exists"),
        ({"type": "nope"}, 400, "invalid toxic type"),
        ({}, 400, "invalid toxic type"),
        ({"type": "latency", "stream": "sideways"}, 400, "stream was invalid"),
        ({"type": "latency", "attributes": {"latency": "slow"}}, 400, "bad request body"),
        ({"type": "latency", "attributes": {"latency": -1}}, 400, "bad request body"),
        ({"type": "latency", "attributes": []}, 400, "bad request body"),
        ({"type": "latency", "toxicity": 1.5}, 400, "bad request body"),
        ({"type": "slicer", "attributes": {"average_size": 5, "size_variation": 5}}, 400,
         "size_variation"),
        ([1, 2], 400, "bad request body"),
    ],
)
def test_toxic_errors(echo: EchoServer, toxiproxy: Toxiproxy, api: str,
                      body: Any, status: int, message: str) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="e")
    proxy.add_toxic(type="latency", name="dup")
    assert_error(http(api, "POST", "/proxies/e/toxics", body), status, message)
    assert set(proxy.toxics()) == {"dup"}


def test_toxic_not_found(echo: EchoServer, toxiproxy: Toxiproxy, api: str) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="nf")
    assert_error(http(api, "GET", "/proxies/nf/toxics/none"), 404, "toxic not found")
    assert_error(http(api, "POST", "/proxies/nf/toxics/none", {}), 404, "toxic not found")
    assert_error(http(api, "DELETE", "/proxies/nf/toxics/none"), 404, "toxic not found")
    assert_error(http(api, "GET", "/proxies/none/toxics"), 404, "proxy not found")
    assert_error(http(api, "POST", "/proxies/none/toxics", {"type": "latency"}), 404,
                 "proxy not found")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="bogus")


def test_browsers_are_refused(api: str) -> None:
    status, body = http(api, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert status == 403 and "User agent not allowed" in body


def test_unreachable_upstream_closes_the_client(toxiproxy: Toxiproxy) -> None:
    with socket.socket() as spare:  # a port with nothing listening on it
        spare.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{spare.getsockname()[1]}"
        proxy = toxiproxy.create(upstream=dead, name="dead")
        with connect_proxy(proxy) as sock:
            try:
                assert sock.recv(1) == b""
            except ConnectionResetError:
                pass  # closed without reading: also a refusal
