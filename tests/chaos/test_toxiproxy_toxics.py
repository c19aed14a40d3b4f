"""Each toxic's observable effect on a real TCP connection through the proxy to an echo server.
Delays are asserted as lower bounds only; waits are bounded by socket deadlines."""
from __future__ import annotations

import random
import select
import socket
import time

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.proxy import Proxy

from chaos.toxiproxy import ServerThread
from tests.chaos.helpers import EchoServer, connect_proxy, http, recv_exactly, recv_until_eof

# Timer wake-ups may come a hair early relative to time.monotonic(); lower bounds allow this.
SLACK_S = 0.005


@pytest.fixture
def proxy(toxiproxy: Toxiproxy, echo: EchoServer) -> Proxy:
    return toxiproxy.create(upstream=echo.address, name="echo")


def round_trip_s(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def expect_closed(sock: socket.socket) -> bytes:
    """Whatever arrives before the close; fails on a reset or on the deadline."""
    return recv_until_eof(sock)


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_adds_at_least_the_delay(proxy: Proxy, stream: str) -> None:
    proxy.add_toxic(type="latency", stream=stream, attributes={"latency": 150})
    with connect_proxy(proxy) as sock:
        for _ in range(2):
            assert round_trip_s(sock) >= 0.150 - SLACK_S


def test_latency_jitter_stays_within_bounds(proxy: Proxy) -> None:
    proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 50})
    with connect_proxy(proxy) as sock:
        assert min(round_trip_s(sock) for _ in range(4)) >= 0.050 - SLACK_S


def test_toxics_apply_to_open_connections(proxy: Proxy, server_thread: ServerThread) -> None:
    with connect_proxy(proxy) as sock:
        round_trip_s(sock)
        proxy.add_toxic(type="latency", attributes={"latency": 120})
        assert round_trip_s(sock) >= 0.120 - SLACK_S
        status, _ = http(server_thread.url, "POST", "/proxies/echo/toxics/latency_downstream",
                         {"attributes": {"latency": 250}})
        assert status == 200
        assert round_trip_s(sock) >= 0.250 - SLACK_S


def wait_for_buffered(server_thread: ServerThread, name: str, size: int) -> None:
    live = server_thread.server.proxies.get(name)
    deadline = time.monotonic() + 5
    while live.buffered_bytes != size and time.monotonic() < deadline:
        time.sleep(0.005)
    assert live.buffered_bytes == size


def test_removing_a_toxic_passes_on_the_data_it_held(
    proxy: Proxy, server_thread: ServerThread
) -> None:
    proxy.add_toxic(type="latency", attributes={"latency": 60_000})
    with connect_proxy(proxy) as sock:
        sock.sendall(b"held")
        wait_for_buffered(server_thread, "echo", 4)  # the echo sits in the latency toxic
        proxy.destroy_toxic("latency_downstream")
        assert recv_exactly(sock, 4) == b"held"  # well within the deadline, not after 60 s


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_bandwidth_limits_throughput(proxy: Proxy, stream: str) -> None:
    rate_kb_per_s, size = 200, 60_000  # 0.3 s on the wire at 200 KB/s
    proxy.add_toxic(type="bandwidth", stream=stream, attributes={"rate": rate_kb_per_s})
    with connect_proxy(proxy) as sock:
        payload = random.Random(1).randbytes(size)
        start = time.monotonic()
        sock.sendall(payload)
        assert recv_exactly(sock, size) == payload
        elapsed_s = time.monotonic() - start
    assert elapsed_s >= size / (rate_kb_per_s * 1000) - SLACK_S


def test_slow_close_delays_the_close(proxy: Proxy) -> None:
    proxy.add_toxic(type="slow_close", attributes={"delay": 300})
    with connect_proxy(proxy) as sock:
        sock.sendall(b"bye")
        start = time.monotonic()
        sock.shutdown(socket.SHUT_WR)  # the echo server then closes; that close is delayed
        assert expect_closed(sock) == b"bye"
        assert time.monotonic() - start >= 0.300 - SLACK_S


def test_timeout_stalls_then_closes(proxy: Proxy) -> None:
    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 300})
    with connect_proxy(proxy) as sock:
        start = time.monotonic()
        sock.sendall(b"lost")
        assert expect_closed(sock) == b""  # nothing got through, then a close
        assert time.monotonic() - start >= 0.300 - SLACK_S


def test_timeout_zero_holds_until_removed_then_closes(proxy: Proxy) -> None:
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    with connect_proxy(proxy) as sock:
        sock.sendall(b"x")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # held, not closed
        sock.settimeout(5)
        proxy.destroy_toxic("timeout_downstream")
        assert expect_closed(sock) == b""  # Toxiproxy closes the connection on removal


def test_reset_peer_resets(proxy: Proxy) -> None:
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 200})
    with connect_proxy(proxy) as sock:
        start = time.monotonic()
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            recv_until_eof(sock)
        assert time.monotonic() - start >= 0.200 - SLACK_S


def test_reset_peer_upstream_resets_immediately(proxy: Proxy) -> None:
    proxy.add_toxic(type="reset_peer", stream="upstream")
    with connect_proxy(proxy) as sock:
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            recv_until_eof(sock)


