"""The package skeleton: stubs are generated and importable, the CLI dispatches."""
from __future__ import annotations

from dynalab import cli
from dynalab.errors import ConditionalCheckFailedException, ValidationException


def test_generated_stubs_import_and_round_trip() -> None:
    from proto import raft_pb2, raft_pb2_grpc, storage_pb2, storage_pb2_grpc  # noqa: F401

    batch = raft_pb2.Batch(from_node="n1", frame=b"\x01\x00\x00\x00\x00")
    again = raft_pb2.Batch.FromString(batch.SerializeToString())
    assert again.from_node == "n1" and again.frame == batch.frame
    assert raft_pb2.MSG_APPEND == 5
    assert hasattr(storage_pb2_grpc, "StorageStub")


def test_cli_help_lists_commands(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "sim" in out and "up" in out


def test_cli_unknown_command_fails(capsys) -> None:
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_error_wire_form() -> None:
    body = ValidationException("One or more parameter values were invalid").to_wire()
    assert body["__type"] == "com.amazonaws.dynamodb.v20120810#ValidationException"
    assert ConditionalCheckFailedException(item={"k": {"S": "v"}}).to_wire()["Item"] == {"k": {"S": "v"}}
    assert ValidationException.http_status == 400
