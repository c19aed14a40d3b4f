"""The DynamoDB operations the router serves, by name (the part of X-Amz-Target after the dot)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from router.batch import batch_get_item, batch_write_item
from router.control import create_table, delete_table, describe_table, list_tables, update_table
from router.items import delete_item, get_item, put_item, update_item
from router.scans import query, scan

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["OPERATIONS"]

OPERATIONS: dict[str, Callable[[Router, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "CreateTable": create_table,
    "DescribeTable": describe_table,
    "ListTables": list_tables,
    "DeleteTable": delete_table,
    "UpdateTable": update_table,
    "PutItem": put_item,
    "GetItem": get_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "Query": query,
    "Scan": scan,
    "BatchGetItem": batch_get_item,
    "BatchWriteItem": batch_write_item,
}
