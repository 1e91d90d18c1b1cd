"""The retry policy and the per-call breaker of the LLM model, without a server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from spacy_ner_project.components.model_retry import (
    CallBreaker,
    RequestError,
    RetryPolicy,
    SharedRetryAfter,
    is_retryable_status,
    parse_retry_after,
)
from spacy_ner_project.components.model_settings import ModelDefaults

POLICY = RetryPolicy(max_retries=3, backoff=1.0, max_backoff=3.0, max_retry_wait=30.0)
SERVER_ERROR = RequestError("HTTP 503", retryable=True)
REFUSED = RequestError("cannot connect", retryable=True, connect=True)
UNAUTHORIZED = RequestError("HTTP 401", retryable=False)


def limited(seconds: float) -> RequestError:
    return RequestError("HTTP 429", retryable=True, retry_after=seconds)


def test_retryable_errors_get_max_retries_a_failed_connection_one() -> None:
    assert [POLICY.retries(attempt, SERVER_ERROR) for attempt in (1, 2, 3, 4)] == [True, True, True, False]
    assert [POLICY.retries(attempt, REFUSED) for attempt in (1, 2)] == [True, False]
    assert not POLICY.retries(1, UNAUTHORIZED)
    assert POLICY.attempts(SERVER_ERROR) == 4 and POLICY.attempts(REFUSED) == 2 and POLICY.attempts(UNAUTHORIZED) == 1
    never = RetryPolicy(max_retries=0, backoff=1.0, max_backoff=3.0, max_retry_wait=30.0)
    assert never.attempts(SERVER_ERROR) == never.attempts(REFUSED) == 1


def test_which_statuses_are_retried() -> None:
    assert [status for status in (400, 401, 403, 404, 408, 422, 429, 500, 502, 503) if is_retryable_status(status)] == [
        408, 429, 500, 502, 503
    ]


def test_backoff_doubles_within_its_jitter_and_stops_at_max_backoff() -> None:
    lowest = [POLICY.delay(attempt, SERVER_ERROR, jitter=0.0) for attempt in (1, 2, 3, 4)]
    highest = [POLICY.delay(attempt, SERVER_ERROR, jitter=1.0) for attempt in (1, 2, 3, 4)]
    assert lowest == [0.5, 1.0, 1.5, 1.5] and highest == [1.0, 2.0, 3.0, 3.0]
    assert POLICY.delay(2, SERVER_ERROR, jitter=0.5) == 1.5


def test_a_failed_connection_is_retried_quickly() -> None:
    assert POLICY.delay(1, REFUSED, jitter=1.0) == RetryPolicy.CONNECT_RETRY_WAIT
    assert RetryPolicy(max_retries=1, backoff=0.1, max_backoff=1.0, max_retry_wait=1.0).delay(1, REFUSED, jitter=0.0) == 0.05


def test_retry_after_is_honoured_up_to_max_retry_wait() -> None:
    assert POLICY.delay(1, limited(10.0), jitter=1.0) == 10.0  # longer than the backoff: the server's
    assert POLICY.delay(1, limited(0.1), jitter=1.0) == 1.0  # shorter: the backoff
    assert POLICY.delay(1, limited(3600.0), jitter=0.0) == 30.0  # capped
    assert POLICY.capped_wait(limited(10.0)) == ""
    assert POLICY.capped_wait(limited(3600.0)) == (
        " (the server asked to wait 3600 s with Retry-After; waits are capped at max_retry_wait = 30 s)"
    )


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 31 Dec 2029 00:00:00 GMT", now=now) == 0.0  # in the past: at once
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None and parse_retry_after("soon") is None


def test_the_breaker_trips_after_consecutive_connection_failures_only() -> None:
    breaker = CallBreaker(max_connect_failures=3)
    breaker.connect_failed("down")
    breaker.connect_failed("down")
    breaker.connected()  # an answer in between: the run starts again
    breaker.connect_failed("down")
    breaker.connect_failed("down")
    assert breaker.broken is None and not breaker.halt.is_set()
    breaker.connect_failed("down for good")
    assert breaker.broken == "down for good" and breaker.halt.is_set() and not breaker.interrupted
    breaker.connect_failed("later")
    assert breaker.broken == "down for good"  # the first message stays


def test_an_interrupt_halts_every_wait() -> None:
    breaker = CallBreaker(max_connect_failures=RetryPolicy.MAX_CONNECT_FAILURES)
    breaker.interrupt()
    assert breaker.interrupted and breaker.halt.wait(0) and breaker.broken is None


def test_the_defaults_bound_every_wait() -> None:
    policy = RetryPolicy(
        max_retries=ModelDefaults.DEFAULT_MAX_RETRIES,
        backoff=ModelDefaults.DEFAULT_BACKOFF,
        max_backoff=ModelDefaults.DEFAULT_MAX_BACKOFF,
        max_retry_wait=ModelDefaults.DEFAULT_MAX_RETRY_WAIT,
    )
    waits = [policy.delay(attempt, limited(3600.0), jitter=1.0) for attempt in range(1, policy.attempts(SERVER_ERROR))]
    assert len(waits) == ModelDefaults.DEFAULT_MAX_RETRIES and max(waits) == ModelDefaults.DEFAULT_MAX_RETRY_WAIT


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_long_retry_after_is_one_wait_for_every_request_and_one_budget() -> None:
    clock = Clock()
    shared = SharedRetryAfter(max_waits=2, clock=clock)
    assert shared.turn() == (0.0, None) and shared.era == 0
    # two requests sent before the server limited the client: the first begins the wait, the second joins it
    assert shared.limited(sent_in=0, retry_after=3600.0, wait=30.0, reason="limited")
    assert shared.limited(sent_in=0, retry_after=3600.0, wait=30.0, reason="limited")
    assert shared.era == 1 and shared.turn() == (30.0, None)
    clock.now += 10
    assert shared.turn() == (20.0, None)  # a request that comes later waits on the same deadline
    clock.now += 20
    assert shared.turn() == (0.0, None)
    assert shared.limited(sent_in=1, retry_after=3600.0, wait=30.0, reason="limited")  # the second wait
    clock.now += 30
    assert not shared.limited(sent_in=2, retry_after=3600.0, wait=30.0, reason="limited")  # spent
    assert not shared.limited(sent_in=1, retry_after=3600.0, wait=30.0, reason="limited")
    assert shared.turn() == (0.0, "limited")  # every request fails at once now ...
    clock.now += 3600
    assert shared.turn() == (0.0, None)  # ... until the time the server asked for has passed


def test_an_answer_after_the_latest_wait_ends_the_shared_retry_after() -> None:
    clock = Clock()
    shared = SharedRetryAfter(max_waits=1, clock=clock)
    shared.limited(sent_in=0, retry_after=3600.0, wait=30.0, reason="limited")
    shared.answered(sent_in=0)  # sent before the wait began: says nothing about the server now
    clock.now += 30
    assert shared.turn() == (0.0, None) and shared.era == 1
    shared.answered(sent_in=1)  # the server answers again: the budget is whole
    assert shared.limited(sent_in=1, retry_after=3600.0, wait=30.0, reason="limited")
    assert shared.turn() == (30.0, None)


def test_no_retries_means_no_shared_wait() -> None:
    shared = SharedRetryAfter(max_waits=0, clock=Clock())
    assert not shared.limited(sent_in=0, retry_after=3600.0, wait=30.0, reason="limited")
    assert shared.turn() == (0.0, "limited")


def test_only_a_retry_after_over_the_cap_is_shared() -> None:
    assert POLICY.asks_too_long(limited(3600.0)) and not POLICY.asks_too_long(limited(30.0))
    assert not POLICY.asks_too_long(SERVER_ERROR)
