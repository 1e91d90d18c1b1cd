"""When a failed request to the LLM server is tried again, and after how long.

:class:`RetryPolicy` is pure (no clock, no randomness, no I/O): from the attempt number and the
:class:`RequestError` it says whether to retry and how long to wait, so it is tested without a
server. :class:`CallBreaker` is the state the requests of one call share: the event that cuts
their waits short (Ctrl-C, or the breaker tripping after consecutive connection failures).
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass
from typing import ClassVar, Optional


class RequestError(Exception):
    """A failed attempt: ``message`` says why; ``retryable`` whether another attempt may help;
    ``retry_after`` the server's Retry-After in seconds; ``connect`` that the server could not be
    reached at all."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after: Optional[float] = None, connect: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.connect = connect


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP error status may heal on its own: 408, 429 and 5xx (not 401, 404 ...)."""
    return status in (408, 429) or status >= 500


def parse_retry_after(value: Optional[str], *, now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date, counted from
    ``now``, a Unix time, by default the clock's); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and jitter, honouring the server's Retry-After up to
    ``max_retry_wait``; a failed connection is retried ``CONNECT_RETRIES`` times at most, after
    ``CONNECT_RETRY_WAIT`` seconds at most. The class constants are fixed policy."""

    # Retries of a request whose connection failed, and the longest wait before one.
    CONNECT_RETRIES: ClassVar[int] = 1
    CONNECT_RETRY_WAIT: ClassVar[float] = 0.25
    # Consecutive connection failures after which the rest of a call fails at once (CallBreaker).
    MAX_CONNECT_FAILURES: ClassVar[int] = 3

    max_retries: int
    backoff: float
    max_backoff: float
    max_retry_wait: float

    def attempts(self, error: RequestError) -> int:
        """How many attempts a request failing with ``error`` gets in all."""
        if not error.retryable:
            return 1
        return 1 + min(self.max_retries, self.CONNECT_RETRIES if error.connect else self.max_retries)

    def retries(self, attempt: int, error: RequestError) -> bool:
        """Whether attempt number ``attempt`` (from 1), which failed with ``error``, is retried."""
        return attempt < self.attempts(error)

    def delay(self, attempt: int, error: RequestError, *, jitter: float) -> float:
        """Seconds to wait before retrying attempt ``attempt``: between half and all of
        ``backoff * 2 ** (attempt - 1)`` (at most ``max_backoff``) as ``jitter`` goes from 0 to 1;
        at most CONNECT_RETRY_WAIT after a failed connection; never less than the server's
        Retry-After, up to ``max_retry_wait``."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay = ceiling / 2 + jitter * ceiling / 2
        if error.connect:
            return min(delay, self.CONNECT_RETRY_WAIT)
        if error.retry_after is not None:
            return max(delay, min(error.retry_after, self.max_retry_wait))
        return delay

    def capped_wait(self, error: RequestError) -> str:
        """For the final error: what the server asked to wait, if more than ``max_retry_wait``."""
        if error.retry_after is None or error.retry_after <= self.max_retry_wait:
            return ""
        return (
            f" (the server asked to wait {error.retry_after:.0f} s with Retry-After; waits are capped at "
            f"max_retry_wait = {self.max_retry_wait:g} s)"
        )


class CallBreaker:
    """What the requests of one call share: ``halt``, the event that cuts their waits short (set
    on an interrupt or when the breaker trips), and the run of consecutive connection failures;
    after ``max_connect_failures`` of them ``broken`` holds the error every request then fails with."""

    def __init__(self, *, max_connect_failures: int) -> None:
        self.halt = threading.Event()
        self.interrupted = False
        self.broken: Optional[str] = None
        self._max_connect_failures = max_connect_failures
        self._connect_failures = 0
        self._lock = threading.Lock()

    def interrupt(self) -> None:
        """Stop every wait; the requests not sent yet are not sent."""
        self.interrupted = True
        self.halt.set()

    def connected(self) -> None:
        """The server answered (whatever it said): the run of connection failures ends."""
        with self._lock:
            self._connect_failures = 0

    def connect_failed(self, message: str) -> None:
        """A connection failed with ``message``; trips the breaker after too many in a row."""
        with self._lock:
            self._connect_failures += 1
            if self._connect_failures >= self._max_connect_failures and self.broken is None:
                self.broken = message
                self.halt.set()
