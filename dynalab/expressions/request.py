"""Compiling every expression-related parameter of one request, expression or legacy.

`compile_request("UpdateItem", body)` checks that the request does not mix expression and legacy
parameters, compiles whichever it uses to trees, and checks for unused #names / :values, all with
DynamoDB's messages. This is the router's one entry point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from dynalab import values as avs
from dynalab.errors import ValidationException
from dynalab.expressions import legacy
from dynalab.expressions.context import ExpressionContext
from dynalab.expressions.tree import Condition, KeyCondition, Projection, Update

__all__ = ["CompiledRequest", "compile_request", "check_parameters", "PARAMETERS"]

# Per operation: (expression parameters, legacy parameters), in the order DynamoDB lists them.
PARAMETERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "GetItem": (("ProjectionExpression",), ("AttributesToGet",)),
    "BatchGetItem": (("ProjectionExpression",), ("AttributesToGet",)),
    "PutItem": (("ConditionExpression",), ("Expected", "ConditionalOperator")),
    "DeleteItem": (("ConditionExpression",), ("Expected", "ConditionalOperator")),
    "UpdateItem": (("UpdateExpression", "ConditionExpression"),
                   ("AttributeUpdates", "Expected", "ConditionalOperator")),
    "ConditionCheck": (("ConditionExpression",), ()),
    "Query": (("ProjectionExpression", "FilterExpression", "KeyConditionExpression"),
              ("AttributesToGet", "QueryFilter", "ConditionalOperator", "KeyConditions")),
    "Scan": (("ProjectionExpression", "FilterExpression"),
             ("AttributesToGet", "ScanFilter", "ConditionalOperator")),
}


@dataclass(frozen=True)
class CompiledRequest:
    """What a request asks for, compiled: each part None when the request has none."""

    condition: Condition | None = None
    update: Update | None = None
    key_condition: KeyCondition | None = None
    filter: Condition | None = None
    projection: Projection | None = None


# Every parameter compile_request reads, per operation. A request with none of them (most
# PutItem and DeleteItem requests) has nothing to compile and nothing to get wrong.
_READS = {operation: (*expression, *legacy_names, "ExpressionAttributeNames",
                      "ExpressionAttributeValues")
          for operation, (expression, legacy_names) in PARAMETERS.items()}
_NOTHING = CompiledRequest()


def check_parameters(operation: str, request: Mapping[str, Any]) -> None:
    """DynamoDB's errors for mixing expression and legacy parameters, and for
    ExpressionAttributeNames / Values without an expression that could use them."""
    expression_names, legacy_names = PARAMETERS[operation]
    used = [name for name in expression_names if request.get(name) is not None]
    if used:
        mixed = [name for name in legacy_names if request.get(name) is not None]
        # KeyConditions may go with a FilterExpression: only KeyConditionExpression excludes it.
        if "KeyConditions" in mixed and request.get("KeyConditionExpression") is None:
            mixed.remove("KeyConditions")
        if mixed:
            raise ValidationException(
                "Can not use both expression and non-expression parameters in the same request: "
                f"Non-expression parameters: {{{', '.join(mixed)}}} "
                f"Expression parameters: {{{', '.join(used)}}}")
    if request.get("ExpressionAttributeNames") is not None and not used:
        raise ValidationException("ExpressionAttributeNames can only be specified when using "
                                  "expressions")
    valued = [name for name in expression_names if name != "ProjectionExpression"]
    if (request.get("ExpressionAttributeValues") is not None and valued
            and all(request.get(name) is None for name in valued)):
        verb = "are" if len(valued) > 1 else "is"
        raise ValidationException("ExpressionAttributeValues can only be specified when using "
                                  f"expressions: {' and '.join(valued)} {verb} null")


def compile_request(operation: str, request: Mapping[str, Any],
                    key_schema: avs.KeySchema | None = None) -> CompiledRequest:
    """Compile the expression-related parameters of a request of `operation` (GetItem, PutItem,
    UpdateItem, DeleteItem, ConditionCheck, Query, Scan, BatchGetItem's per-table part).

    Query needs `key_schema` (the table's or the queried index's). Raises ClientError subclasses
    with DynamoDB's messages.
    """
    if operation != "Query" and all(request.get(name) is None for name in _READS[operation]):
        return _NOTHING  # what the full path below gives for such a request (tested)
    check_parameters(operation, request)
    context = ExpressionContext(request.get("ExpressionAttributeNames"),
                                request.get("ExpressionAttributeValues"))
    operator = request.get("ConditionalOperator")
    update = _update(context, request)
    condition = _condition(operation, context, request, operator)
    key_condition = _key_condition(operation, context, request, key_schema)
    filter_ = _filter(operation, context, request, operator)
    projection = _projection(context, request)
    context.check_unused()
    return CompiledRequest(condition, update, key_condition, filter_, projection)


def _update(context: ExpressionContext, request: Mapping[str, Any]) -> Update | None:
    if request.get("UpdateExpression") is not None:
        return context.update(request["UpdateExpression"])
    if request.get("AttributeUpdates") is not None:
        return legacy.compile_attribute_updates(request["AttributeUpdates"])
    return None


def _condition(operation: str, context: ExpressionContext, request: Mapping[str, Any],
               operator: Any) -> Condition | None:
    if request.get("ConditionExpression") is not None:
        return context.condition(request["ConditionExpression"])
    if "Expected" in PARAMETERS[operation][1]:
        return legacy.compile_expected(request.get("Expected"), operator)
    return None


def _key_condition(operation: str, context: ExpressionContext, request: Mapping[str, Any],
                   key_schema: avs.KeySchema | None) -> KeyCondition | None:
    if operation != "Query":
        return None
    if key_schema is None:
        raise TypeError("compile_request: a Query needs the key schema")
    if request.get("KeyConditionExpression") is not None:
        return context.key_condition(request["KeyConditionExpression"], key_schema)
    if request.get("KeyConditions") is not None:
        return legacy.compile_key_conditions(request["KeyConditions"], key_schema)
    raise ValidationException("Either the KeyConditions or KeyConditionExpression parameter must "
                              "be specified in the request.")


def _filter(operation: str, context: ExpressionContext, request: Mapping[str, Any],
            operator: Any) -> Condition | None:
    if request.get("FilterExpression") is not None:
        return context.condition(request["FilterExpression"], "FilterExpression")
    legacy_name = {"Query": "QueryFilter", "Scan": "ScanFilter"}.get(operation)
    if legacy_name is None:
        return None
    return legacy.compile_filter(request.get(legacy_name), operator)


def _projection(context: ExpressionContext, request: Mapping[str, Any]) -> Projection | None:
    if request.get("ProjectionExpression") is not None:
        return context.projection(request["ProjectionExpression"])
    if request.get("AttributesToGet") is not None:
        return legacy.compile_attributes_to_get(request["AttributesToGet"])
    return None
