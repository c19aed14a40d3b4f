"""`python -m node --data-dir DATA_DIR --id NODE_ID`: run one storage node (docs/cluster.md).

Reads DATA_DIR/topology.json, keeps its RocksDB in DATA_DIR/nodes/NODE_ID/db, serves gRPC on
its grpc_port, logs to stdout, and exits cleanly on SIGTERM (or SIGINT). The stream retention
comes from DYNALAB_STREAM_RETENTION_S (seconds; default 24 h).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import orjson

from dynalab.topology import topology_from_dict
from node import streams
from node.server import NodeConfig, StorageNode

__all__ = ["main"]


def _args(argv: list[str] | None) -> argparse.Namespace:
    defaults = NodeConfig()
    p = argparse.ArgumentParser(prog="python -m node", description="dynalab storage node")
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--id", required=True, dest="node_id")
    p.add_argument("--tick-ms", type=int, default=defaults.tick_ms)
    p.add_argument("--election-ticks", type=int, default=defaults.election_ticks)
    p.add_argument("--compact-after-entries", type=int, default=defaults.compact_after_entries,
                   help="applied entries kept in a group's log before it is snapshotted")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    topology = topology_from_dict(orjson.loads((args.data_dir / "topology.json").read_bytes()))
    config = NodeConfig(tick_ms=args.tick_ms, election_ticks=args.election_ticks,
                        compact_after_entries=args.compact_after_entries,
                        stream_retention_s=streams.retention_s(os.environ))
    node = StorageNode(topology, args.node_id, args.data_dir, config)  # inside the loop
    try:
        await node.start()
        await stop.wait()
    finally:
        logging.getLogger("node").info("node %s stopping", node.spec.id)
        await node.stop()
        logging.getLogger("node").info("node %s stopped", node.spec.id)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(stream=sys.stdout, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop  # grpc.aio runs on it; it makes the per-request event-loop work cheaper
    except ImportError:  # not on Windows
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
