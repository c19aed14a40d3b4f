"""The bench table: find it, or create it (PAY_PER_REQUEST, string keys pk/sk) and wait for it."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from chaos.workload.bodies import KeySchema, create_table_body, key_schema_of
from chaos.workload.client import DynamoClient, Reply

__all__ = ["TableInfo", "TableError", "ensure_table"]

_ACTIVE_WAIT_S = 120.0  # real DynamoDB takes seconds to tens of seconds to create a table
_FIRST_POLL_S = 0.05  # local endpoints are ACTIVE at once; back off for the slow ones
_MAX_POLL_S = 1.0


class TableError(RuntimeError):
    pass


@dataclass(frozen=True)
class TableInfo:
    schema: KeySchema
    created: bool


def _fail(what: str, reply: Reply) -> TableError:
    detail = reply.body[:300].decode(errors="replace")
    return TableError(f"{what} failed: {reply.error} (HTTP {reply.status}) {detail}".rstrip())


async def _describe(client: DynamoClient, table: str) -> Reply:
    return await client.call_json("DescribeTable", {"TableName": table})


async def _wait_active(client: DynamoClient, table: str) -> Reply:
    deadline = time.monotonic() + _ACTIVE_WAIT_S
    pause_s = _FIRST_POLL_S
    for _ in range(int(_ACTIVE_WAIT_S / _FIRST_POLL_S)):
        reply = await _describe(client, table)
        if reply.ok and reply.json()["Table"].get("TableStatus", "ACTIVE") == "ACTIVE":
            return reply
        if not reply.ok and reply.error != "ResourceNotFoundException":
            raise _fail("DescribeTable", reply)
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(pause_s)
        pause_s = min(2 * pause_s, _MAX_POLL_S)
    raise TableError(f"table {table!r} did not become ACTIVE within {_ACTIVE_WAIT_S:.0f} s")


async def ensure_table(client: DynamoClient, table: str, create: bool,
                       schema: KeySchema = KeySchema()) -> TableInfo:
    """The table's key schema; creates the table with `schema` if it is missing and `create`."""
    reply = await _describe(client, table)
    created = False
    if not reply.ok:
        if reply.error != "ResourceNotFoundException" or not create:
            raise _fail(f"DescribeTable {table!r}", reply)
        created_reply = await client.call("CreateTable", create_table_body(table, schema))
        # Another bench process may have created it at the same moment: that is fine.
        if not created_reply.ok and created_reply.error != "ResourceInUseException":
            raise _fail(f"CreateTable {table!r}", created_reply)
        created = created_reply.ok
    reply = await _wait_active(client, table)
    try:
        return TableInfo(key_schema_of(reply.json()), created)
    except (KeyError, ValueError) as exc:
        raise TableError(f"table {table!r} cannot be used by the bench: {exc}") from exc
