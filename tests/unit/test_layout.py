"""dynalab.layout: a Query's key range holds exactly the items its key condition selects, and a
partition's token ranges hold exactly the items whose token falls in it."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dynalab import layout
from dynalab.expressions import KeyCondition, matches_key_condition
from dynalab.keys import partition_token
from dynalab.values import KeySchema

TABLE = "00000000000000ab"
SCHEMA = KeySchema("pk", "S", "sk", "N")
S_SCHEMA = KeySchema("pk", "S", "sk", "S")

numbers = st.decimals(min_value=-10**6, max_value=10**6, allow_nan=False, places=3).map(
    lambda d: {"N": format(d.normalize(), "f")})
texts = st.text(alphabet="ab\x00\xff", max_size=4)
ops = st.sampled_from(["EQ", "LT", "LE", "GT", "GE", "BETWEEN"])


def key(pk: str, sk: dict) -> dict:
    return {"pk": {"S": pk}, "sk": sk}


def canonical(n: dict) -> dict:
    from dynalab.numbers import canonical as c
    return {"N": c(n["N"])}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["x", "y"]), ops, st.lists(numbers, min_size=2, max_size=2),
       st.lists(st.tuples(st.sampled_from(["x", "y"]), numbers), max_size=20))
def test_query_range_matches_condition_for_numbers(pk, op, bounds, stored) -> None:
    bounds = sorted((canonical(b) for b in bounds), key=lambda v: float(v["N"]))
    values = tuple(bounds) if op == "BETWEEN" else (bounds[0],)
    condition = KeyCondition("pk", {"S": pk}, "sk", op, values)
    rng = layout.query_range(TABLE, condition, SCHEMA)
    for other_pk, sk in stored:
        item = key(other_pk, canonical(sk))
        assert (layout.item_key(TABLE, item, SCHEMA) in rng) == matches_key_condition(condition, item)


@settings(max_examples=300, deadline=None)
@given(texts, texts, st.lists(texts, max_size=20))
def test_begins_with_range_matches_for_strings(pk, prefix, stored) -> None:
    condition = KeyCondition("pk", {"S": pk}, "sk", "BEGINS_WITH", ({"S": prefix},))
    rng = layout.query_range(TABLE, condition, S_SCHEMA)
    for sk in stored:
        for owner in (pk, pk + "a"):
            item = {"pk": {"S": owner}, "sk": {"S": sk}}
            inside = layout.item_key(TABLE, item, S_SCHEMA) in rng
            assert inside == (owner == pk and sk.startswith(prefix))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.lists(texts, max_size=20))
def test_token_ranges_hold_exactly_the_partitions_items(start, end, pks) -> None:
    ranges = layout.token_ranges(TABLE, start, end)
    for pk in pks:
        item = key(pk, {"N": "1"})
        token = partition_token(item["pk"])
        owned = start < token <= end if start < end else (token > start or token <= end)
        stored = layout.item_key(TABLE, item, SCHEMA)
        assert any(stored in r for r in ranges) == owned
        assert layout.decode_item_key(stored, SCHEMA) == item


def test_tables_do_not_overlap() -> None:
    other = "00000000000000ac"
    item = key("x", {"N": "1"})
    whole = layout.token_ranges(TABLE, 2**64 - 1, 2**64 - 1)  # the whole ring
    assert any(layout.item_key(TABLE, item, SCHEMA) in r for r in whole)
    assert not any(layout.item_key(other, item, SCHEMA) in r for r in whole)
