"""When a failed request to the LLM server is tried again, and after how long.

:class:`RetryPolicy` is pure (no clock, no randomness, no I/O): from the attempt number and the
:class:`RequestError` it says whether to retry and how long to wait, so it is tested without a
server. :class:`CallBreaker` is the state the requests of one call share: the event that cuts
their waits short (Ctrl-C, or the breaker tripping after consecutive connection failures).
:class:`SharedRetryAfter` is the state all requests of a model share about a server that asked
for a longer wait than ``max_retry_wait``: one wait for all of them, and one budget of retries.
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional, Tuple


def snippet(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (for error messages)."""
    text = text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


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

    def asks_too_long(self, error: RequestError) -> bool:
        """Whether the server asked to wait longer than ``max_retry_wait`` (see SharedRetryAfter)."""
        return error.retry_after is not None and error.retry_after > self.max_retry_wait

    def capped_wait(self, error: RequestError) -> str:
        """For the final error: what the server asked to wait, if more than ``max_retry_wait``."""
        if error.retry_after is None or not self.asks_too_long(error):
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


class SharedRetryAfter:
    """A server's long Retry-After (more than ``max_retry_wait``), shared by every request of one
    model, across its calls (a whole ``nlp.pipe`` run): the server limits the client, not one
    request, so waiting per request would cost each document its own waits.

    The first request the server answers that way starts one wait (``wait`` seconds, from the
    RetryPolicy) that every request then waits out before it is sent; a request sent after that
    wait and answered that way again starts the next, up to ``max_waits`` waits (the model's
    ``max_retries``). Once they are spent, every request fails at once, unsent, with ``reason``,
    until the time the server asked for has passed. An answer to a request sent after the latest
    wait began ends it all. ``clock``: seconds, monotonic (tests pass their own)."""

    def __init__(self, *, max_waits: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_waits = max_waits
        self._clock = clock
        self._lock = threading.Lock()
        self._era = 0  # waits begun so far: a request remembers the era it was sent in
        self._waits = 0  # of them, since the server last answered
        self._resume_at = 0.0
        self._spent_until = 0.0
        self.reason: Optional[str] = None

    @property
    def era(self) -> int:
        """Read it when sending a request: which of the shared waits the request came after."""
        return self._era

    def turn(self) -> Tuple[float, Optional[str]]:
        """Before sending: (seconds to wait first, None), or (0, why the request fails unsent)
        while the waits are spent."""
        with self._lock:
            now = self._clock()
            if self.reason is not None and now >= self._spent_until:
                self._reset()  # the server's Retry-After has passed: try it again
            if self.reason is not None:
                return 0.0, self.reason
            return max(0.0, self._resume_at - now), None

    def limited(self, *, sent_in: int, retry_after: float, wait: float, reason: str) -> bool:
        """A request sent in era ``sent_in`` was asked to wait ``retry_after`` seconds (more than
        the cap): whether it may be sent again after the shared wait (starting the next wait,
        ``wait`` seconds, unless one began since it was sent). False once the waits are spent:
        from then on every request fails with ``reason`` for ``retry_after`` seconds."""
        with self._lock:
            if self.reason is not None:
                return False
            if sent_in < self._era:
                return True  # another request began a wait after this one was sent
            now = self._clock()
            if self._waits >= self._max_waits:
                self.reason = reason
                self._spent_until = now + retry_after
                return False
            self._era += 1
            self._waits += 1
            self._resume_at = now + wait
            return True

    def answered(self, *, sent_in: int) -> None:
        """A request sent in era ``sent_in`` got an answer: if no wait began since, the server
        takes requests again (the waits' budget is whole again)."""
        with self._lock:
            if sent_in == self._era and self._waits:
                self._reset()

    def _reset(self) -> None:
        self._waits = 0
        self._resume_at = self._spent_until = 0.0
        self.reason = None
