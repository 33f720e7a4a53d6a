"""A thin Python client of REST API v1 (standard library only).

    client = Client("http://127.0.0.1:8000", api_key)
    accepted = client.submit({"gpu_count": 2, "estimated_duration_s": 600})
    client.status(accepted["workload_id"])["status"]

``submit`` sends an ``Idempotency-Key`` (one per call unless given) and retries
connection failures and 5xx answers with backoff, so a retried submission never creates a
second workload. Error answers raise :class:`ApiError` with the status and the problems by
field.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from typing import Any


class ApiError(RuntimeError):
    """An error answer of the API.

    Attributes:
        status: HTTP status.
        title: the problem's title.
        errors: problems by field (``{"field": ..., "reason": ...}``).
    """

    def __init__(self, status: int, title: str, errors: list[dict[str, str]]) -> None:
        fields = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in errors)
        super().__init__(f"{status} {title}" + (f" ({fields})" if fields else ""))
        self.status = status
        self.title = title
        self.errors = errors


class Client:
    """REST API v1 client.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        api_key: the caller's key.
        totp: a callable returning the current TOTP code (staff keys), or None.
        timeout_s: per request [s].
        retries: extra attempts of a submit after a connection failure or 5xx.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        totp: Any = None,
        timeout_s: float = 10.0,
        retries: int = 3,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.totp = totp
        self.timeout_s = timeout_s
        self.retries = retries

    def submit(
        self,
        requirements: Mapping[str, Any],
        workload_type: str | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Submit a workload; returns the A.1 reply (safe to retry)."""
        body = {"requirements": dict(requirements), **fields}
        if workload_type is not None:
            body["workload_type"] = workload_type
        key = idempotency_key or uuid.uuid4().hex
        for attempt in range(self.retries + 1):
            try:
                return self._call("POST", "/v1/workloads/submit", body, {"Idempotency-Key": key})
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if attempt == self.retries:
                    raise
            except ApiError as error:
                if error.status < 500 or attempt == self.retries:
                    raise
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def status(self, workload_id: str) -> dict[str, Any]:
        """One workload."""
        return self._call("GET", f"/v1/workloads/{urllib.parse.quote(workload_id)}/status")

    def cancel(self, workload_id: str) -> dict[str, Any]:
        """Cancel a workload."""
        return self._call("POST", f"/v1/workloads/{urllib.parse.quote(workload_id)}/cancel")

    def list(self, status: str | None = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every workload visible to the key, newest first (follows the pages)."""
        cursor: str | None = None
        while True:
            query = {"limit": str(page_size)}
            if status:
                query["status"] = status
            if cursor:
                query["cursor"] = cursor
            page = self._call("GET", "/v1/workloads?" + urllib.parse.urlencode(query))
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {"X-API-Key": self.api_key, "Accept": "application/json"}
        if self.totp is not None:
            all_headers["X-TOTP"] = str(self.totp())
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            headers=all_headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                return dict(json.loads(reply.read()))
        except urllib.error.HTTPError as error:
            try:
                problem = json.loads(error.read())
            except ValueError:
                problem = {}
            raise ApiError(
                error.code, str(problem.get("title", error.reason)), problem.get("errors", [])
            ) from None
