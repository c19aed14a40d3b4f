"""Chaos at `up`: the Toxiproxy server process, the link plan and the standing latencies.

When the topology has chaos enabled, `up`
  1. gives every proxy of the link plan (dynalab.links) a listen port, kept in ports.json like
     the processes' automatic ports, and writes DATA_DIR/links.json (processes read it to know
     where to connect) and DATA_DIR/toxiproxy.json (the proxies, in Toxiproxy's config format);
  2. starts the Toxiproxy server first: the real `toxiproxy-server` when it is on PATH, else
     dynalab's own (`python -m dynalab.cli toxiproxy`); both create the proxies from --config;
  3. counts the server healthy only once every proxy exists and the standing latencies of the
     topology (ChaosSpec) are set as latency toxics.
With chaos off, links.json is removed so processes connect directly.

Plain HTTP here (urllib): deploy/ depends on dynalab/ only, not on chaos/.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynalab.links import LinkPlan, baseline_toxics, plan_links, proxy_names, save_plan
from dynalab.topology import TOXIPROXY_ID, ChaosSpec, Topology

from dynalab.files import atomic_write_text
from deploy.ports import assign_ports
from deploy.supervisor import ProcessSpec, TcpCheck

__all__ = ["TOXIPROXY_CONFIG", "ToxiproxyReady", "chaos_specs", "prepare_links",
           "toxiproxy_argv"]

TOXIPROXY_CONFIG = "toxiproxy.json"
# "builtin" forces dynalab's own server even where the real one is installed (tests, debugging).
SERVER_ENV = "DYNALAB_TOXIPROXY"
_HTTP_TIMEOUT_S = 2.0


def prepare_links(topology: Topology, data_dir: Path) -> LinkPlan | None:
    """Allocate proxy ports and write links.json + toxiproxy.json; None (and no links.json) when
    chaos is off. `topology` must have its ports resolved."""
    data_dir = Path(data_dir)
    if not topology.chaos.enabled:
        save_plan(data_dir, None)
        return None
    names = proxy_names(topology)
    taken = {endpoint.port for endpoint in topology.endpoints().values()}
    host = topology.chaos.toxiproxy_host
    ports = assign_ports(data_dir, list(names), {name: host for name in names}, reserved=taken)
    plan = plan_links(topology, ports)
    save_plan(data_dir, plan)
    config = [{"name": p.name, "listen": p.listen, "upstream": p.upstream, "enabled": True}
              for p in plan.proxies]
    atomic_write_text(data_dir / TOXIPROXY_CONFIG, json.dumps(config, indent=2) + "\n",
                      durable=True)
    return plan


def toxiproxy_argv(chaos: ChaosSpec, config: Path) -> tuple[str, ...]:
    """The real server when it is on PATH (unless DYNALAB_TOXIPROXY=builtin), else ours."""
    real = shutil.which("toxiproxy-server")
    if real and os.environ.get(SERVER_ENV, "") != "builtin":
        return (real, "-host", chaos.toxiproxy_host, "-port", str(chaos.toxiproxy_api_port),
                "-config", str(config))
    return (sys.executable, "-m", "dynalab.cli", "toxiproxy", "--host", chaos.toxiproxy_host,
            "--port", str(chaos.toxiproxy_api_port), "--config", str(config))


def chaos_specs(topology: Topology, data_dir: Path) -> list[ProcessSpec]:
    """The Toxiproxy server's spec (to start before every other process), or [] if chaos is
    off. Writes the plan files as a side effect (prepare_links)."""
    plan = prepare_links(topology, data_dir)
    if plan is None:
        return []
    chaos = topology.chaos
    config = (Path(data_dir) / TOXIPROXY_CONFIG).resolve()
    health = ToxiproxyReady(chaos.toxiproxy_api_port, chaos.toxiproxy_host, plan=plan,
                            chaos=chaos)
    return [ProcessSpec(TOXIPROXY_ID, "toxiproxy", toxiproxy_argv(chaos, config), health=health,
                        ports={"api": chaos.toxiproxy_api_port})]


@dataclass(frozen=True)
class ToxiproxyReady(TcpCheck):
    """Healthy once the API answers, every planned proxy exists, and the standing latencies are
    set (setting them is idempotent, so calling this again is harmless). A TcpCheck subclass:
    the supervisor keeps host/port for `dynalab restart toxiproxy`, which then waits only for
    the API port; `dynalab chaos heal` puts the latencies back after such a restart."""

    plan: LinkPlan | None = field(default=None, compare=False)
    chaos: ChaosSpec | None = field(default=None, compare=False)

    def __call__(self) -> bool:
        if not super().__call__():
            return False
        url = f"http://{self.host}:{self.port}"
        present = _request(url, "GET", "/proxies")
        if self.plan is None or not isinstance(present, dict):
            return isinstance(present, dict)
        if any(p.name not in present for p in self.plan.proxies):
            return False  # the server is still populating from its --config
        for proxy, toxic in baseline_toxics(self.plan, self.chaos or ChaosSpec()):
            _ensure_toxic(url, proxy, toxic)
        return True


def _ensure_toxic(url: str, proxy: str, toxic: dict[str, Any]) -> None:
    base = f"/proxies/{urllib.parse.quote(proxy, safe='')}/toxics"
    try:
        _request(url, "POST", base, toxic)
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: it exists already; make sure it has our attributes
            raise
        _request(url, "POST", f"{base}/{urllib.parse.quote(toxic['name'], safe='')}", toxic)


def _request(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
        raw = response.read()
    return json.loads(raw) if raw else None
