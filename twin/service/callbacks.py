"""Status-change callbacks: POST a signed JSON notice to a workload's ``callback_url``.

Each notice carries ``X-HCP-Timestamp`` (Unix seconds) and ``X-HCP-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``timestamp + "." + body`` under the service's callback
secret, so a receiver can check it came from the platform and is fresh. Delivery runs on a
background thread; a failed attempt (connection error, timeout, or a non-2xx answer) is
retried with exponential backoff up to ``max_attempts`` times. Notices to one URL keep their
order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger("hcp.service.callbacks")


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of ``timestamp.body`` under ``secret``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the right signature (constant-time)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass
class Delivery:
    """What happened to one notice."""

    url: str
    payload: Mapping[str, Any]
    attempts: int = 0
    delivered: bool = False
    errors: list[str] = field(default_factory=list)


class CallbackSender:
    """Delivers notices on a background thread.

    Args:
        secret: HMAC key shared with receivers.
        max_attempts: tries per notice [-].
        backoff_s: wait before the first retry, doubling after each [s].
        timeout_s: per attempt [s].
        clock: wall clock for the timestamp header [s].
    """

    def __init__(
        self,
        secret: bytes,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("callback secret: must not be empty")
        self.secret = secret
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
        self._thread.start()

    def notify(self, url: str, payload: Mapping[str, Any]) -> Delivery:
        """Queue a notice; returns its delivery record (filled in as it goes)."""
        delivery = Delivery(url, dict(payload))
        self._queue.put(delivery)
        return delivery

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued notice is delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        """Stop the thread after what is queued."""
        self._queue.put(None)
        self._thread.join(10.0)

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is None:
                    return
                self._deliver(delivery)
            finally:
                self._queue.task_done()

    def _deliver(self, delivery: Delivery) -> None:
        body = json.dumps(delivery.payload, sort_keys=True, default=str).encode()
        for attempt in range(self.max_attempts):
            delivery.attempts = attempt + 1
            timestamp = str(int(self.clock()))
            request = urllib.request.Request(
                delivery.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-HCP-Timestamp": timestamp,
                    "X-HCP-Signature": signature(self.secret, timestamp, body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    if 200 <= reply.status < 300:
                        delivery.delivered = True
                        return
                    delivery.errors.append(f"HTTP {reply.status}")
            except urllib.error.HTTPError as error:
                delivery.errors.append(f"HTTP {error.code}")
            except (urllib.error.URLError, OSError) as error:
                delivery.errors.append(f"{type(error).__name__}: {error}")
            time.sleep(self.backoff_s * 2**attempt)
        LOG.warning("callback to %s given up after %d attempts", delivery.url, self.max_attempts)