def test_slicer_delivers_data_in_many_reads(proxy: Proxy) -> None:
    proxy.add_toxic(type="slicer",
                    attributes={"average_size": 10, "size_variation": 4, "delay": 3000})
    payload = bytes(range(256)) * 2
    with connect_proxy(proxy) as sock:
        sock.sendall(payload)
        reads = []
        while sum(map(len, reads)) < len(payload):  # each pass reads >= 1 byte or fails
            chunk = sock.recv(65536)
            assert chunk, "closed early"
            reads.append(chunk)
    assert b"".join(reads) == payload
    assert len(reads) >= 5
    assert max(map(len, reads)) < len(payload)


def test_limit_data_closes_after_n_bytes(proxy: Proxy) -> None:
    proxy.add_toxic(type="limit_data", attributes={"bytes": 100})
    payload = bytes(300)
    with connect_proxy(proxy) as sock:
        sock.sendall(payload)
        assert expect_closed(sock) == payload[:100]


def test_limit_data_counts_across_reads(proxy: Proxy) -> None:
    proxy.add_toxic(type="limit_data", attributes={"bytes": 10})
    with connect_proxy(proxy) as sock:
        sock.sendall(b"123456")
        assert recv_exactly(sock, 6) == b"123456"
        sock.sendall(b"789abc")
        assert expect_closed(sock) == b"789a"


def test_updating_a_toxic_keeps_its_per_connection_state(
    proxy: Proxy, server_thread: ServerThread
) -> None:
    proxy.add_toxic(type="limit_data", attributes={"bytes": 10})
    with connect_proxy(proxy) as sock:
        sock.sendall(b"123456")
        assert recv_exactly(sock, 6) == b"123456"
        status, _ = http(server_thread.url, "POST", "/proxies/echo/toxics/limit_data_downstream",
                         {"attributes": {"bytes": 8}})
        assert status == 200
        sock.sendall(b"789abc")
        assert expect_closed(sock) == b"78"  # 6 already counted against the new limit of 8


def test_chained_toxics_compose(proxy: Proxy) -> None:
    proxy.add_toxic(type="latency", name="lag", attributes={"latency": 100})
    proxy.add_toxic(type="slicer", attributes={"average_size": 4, "size_variation": 1})
    proxy.add_toxic(type="latency", name="lag_up", stream="upstream", attributes={"latency": 100})
    with connect_proxy(proxy) as sock:
        assert round_trip_s(sock, b"0123456789abcdef") >= 0.200 - SLACK_S


@pytest.mark.parametrize(
    ("toxic", "attributes"),
    [
        ("timeout", {"timeout": 0}),
        ("reset_peer", {"timeout": 0}),
        ("limit_data", {"bytes": 1}),
    ],
)
def test_toxicity_zero_never_applies(proxy: Proxy, toxic: str, attributes: dict[str, int]) -> None:
    proxy.add_toxic(type=toxic, toxicity=0.0, attributes=attributes)
    for _ in range(10):
        with connect_proxy(proxy) as sock:
            sock.sendall(b"fine")
            assert recv_exactly(sock, 4) == b"fine"


def test_toxicity_is_rolled_per_connection_from_the_seeded_rng(echo: EchoServer) -> None:
    def affected_pattern(seed: int) -> list[bool]:
        with ServerThread(port=0, rng=random.Random(seed)) as url:
            port = int(url.rsplit(":", 1)[1])
            client = Toxiproxy()
            client.update_api_consumer("127.0.0.1", port)
            proxy = client.create(upstream=echo.address, name="coin")
            proxy.add_toxic(type="limit_data", toxicity=0.5, attributes={"bytes": 1})
            pattern = []
            for _ in range(30):
                with connect_proxy(proxy) as sock:
                    sock.sendall(b"ab")
                    pattern.append(recv_exactly(sock, 2) == b"a")
            return pattern

    first = affected_pattern(5)
    assert 0 < sum(first) < len(first)
    assert affected_pattern(5) == first


def test_connection_closed_by_client_is_cleaned_up(
    proxy: Proxy, server_thread: ServerThread
) -> None:
    for _ in range(5):
        with connect_proxy(proxy) as sock:
            round_trip_s(sock)
    live = server_thread.server.proxies.get("echo")
    deadline = time.monotonic() + 5
    while live.connection_count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.connection_count == 0


def test_a_stalled_link_pushes_back_instead_of_buffering(
    proxy: Proxy, server_thread: ServerThread
) -> None:
    from chaos.toxiproxy.link import BUFFER_LIMIT_BYTES, READ_SIZE_BYTES

    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
    block, cap_bytes = bytes(256 * 1024), 256 * 1024 * 1024
    with connect_proxy(proxy) as sock:
        sock.setblocking(False)
        sent = 0
        # Send until the socket stays unwritable for 0.5 s. Without push-back the proxy keeps
        # reading and this runs on to the cap; with it, kernel buffers fill and stay full.
        while sent < cap_bytes and select.select([], [sock], [], 0.5)[1]:
            try:
                sent += sock.send(block)
            except BlockingIOError:
                pass
        assert sent < cap_bytes
        live = server_thread.server.proxies.get("echo")
        assert BUFFER_LIMIT_BYTES <= live.buffered_bytes <= BUFFER_LIMIT_BYTES + READ_SIZE_BYTES
