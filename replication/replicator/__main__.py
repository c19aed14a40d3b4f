"""`python -m replication.replicator --data-dir DATA_DIR --region REGION`: the replicator process.

Reads DATA_DIR/topology.json and the link plan (DATA_DIR/links.json, when chaos is on), starts
shipping what its region's catalog says, and serves `Replicator` on the region's replicator_port.
It binds once it has tried to fetch the catalog (so a replicator reported healthy ships at once),
and exits cleanly on SIGTERM/SIGINT after saving its checkpoints.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import grpc.aio

from dynalab.links import load_plan
from dynalab.topology import Topology, TopologyError, topology_from_dict
from proto import replicator_pb2_grpc
from replication.replicator.peer import SERVER_OPTIONS
from replication.replicator.process import Replicator

log = logging.getLogger("replicator")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s replicator-{args.region} "
                        "%(levelname)s %(name)s: %(message)s")
    try:
        topology = topology_from_dict(json.loads((args.data_dir / "topology.json").read_text()))
        spec = topology.region(args.region)
        if spec.replicator_port == 0:
            raise ValueError(f"region {args.region} has no replicator_port in topology.json")
    except (OSError, ValueError, KeyError, TopologyError) as exc:
        print(f"replicator: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.run(_serve(topology, args.region, args.data_dir))
    except ImportError:
        asyncio.run(_serve(topology, args.region, args.data_dir))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m replication.replicator", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def _serve(topology: Topology, region: str, data_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    spec = topology.region(region)
    replicator = Replicator(topology, region, data_dir, load_plan(data_dir))
    server = grpc.aio.server(options=SERVER_OPTIONS)
    replicator_pb2_grpc.add_ReplicatorServicer_to_server(replicator.service, server)
    try:
        await replicator.start()
        server.add_insecure_port(f"{spec.replicator_host}:{spec.replicator_port}")
        await server.start()
        log.info("replicating %s on %s:%d", region, spec.replicator_host, spec.replicator_port)
        await stop.wait()
        log.info("SIGTERM: shutting down")
    finally:
        await server.stop(grace=1.0)
        await replicator.stop()


if __name__ == "__main__":
    sys.exit(main())
