"""Request bodies and headers are what botocore itself would send."""
from __future__ import annotations

import random
import re
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.model import OperationModel, ServiceModel
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

from chaos.workload.auth import SigV4Signer, StaticHeaders
from chaos.workload.bodies import (KeySchema, RequestBuilder, create_table_body, error_type,
                                   key_schema_of, version_of)
from chaos.workload.settings import BenchSettings, workload_named

AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/\s]+/\d{8}/[a-z0-9-]+/dynamodb/aws4_request, "
                  r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def dynamodb() -> ServiceModel:
    return botocore.session.get_session().get_service_model("dynamodb")


def _builder(schema: KeySchema = KeySchema(), per_key: int = 25,
             size: int = 1024) -> RequestBuilder:
    return RequestBuilder("bench", schema, size, per_key, True, random.Random(1))


def _bodies(builder: RequestBuilder) -> list[tuple[str, bytes]]:
    return [("GetItem", builder.get_item(1234)), ("PutItem", builder.put_item(1234)),
            ("UpdateItem", builder.update_item(1234)),
            ("UpdateItem", builder.conditional_update(1234, 7)),
            ("UpdateItem", builder.conditional_update(1234, None)),
            ("Query", builder.query(1234, 13))]


def _assert_botocore_agrees(model: OperationModel, body: bytes) -> None:
    params: dict[str, Any] = orjson.loads(body)
    report = ParamValidator().validate(params, model.input_shape)
    assert not report.has_errors(), report.generate_report()
    # botocore serializing the same parameters yields the same document.
    request = create_serializer("json").serialize_to_request(params, model)
    assert orjson.loads(request["body"]) == params


@pytest.mark.parametrize("schema", [KeySchema(), KeySchema("id", None)], ids=["pk+sk", "hash-only"])
def test_bodies_are_valid_dynamodb_requests(dynamodb: ServiceModel, schema: KeySchema) -> None:
    builder = _builder(schema, per_key=25 if schema.range_name else 1)
    for operation, body in _bodies(builder):
        _assert_botocore_agrees(dynamodb.operation_model(operation), body)
    create = create_table_body("bench", schema)
    _assert_botocore_agrees(dynamodb.operation_model("CreateTable"), create)


def test_bodies_carry_the_key_the_record_maps_to() -> None:
    builder = _builder(per_key=25)
    keys = {r: orjson.loads(builder.get_item(r))["Key"] for r in (0, 24, 25, 1234)}
    assert keys[0]["pk"] == keys[24]["pk"] == {"S": "user0"}
    assert keys[0]["sk"] != keys[24]["sk"]
    assert keys[25] == {"pk": {"S": "user1"}, "sk": {"S": "000000"}}
    assert keys[1234] == {"pk": {"S": "user49"}, "sk": {"S": "000009"}}
    query = orjson.loads(builder.query(1234, 13))
    assert query["Limit"] == 13
    assert query["ExpressionAttributeValues"] == {":pk": {"S": "user49"}, ":sk": {"S": "000009"}}
    assert query["ConsistentRead"] is True


def test_conditional_update_expects_the_version_read_and_bumps_it() -> None:
    doc = orjson.loads(_builder().conditional_update(5, 41))
    values = doc["ExpressionAttributeValues"]
    assert doc["ConditionExpression"] == "#v = :expected"
    assert values[":expected"] == {"N": "41"} and values[":next"] == {"N": "42"}
    missing = orjson.loads(_builder().conditional_update(5, None))
    assert missing["ConditionExpression"] == "attribute_not_exists(#v)"


def _dynamodb_item_size(item: dict[str, dict[str, str]]) -> int:
    # DynamoDB's rule: attribute name lengths plus value sizes (numbers: about digits/2 + 1).
    size = 0
    for name, value in item.items():
        kind, raw = next(iter(value.items()))
        size += len(name) + (len(raw.encode()) if kind == "S" else (len(raw) + 1) // 2 + 1)
    return size


@pytest.mark.parametrize("size", [200, 1024, 4000])
def test_items_have_about_the_requested_size(size: int) -> None:
    item = orjson.loads(_builder(size=size).put_item(777))["Item"]
    assert abs(_dynamodb_item_size(item) - size) <= 8


def test_payloads_vary_between_writes() -> None:
    builder = _builder()
    datas = {orjson.loads(builder.put_item(1))["Item"]["data"]["S"] for _ in range(8)}
    assert len(datas) > 1


def test_static_headers_are_shaped_like_botocore(dynamodb: ServiceModel) -> None:
    botocore_request = create_serializer("json").serialize_to_request(
        {"TableName": "t", "Key": {"pk": {"S": "a"}}}, dynamodb.operation_model("GetItem"))
    headers = StaticHeaders("eu-west-1").headers("GetItem", b"{}")
    assert headers["X-Amz-Target"] == botocore_request["headers"]["X-Amz-Target"]
    assert headers["Content-Type"] == botocore_request["headers"]["Content-Type"]
    assert AUTH.match(headers["Authorization"])
    assert "/eu-west-1/dynamodb/aws4_request" in headers["Authorization"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", headers["X-Amz-Date"])


def test_sigv4_signer_signs_each_body(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # Fixed example credentials in the environment; no config or credentials files are read.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    signer = SigV4Signer("https://dynamodb.us-west-2.amazonaws.com", "us-west-2")
    first = signer.headers("GetItem", b'{"a":1}')
    second = signer.headers("GetItem", b'{"a":2}')
    assert AUTH.match(first["Authorization"])
    assert "Credential=AKIDEXAMPLE/" in first["Authorization"]
    assert "x-amz-target" in first["Authorization"]
    assert first["Authorization"] != second["Authorization"]


def test_error_type_takes_the_short_name() -> None:
    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}'
    assert error_type(400, body) == "ConditionalCheckFailedException"
    assert error_type(400, b'{"__type":"ThrottlingException"}') == "ThrottlingException"
    assert error_type(503, b"<html>busy</html>") == "HTTP503"
    assert error_type(500, b'{"message":"no type"}') == "HTTP500"


def test_version_of_a_get_item_response() -> None:
    assert version_of(b'{"Item":{"pk":{"S":"a"},"v":{"N":"12"}}}') == 12
    assert version_of(b"{}") is None


def test_key_schema_of_describe_table() -> None:
    described = {"Table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                           "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}}
    assert key_schema_of(described) == KeySchema("id", None)
    described["Table"]["AttributeDefinitions"][0]["AttributeType"] = "N"
    with pytest.raises(ValueError, match="needs S"):
        key_schema_of(described)


def test_several_items_per_key_need_a_sort_key() -> None:
    with pytest.raises(ValueError, match="sort key"):
        _builder(KeySchema("id", None), per_key=25)


def test_settings_are_checked() -> None:
    assert workload_named("put-only").name == "put" and workload_named("a").name == "A"
    assert BenchSettings(endpoint="http://x", workload="E").items_per_key == 25
    assert BenchSettings(endpoint="http://x", workload="D").key_distribution == "latest"
    for bad in ({"workload": "Z"}, {"records": 0}, {"rate_ops_s": 0.0}, {"distribution": "hot"},
                {"duration_s": -1.0}):
        with pytest.raises(ValueError):
            BenchSettings(endpoint="http://x", **bad)  # type: ignore[arg-type]
