"""Request headers as botocore sends them, with or without a real SigV4 signature.

Endpoints that accept any well-formed `Authorization` header (dynalab, DynamoDB Local, moto,
dynalite) get `StaticHeaders`: one header dict per operation, built once, so the hot path does no
hashing at all. Real DynamoDB needs `SigV4Signer` (botocore's SigV4Auth per request; slower).
"""
from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["TARGET_PREFIX", "CONTENT_TYPE", "HeaderSource", "StaticHeaders", "SigV4Signer",
           "make_header_source"]

TARGET_PREFIX = "DynamoDB_20120810"  # botocore's service model: metadata.targetPrefix
CONTENT_TYPE = "application/x-amz-json-1.0"  # metadata.jsonVersion 1.0
USER_AGENT = "dynalab-bench"
_SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target"
# DynamoDB Local keeps one database per access key id, so use the caller's id when there is one:
# then tables the bench creates are the ones the user's boto3 sees.
_DEFAULT_ACCESS_KEY_ID = "dynalab"


class HeaderSource(Protocol):
    def headers(self, operation: str, body: bytes) -> Mapping[str, str]:
        """The HTTP headers for one request of `operation` (e.g. "GetItem") carrying `body`."""
        ...


def _base_headers(operation: str) -> dict[str, str]:
    return {
        "Content-Type": CONTENT_TYPE,
        "X-Amz-Target": f"{TARGET_PREFIX}.{operation}",
        "User-Agent": USER_AGENT,
    }


class StaticHeaders:
    """A well-formed but unverifiable SigV4 header, the same for every request of an operation."""

    def __init__(self, region: str, access_key_id: str | None = None,
                 now: datetime.datetime | None = None) -> None:
        moment = now or datetime.datetime.now(datetime.timezone.utc)
        self._amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
        self._scope = f"{moment.strftime('%Y%m%d')}/{region}/dynamodb/aws4_request"
        self._access_key_id = access_key_id or os.environ.get("AWS_ACCESS_KEY_ID") \
            or _DEFAULT_ACCESS_KEY_ID
        self._cache: dict[str, dict[str, str]] = {}

    def headers(self, operation: str, body: bytes) -> Mapping[str, str]:
        cached = self._cache.get(operation)
        if cached is None:
            cached = self._build(operation)
            self._cache[operation] = cached
        return cached

    def _build(self, operation: str) -> dict[str, str]:
        signature = hashlib.sha256(f"{self._scope}:{operation}".encode()).hexdigest()
        headers = _base_headers(operation)
        headers["X-Amz-Date"] = self._amz_date
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._access_key_id}/{self._scope}, "
            f"SignedHeaders={_SIGNED_HEADERS}, Signature={signature}")
        return headers


class SigV4Signer:
    """Real SigV4 per request with botocore (credentials from the usual botocore chain)."""

    def __init__(self, endpoint: str, region: str) -> None:
        import botocore.session  # only --sign pays for importing botocore
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = botocore.session.Session().get_credentials()
        if credentials is None:
            raise RuntimeError("--sign needs AWS credentials (environment, profile or role)")
        self._auth = SigV4Auth(credentials, "dynamodb", region)
        self._request_type: Any = AWSRequest
        self._endpoint = endpoint

    def headers(self, operation: str, body: bytes) -> Mapping[str, str]:
        request = self._request_type(method="POST", url=self._endpoint, data=body,
                                     headers=_base_headers(operation))
        self._auth.add_auth(request)
        return dict(request.headers.items())


def make_header_source(endpoint: str, region: str, sign: bool) -> HeaderSource:
    return SigV4Signer(endpoint, region) if sign else StaticHeaders(region)
