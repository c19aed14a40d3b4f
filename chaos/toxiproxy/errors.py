"""API errors with Toxiproxy's messages and status codes; the body is {"error": ..., "status": ...}."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ApiError",
    "BAD_REQUEST_BODY",
    "ErrorKind",
    "INVALID_STREAM",
    "INVALID_TOXIC_TYPE",
    "MISSING_FIELD",
    "PROXY_ALREADY_EXISTS",
    "PROXY_NOT_FOUND",
    "TOXIC_ALREADY_EXISTS",
    "TOXIC_NOT_FOUND",
]


class ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One of Toxiproxy's errors; calling it makes a fresh exception, with an optional detail
    appended as Toxiproxy's joinError does ("bad request body: <detail>")."""

    message: str
    status: int

    def __call__(self, detail: str | None = None) -> ApiError:
        message = self.message if detail is None else f"{self.message}: {detail}"
        return ApiError(message, self.status)


BAD_REQUEST_BODY = ErrorKind("bad request body", 400)
MISSING_FIELD = ErrorKind("missing required field", 400)
PROXY_NOT_FOUND = ErrorKind("proxy not found", 404)
PROXY_ALREADY_EXISTS = ErrorKind("proxy already exists", 409)
INVALID_STREAM = ErrorKind("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ErrorKind("invalid toxic type", 400)
TOXIC_ALREADY_EXISTS = ErrorKind("toxic already exists", 409)
TOXIC_NOT_FOUND = ErrorKind("toxic not found", 404)
