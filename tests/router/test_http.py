"""The HTTP front door: headers, authentication, targets, JSON, and the one error mapping."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import zlib
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dynalab.errors import ConditionalCheckFailedException, Unavailable, ValidationException
from router.server import error_response
from tests.router.conftest import Harness, create

AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abcdef0123")


def post(harness: Harness, target: str | None, body: bytes, auth: str | None = AUTH,
         content_type: str = "application/x-amz-json-1.0") -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    if auth is not None:
        headers["Authorization"] = auth
    request = urllib.request.Request(harness.url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wire_type(body: bytes) -> tuple[str, str]:
    decoded = json.loads(body)
    return decoded["__type"].rsplit("#", 1)[1], decoded.get("message", "")


def test_response_headers_carry_crc32_of_the_body_bytes(harness: Harness) -> None:
    status, headers, body = post(harness, "DynamoDB_20120810.ListTables", b"{}")
    assert status == 200
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert len(headers["x-amzn-RequestId"]) == 52
    assert "TableNames" in json.loads(body)


def test_error_responses_carry_crc32_too(harness: Harness) -> None:
    status, headers, body = post(harness, "DynamoDB_20120810.DescribeTable",
                                 b'{"TableName": "no-such-table"}')
    assert status == 400
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert wire_type(body) == ("ResourceNotFoundException",
                               "Requested resource not found: Table: no-such-table not found")


def test_boto3_validates_the_crc32_it_receives(ddb: BaseClient) -> None:
    # botocore checks x-amz-crc32 for DynamoDB and fails the call on a mismatch.
    name = create(ddb)
    ddb.put_item(TableName=name,
                 Item={"pk": {"S": "crc"}, "sk": {"N": "1"}, "b": {"B": b"\x00\xff"}})
    item = ddb.get_item(TableName=name, Key={"pk": {"S": "crc"}, "sk": {"N": "1"}})["Item"]
    assert item["b"]["B"] == b"\x00\xff"


def test_missing_authorization_is_refused(harness: Harness) -> None:
    status, _, body = post(harness, "DynamoDB_20120810.ListTables", b"{}", auth=None)
    assert status == 400
    assert wire_type(body) == ("MissingAuthenticationTokenException",
                               "Request is missing Authentication Token")


def test_malformed_authorization_is_refused(harness: Harness) -> None:
    status, _, body = post(harness, "DynamoDB_20120810.ListTables", b"{}",
                           auth="AWS4-HMAC-SHA256 Credential=abc")
    assert status == 400
    kind, message = wire_type(body)
    assert kind == "IncompleteSignatureException"
    assert "'Signature'" in message and "'SignedHeaders'" in message
    assert "'Credential'" not in message


def test_any_well_formed_signature_is_accepted(harness: Harness) -> None:
    other = AUTH.replace("us-east-1", "eu-west-1").replace("abcdef0123", "00")
    status, _, _ = post(harness, "DynamoDB_20120810.ListTables", b"{}", auth=other)
    assert status == 200


def test_json_1_1_content_type_is_accepted(harness: Harness) -> None:
    status, _, _ = post(harness, "DynamoDB_20120810.ListTables", b"{}",
                        content_type="application/x-amz-json-1.1")
    assert status == 200


@pytest.mark.parametrize("target", [None, "DynamoDB_20120810.Frobnicate", "Other_2012.ListTables"])
def test_unknown_target(harness: Harness, target: str | None) -> None:
    status, _, body = post(harness, target, b"{}")
    assert status == 400
    assert wire_type(body)[0] == "UnknownOperationException"


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\"text\"", b"{\"TableName\": }"])
def test_malformed_json_is_a_serialization_exception(harness: Harness, raw: bytes) -> None:
    status, _, body = post(harness, "DynamoDB_20120810.ListTables", raw)
    assert status == 400
    assert wire_type(body)[0] == "SerializationException"


def test_wrong_json_type_of_a_member_is_a_serialization_exception(harness: Harness) -> None:
    status, _, body = post(harness, "DynamoDB_20120810.DescribeTable", b'{"TableName": 5}')
    assert (status, wire_type(body)) == (400, ("SerializationException",
                                               "NUMBER_VALUE cannot be converted to String"))


def test_health_check_answers_like_dynamodb(harness: Harness) -> None:
    with urllib.request.urlopen(harness.url + "/", timeout=10) as response:
        assert response.read().decode() == "healthy: dynamodb.us-east-1.amazonaws.com "


def test_unexpected_exception_is_a_500_without_details(harness: Harness) -> None:
    async def broken(router: Any, body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    harness.on_loop(lambda: harness.router._operations.__setitem__("Broken", broken))
    try:
        status, _, body = post(harness, "DynamoDB_20120810.Broken", b"{}")
    finally:
        harness.on_loop(lambda: harness.router._operations.pop("Broken"))
    assert status == 500
    assert wire_type(body) == ("InternalServerError", "Internal server error")
    assert b"secret" not in body and b"Traceback" not in body


def test_error_mapping_uses_each_errors_status_and_wire_form() -> None:
    assert error_response(ValidationException("bad")) == (
        400, b'{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"bad"}')
    status, body = error_response(ConditionalCheckFailedException(item={"a": {"S": "x"}}))
    assert status == 400 and json.loads(body)["Item"] == {"a": {"S": "x"}}
    assert error_response(Unavailable("later"))[0] == 503
    assert error_response(KeyError("x"))[0] == 500


def test_boto3_sees_dynamodb_error_codes(ddb: BaseClient) -> None:
    with pytest.raises(ClientError) as caught:
        ddb.describe_table(TableName="missing-table")
    error = caught.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert error["Message"] == "Requested resource not found: Table: missing-table not found"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
