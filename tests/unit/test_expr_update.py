"""Applying updates: SET / REMOVE / ADD / DELETE semantics and DynamoDB's errors."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from dynalab.errors import ValidationException
from dynalab.expressions import (ExpressionContext, apply_update, check_key_untouched,
                                 compile_attribute_updates, project)
from dynalab.values import KeySchema

ITEM: dict[str, Any] = {
    "pk": {"S": "k"},
    "n": {"N": "10"},
    "s": {"S": "text"},
    "l": {"L": [{"S": "a"}, {"S": "b"}, {"S": "c"}, {"S": "d"}]},
    "m": {"M": {"x": {"N": "1"}, "sub_list": {"L": [{"M": {"y": {"S": "v"}}}]}}},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
}
VALUES: dict[str, Any] = {
    ":one": {"N": "1"}, ":big": {"N": "1E+125"}, ":s": {"S": "new"},
    ":l": {"L": [{"S": "z"}]}, ":ss": {"SS": ["b", "c"]}, ":ns": {"NS": ["2.0", "3"]},
    ":bs": {"BS": ["AQ=="]}, ":ss_all": {"SS": ["a", "b"]}, ":m": {"M": {"q": {"N": "1"}}},
    ":minus": {"N": "-2.5"},
}


def run(text: str, item: dict[str, Any] | None = None) -> dict[str, Any]:
    item = copy.deepcopy(ITEM) if item is None else item
    before = copy.deepcopy(item)
    tree = ExpressionContext(None, VALUES).update(text)
    result = apply_update(tree, item)
    assert item == before, "apply_update must not mutate its input"
    return result


def failure(text: str, item: dict[str, Any] | None = None) -> str:
    with pytest.raises(ValidationException) as caught:
        run(text, item)
    return caught.value.message


def strings(av: dict[str, Any]) -> list[str]:
    return [element["S"] for element in av["L"]]


# -- SET -----------------------------------------------------------------------------------------

def test_set_values_and_arithmetic() -> None:
    result = run("SET s = :s, n = n + :one, x = n - :minus, m.x = m.x + :one")
    assert result["s"] == {"S": "new"}
    assert result["n"] == {"N": "11"}
    assert result["x"] == {"N": "12.5"}
    assert result["m"]["M"]["x"] == {"N": "2"}


def test_set_operands_read_the_item_before_the_update() -> None:
    result = run("SET n = :one, dup = n")
    assert result["dup"] == {"N": "10"} and result["n"] == {"N": "1"}


def test_if_not_exists_and_list_append() -> None:
    result = run("SET n = if_not_exists(n, :one), fresh = if_not_exists(fresh, :one), "
                 "l = list_append(l, :l), front = list_append(:l, :l)")
    assert result["n"] == {"N": "10"} and result["fresh"] == {"N": "1"}
    assert strings(result["l"]) == ["a", "b", "c", "d", "z"]
    assert strings(result["front"]) == ["z", "z"]


def test_set_list_elements_in_range_and_past_the_end() -> None:
    result = run("SET l[1] = :s, l[10] = :s, l[7] = :one")
    assert result["l"]["L"] == [{"S": "a"}, {"S": "new"}, {"S": "c"}, {"S": "d"},
                                {"N": "1"}, {"S": "new"}]


def test_set_nested_path_inside_list_element() -> None:
    result = run("SET m.sub_list[0].y = :s, m.sub_list[0].w = :one")
    assert result["m"]["M"]["sub_list"]["L"][0] == {"M": {"y": {"S": "new"}, "w": {"N": "1"}}}
    assert ITEM["m"]["M"]["sub_list"]["L"][0] == {"M": {"y": {"S": "v"}}}


@pytest.mark.parametrize("text, message", [
    ("SET a = gone", "The provided expression refers to an attribute that does not exist in the "
                     "item"),
    ("SET a = gone + :one", "The provided expression refers to an attribute that does not exist "
                            "in the item"),
    ("SET a = list_append(gone, :l)", "The provided expression refers to an attribute that does "
                                      "not exist in the item"),
    ("SET a = if_not_exists(a, gone)", "The provided expression refers to an attribute that does "
                                       "not exist in the item"),
    ("SET a = s + :one", "An operand in the update expression has an incorrect data type"),
    ("SET a = list_append(s, :l)", "An operand in the update expression has an incorrect data "
                                   "type"),
    ("SET gone.x = :one", "The document path provided in the update expression is invalid for "
                          "update"),
    ("SET s.x = :one", "The document path provided in the update expression is invalid for "
                       "update"),
    ("SET gone[0] = :one", "The document path provided in the update expression is invalid for "
                           "update"),
    ("SET m[0] = :one", "The document path provided in the update expression is invalid for "
                        "update"),
    ("SET l.x = :one", "The document path provided in the update expression is invalid for "
                       "update"),
    ("SET l[9].x = :one", "The document path provided in the update expression is invalid for "
                          "update"),
    ("SET n = n + :big, x = :big + :big", "Number overflow. Attempting to store a number with "
                                          "magnitude larger than supported range"),
])
def test_set_errors(text: str, message: str) -> None:
    assert failure(text) == message


# -- REMOVE --------------------------------------------------------------------------------------

def test_remove_attributes_and_nested_members() -> None:
    result = run("REMOVE s, m.x, gone, m.nope")
    assert "s" not in result and "x" not in result["m"]["M"] and "sub_list" in result["m"]["M"]


def test_remove_list_indexes_refers_to_the_original_positions() -> None:
    result = run("REMOVE l[0], l[2], l[9]")
    assert strings(result["l"]) == ["b", "d"]


def test_remove_and_set_in_one_list_use_original_positions() -> None:
    result = run("REMOVE l[0] SET l[2] = :s, l[8] = :s")
    assert strings(result["l"]) == ["b", "new", "d", "new"]


def test_remove_below_a_missing_parent_is_invalid() -> None:
    assert failure("REMOVE gone.x") == ("The document path provided in the update expression is "
                                        "invalid for update")


# -- ADD -----------------------------------------------------------------------------------------

def test_add_numbers_and_sets() -> None:
    result = run("ADD n :one, tally :minus, ss :ss, ns :ns, fresh :bs")
    assert result["n"] == {"N": "11"}
    assert result["tally"] == {"N": "-2.5"}  # a missing number starts from 0
    assert sorted(result["ss"]["SS"]) == ["a", "b", "c"]
    assert sorted(result["ns"]["NS"]) == ["1", "2", "3"]  # 2.0 is already there as 2
    assert result["fresh"] == {"BS": ["AQ=="]}


@pytest.mark.parametrize("text", ["ADD s :one", "ADD ss :ns", "ADD n :ss", "ADD l :one"])
def test_add_type_mismatch(text: str) -> None:
    assert failure(text) == "An operand in the update expression has an incorrect data type"


def test_add_into_a_missing_parent_is_invalid() -> None:
    assert failure("ADD gone.tally :one") == ("The document path provided in the update "
                                              "expression is invalid for update")


# -- DELETE --------------------------------------------------------------------------------------

def test_delete_set_members_and_drop_an_emptied_set() -> None:
    result = run("DELETE ss :ss, ns :ns")
    assert result["ss"] == {"SS": ["a"]} and result["ns"] == {"NS": ["1"]}
    result = run("DELETE ss :ss_all, gone :ss")
    assert "ss" not in result and "gone" not in result


@pytest.mark.parametrize("text", ["DELETE ss :ns", "DELETE n :ss", "DELETE s :ss"])
def test_delete_type_mismatch(text: str) -> None:
    assert failure(text) == "An operand in the update expression has an incorrect data type"


# -- whole updates -------------------------------------------------------------------------------

def test_update_of_a_missing_item_starts_empty() -> None:
    tree = ExpressionContext(None, VALUES).update("SET a = :s ADD c :one")
    assert apply_update(tree, None) == {"a": {"S": "new"}, "c": {"N": "1"}}


def test_results_do_not_share_values_with_the_cached_tree() -> None:
    tree = ExpressionContext(None, VALUES).update("SET m = :m")
    first = apply_update(tree, {})
    first["m"]["M"]["q"]["N"] = "999"
    assert apply_update(tree, {})["m"] == {"M": {"q": {"N": "1"}}}


def test_legacy_attribute_updates() -> None:
    update = compile_attribute_updates({
        "s": {"Action": "PUT", "Value": {"S": "put"}},
        "n": {"Action": "ADD", "Value": {"N": "5"}},
        "l": {"Action": "ADD", "Value": {"L": [{"S": "e"}]}},
        "ss": {"Action": "DELETE", "Value": {"SS": ["a"]}},
        "m": {"Action": "DELETE"},
        "fresh": {"Value": {"N": "1"}},
    })
    result = apply_update(update, copy.deepcopy(ITEM))
    assert result["s"] == {"S": "put"} and result["n"] == {"N": "15"}
    assert strings(result["l"]) == ["a", "b", "c", "d", "e"]
    assert result["ss"] == {"SS": ["b"]} and "m" not in result and result["fresh"] == {"N": "1"}
    with pytest.raises(ValidationException) as caught:
        apply_update(compile_attribute_updates({"s": {"Action": "ADD", "Value": {"N": "1"}}}),
                     ITEM)
    assert caught.value.message == "Type mismatch for attribute to update"


@pytest.mark.parametrize("updates, message", [
    ({"a": {"Action": "PUT"}}, "One or more parameter values were invalid: Only DELETE action is "
                               "allowed when no attribute value is specified"),
    ({"a": {"Action": "DELETE", "Value": {"S": "x"}}}, "One or more parameter values were "
                                                       "invalid: DELETE action with value is not "
                                                       "supported for the type S"),
    ({"a": {"Action": "ADD", "Value": {"S": "x"}}}, "One or more parameter values were invalid: "
                                                    "ADD action is not supported for the type S"),
])
def test_legacy_attribute_update_errors(updates: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationException) as caught:
        compile_attribute_updates(updates)
    assert caught.value.message == message


def test_updates_may_not_touch_key_attributes() -> None:
    schema = KeySchema("pk", "S", "sk", "N")
    check_key_untouched(ExpressionContext(None, VALUES).update("SET a = :s REMOVE b"), schema)
    for text in ("SET pk = :s", "REMOVE sk", "SET pk.x = :s"):
        with pytest.raises(ValidationException) as caught:
            check_key_untouched(ExpressionContext(None, VALUES).update(text), schema)
        assert caught.value.message.startswith(
            "One or more parameter values were invalid: Cannot update attribute ")
        assert caught.value.message.endswith(". This attribute is part of the key")
    legacy = compile_attribute_updates({"pk": {"Action": "PUT", "Value": {"S": "x"}}})
    with pytest.raises(ValidationException):
        check_key_untouched(legacy, schema)


def test_target_paths_project_the_updated_attributes() -> None:
    tree = ExpressionContext(None, VALUES).update("SET m.x = :one, n = :one REMOVE s")
    new = apply_update(tree, copy.deepcopy(ITEM))
    assert project(new, tree.target_paths) == {"m": {"M": {"x": {"N": "1"}}}, "n": {"N": "1"}}
    assert project(ITEM, tree.target_paths) == {"m": {"M": {"x": {"N": "1"}}}, "n": {"N": "10"},
                                                "s": {"S": "text"}}
