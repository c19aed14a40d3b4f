"""The error types of dynalab.

Few types, each saying whose fault it was:

* `ClientError` and its subclasses: the request is wrong or cannot be granted (HTTP 400). Each
  carries the DynamoDB error name the router puts in `__type`, so the mapping to the wire lives in
  one table here and the router does no guessing.
* `ServerError`: dynalab failed (HTTP 500).
* `Unavailable`: dynalab cannot answer now, retrying may help (HTTP 503), e.g. no quorum.

Everything in the core raises only these; anything else escaping is a bug.
"""
from __future__ import annotations

from typing import Any


class DynalabError(Exception):
    """Base of every error dynalab raises on purpose."""

    aws_type: str = "InternalServerError"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> dict[str, Any]:
        """The JSON body DynamoDB sends for this error (without the HTTP status)."""
        return {"__type": f"com.amazonaws.dynamodb.v20120810#{self.aws_type}", "message": self.message}


class ClientError(DynalabError):
    """The caller's fault: the request was invalid or cannot be granted as asked."""

    aws_type = "ValidationException"
    http_status = 400


class ValidationException(ClientError):
    aws_type = "ValidationException"


class SerializationException(ClientError):
    aws_type = "SerializationException"


class UnknownOperationException(ClientError):
    aws_type = "UnknownOperationException"


class ResourceNotFoundException(ClientError):
    aws_type = "ResourceNotFoundException"


class ResourceInUseException(ClientError):
    aws_type = "ResourceInUseException"


class LimitExceededException(ClientError):
    aws_type = "LimitExceededException"


class ItemCollectionSizeLimitExceededException(ClientError):
    aws_type = "ItemCollectionSizeLimitExceededException"


class TrimmedDataAccessException(ClientError):
    aws_type = "TrimmedDataAccessException"


class ExpiredIteratorException(ClientError):
    aws_type = "ExpiredIteratorException"


class ConditionalCheckFailedException(ClientError):
    """A condition did not hold. `item` is the stored item (wire form) when the caller asked for it
    with ReturnValuesOnConditionCheckFailure=ALL_OLD."""

    aws_type = "ConditionalCheckFailedException"

    def __init__(self, message: str = "The conditional request failed",
                 item: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.item = item

    def to_wire(self) -> dict[str, Any]:
        body = super().to_wire()
        if self.item is not None:
            body["Item"] = self.item
        return body


class ServerError(DynalabError):
    """dynalab's own fault."""

    aws_type = "InternalServerError"
    http_status = 500


class Unavailable(DynalabError):
    """Cannot be served now (no leader, no quorum, shutting down); the caller may retry."""

    aws_type = "ServiceUnavailable"
    http_status = 503


__all__ = [
    "DynalabError", "ClientError", "ValidationException", "SerializationException",
    "UnknownOperationException", "ResourceNotFoundException", "ResourceInUseException",
    "LimitExceededException", "ItemCollectionSizeLimitExceededException",
    "TrimmedDataAccessException", "ExpiredIteratorException", "ConditionalCheckFailedException",
    "ServerError", "Unavailable",
]
