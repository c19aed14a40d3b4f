"""`dynalab toxiproxy [--host H] [--port P] [--seed N] [--config FILE]`: run the server in the
foreground until SIGINT or SIGTERM. `--config` populates proxies from a JSON file, like
`toxiproxy-server -config`. Prints the API URL once listening (useful with --port 0)."""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys

from chaos.toxiproxy.errors import ApiError
from chaos.toxiproxy.server import DEFAULT_HOST, DEFAULT_PORT, ToxiproxyServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynalab toxiproxy", description="dynalab's Toxiproxy-compatible server"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"API address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="API port (0 = any free)")
    parser.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    parser.add_argument("--config", default=None, help="JSON file of proxies to populate")
    return parser


async def _serve(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    server = ToxiproxyServer(args.host, args.port, rng=rng)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        if args.config is not None:
            with open(args.config, encoding="utf-8") as file:
                await server.proxies.populate(json.load(file))
        print(f"toxiproxy API listening on {server.url}", flush=True)
        await stop.wait()
    except ApiError as error:
        print(f"dynalab toxiproxy: {args.config}: {error.message}", file=sys.stderr)
        return 1
    finally:
        await server.stop()
    return 0


def main(argv: list[str]) -> int:
    """argv[0] is the command name ("toxiproxy"), as `dynalab` passes it."""
    args = _parser().parse_args(argv[1:])
    try:
        return asyncio.run(_serve(args))
    except OSError as error:
        print(f"dynalab toxiproxy: {error}", file=sys.stderr)
        return 1
