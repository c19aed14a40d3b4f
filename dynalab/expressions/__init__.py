"""DynamoDB's expression language: compile once, evaluate anywhere.

Router (validating a request)::

    compiled = compile_request("UpdateItem", body)            # or "Query", key_schema=schema
    compiled.condition, compiled.update, compiled.projection  # immutable trees, or None

Storage node (applying it)::

    if compiled.condition is not None and not evaluate(compiled.condition, old_item):
        raise ConditionalCheckFailedException()
    new_item = apply_update(compiled.update, old_item)
    visible = project(new_item, compiled.projection.paths)

Expressions can also be compiled one by one through an `ExpressionContext`. Legacy parameters
(Expected, AttributeUpdates, KeyConditions, QueryFilter/ScanFilter, AttributesToGet) compile to
the same trees. Every error a client can cause is a dynalab.errors.ClientError subclass
(ValidationException nearly always) carrying DynamoDB's message.
"""
from dynalab.expressions.context import MAX_EXPRESSION_BYTES, ExpressionContext
from dynalab.expressions.evaluate import evaluate, get_path, matches_key_condition, resolve
from dynalab.expressions.legacy import (compile_attribute_updates, compile_attributes_to_get,
                                        compile_expected, compile_filter,
                                        compile_key_conditions)
from dynalab.expressions.printer import to_text
from dynalab.expressions.project import project
from dynalab.expressions.request import (CompiledRequest, check_parameters, compile_request)
from dynalab.expressions.reserved import RESERVED_WORDS, is_reserved
from dynalab.expressions.tree import (AddAction, And, Arith, AttributeExists,
                                      AttributeNotExists, AttributeType, BeginsWith, Between,
                                      Compare, Condition, Contains, DeleteAction, IfNotExists, In,
                                      KeyCondition, ListAppend, Not, Operand, Or, Path,
                                      Projection, RemoveAction, SetAction, Size, Update,
                                      UpdateOperand, Value)
from dynalab.expressions.update import apply_update, check_key_untouched

__all__ = [
    # compiling
    "ExpressionContext", "compile_request", "CompiledRequest", "check_parameters",
    "compile_expected", "compile_filter", "compile_key_conditions", "compile_attribute_updates",
    "compile_attributes_to_get", "MAX_EXPRESSION_BYTES", "RESERVED_WORDS", "is_reserved",
    # evaluating
    "evaluate", "apply_update", "check_key_untouched", "project", "matches_key_condition",
    "get_path", "resolve",
    "to_text",
    # trees
    "Path", "Value", "Size", "IfNotExists", "ListAppend", "Arith", "Operand", "UpdateOperand",
    "Compare", "Between", "In", "And", "Or", "Not", "AttributeExists", "AttributeNotExists",
    "AttributeType", "BeginsWith", "Contains", "Condition", "SetAction", "RemoveAction",
    "AddAction", "DeleteAction", "Update", "Projection", "KeyCondition",
]
