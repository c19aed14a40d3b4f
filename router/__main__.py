"""`python -m router --data-dir DATA_DIR --id ROUTER_ID`: the request-router process.

Reads DATA_DIR/topology.json, serves the DynamoDB endpoint of its RouterSpec on host:http_port,
and exits cleanly on SIGTERM (or SIGINT). It binds once the metadata group has answered a catalog
fetch (so a cluster reported healthy can take CreateTable at once), or after `--startup-wait-ms`
at the latest, so that a router is never held down by a metadata group that cannot elect.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
from pathlib import Path

from dynalab.links import LinkPlan, connect_address, load_plan
from dynalab.topology import RouterSpec, Topology, TopologyError, topology_from_dict
from router.app import Router
from router.nodes import GrpcTransport
from router.server import HttpServer

log = logging.getLogger("router")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format=f"%(asctime)s {args.id} %(levelname)s %(name)s: %(message)s")
    try:
        topology = topology_from_dict(json.loads((args.data_dir / "topology.json").read_text()))
        spec = _router_spec(topology, args.id)
        plan = load_plan(args.data_dir)
    except (OSError, ValueError, KeyError, TopologyError) as exc:
        print(f"router: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.run(_serve(topology, plan, spec, args.startup_wait_ms))
    except ImportError:
        asyncio.run(_serve(topology, plan, spec, args.startup_wait_ms))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--id", required=True, help="this router's id in the topology")
    parser.add_argument("--startup-wait-ms", type=int, default=30_000,
                        help="how long to wait for the metadata group before binding anyway")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _router_spec(topology: Topology, router_id: str) -> RouterSpec:
    for spec in topology.routers:
        if spec.id == router_id:
            if spec.http_port == 0:
                raise ValueError(f"router {router_id} has no http_port assigned in topology.json")
            return spec
    raise ValueError(f"no router {router_id!r} in topology.json")


async def _serve(topology: Topology, plan: LinkPlan | None, spec: RouterSpec,
                 startup_wait_ms: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    nodes = topology.region(spec.region).nodes
    # Through the chaos layer's proxy for (our AZ, node) when chaos is on (docs/cluster.md).
    transport = GrpcTransport({n.id: connect_address(topology, plan, spec.id, n.id) for n in nodes})
    router = Router(transport, topology, spec.region, spec.az)
    server = HttpServer(router)
    try:
        await router.start(wait_ms=startup_wait_ms, give_up=stop)
        if stop.is_set():
            return
        await server.start(spec.host, spec.http_port)
        # What is alive now lives as long as the process: keep the collector from walking it
        # again and again (it was ~2% of the router's CPU under load).
        gc.freeze()
        log.info("serving DynamoDB for %s on http://%s:%d", spec.region, spec.host, spec.http_port)
        await stop.wait()
        log.info("SIGTERM: shutting down")
    finally:
        await server.close()
        await router.stop()


if __name__ == "__main__":
    sys.exit(main())
