"""OpenAICompatible.v1 against misbehaving servers: long Retry-After, a dead server, Ctrl-C."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, List, TypeVar

import pytest
from chat_server import ChatServer, fixed_responder, hang, http_date, http_error

from spacy_ner_project.components.cache import ResponseCache
from spacy_ner_project.components.models import FailedResponse, OpenAICompatibleModel

T = TypeVar("T")

IN_2099 = http_date(datetime(2099, 1, 1, tzinfo=timezone.utc))


def within(seconds: float, work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread; fail (instead of hanging the suite) if it takes longer."""
    result: List[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return result[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ask(model: OpenAICompatibleModel, prompts: List[str]) -> List[str]:
    return [list(responses)[0] for responses in model([[prompt] for prompt in prompts])]


@pytest.mark.parametrize("retry_after", ["3600", IN_2099], ids=["seconds", "date-2099"])
def test_a_long_retry_after_waits_the_cap_then_fails_saying_what_was_asked(
    chat_server: ChatServer, retry_after: str
) -> None:
    chat_server.fail("limited", *[http_error(429, retry_after=retry_after)] * 3)
    model = OpenAICompatibleModel(
        base_url=chat_server.base_url, model="m", max_retries=2, backoff=0.001, max_retry_wait=0.2
    )
    start = time.monotonic()
    (answer,) = within(10, lambda: ask(model, ["limited"]))
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 2.0  # two capped waits of 0.2 s
    assert isinstance(answer, FailedResponse) and "HTTP 429" in answer.error and "after 3 attempts" in answer.error
    asked = "3600" if retry_after == "3600" else ""
    assert f"server asked to wait {asked}" in answer.error and "max_retry_wait = 0.2 s" in answer.error
    assert len(chat_server.chat_requests) == 3


def test_a_long_retry_after_then_an_answer(chat_server: ChatServer) -> None:
    chat_server.responder = fixed_responder("fine")
    chat_server.fail("limited", http_error(429, retry_after=IN_2099))
    model = OpenAICompatibleModel(base_url=chat_server.base_url, model="m", backoff=0.001, max_retry_wait=0.3)
    assert within(10, lambda: ask(model, ["limited"])) == ["fine"]
    first, second = chat_server.chat_requests
    assert 0.25 <= second.started - first.ended < 1.5


def test_max_retry_wait_default_is_bounded() -> None:
    assert 0 < OpenAICompatibleModel.DEFAULT_MAX_RETRY_WAIT <= 60


def test_a_dead_server_fails_every_request_at_once_naming_base_url() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    model = OpenAICompatibleModel(base_url=base_url, model="m")  # default retries and backoff
    prompts = [f"prompt {i}" for i in range(50)]
    start = time.monotonic()
    answers = within(20, lambda: ask(model, prompts))
    assert time.monotonic() - start < 2.0
    assert len(answers) == 50 and all(isinstance(answer, FailedResponse) for answer in answers)
    expected = f"cannot connect to {base_url}: connection refused (is the server running?)"
    assert all(expected in answer.error for answer in answers)
    assert sum(answer.error == expected for answer in answers) >= 50 - model.concurrency
    assert model.stats.failures == 50
    assert model.stats.requests <= 2 * model.concurrency  # the breaker stopped the rest unsent


def test_a_refused_connection_is_retried_once_not_like_a_timeout() -> None:
    model = OpenAICompatibleModel(base_url=f"http://127.0.0.1:{closed_port()}/v1", model="m", max_retries=5, backoff=5.0)
    start = time.monotonic()
    (answer,) = within(20, lambda: ask(model, ["hello"]))
    assert time.monotonic() - start < 1.0 and "after 2 attempts" in answer.error
    assert model.stats.requests == 2 and model.stats.retries == 1


def test_an_unknown_host_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    model = OpenAICompatibleModel(base_url="http://llm.invalid:8080/v1", model="m", backoff=5.0)
    start = time.monotonic()
    answers = within(20, lambda: ask(model, [f"prompt {i}" for i in range(10)]))
    assert time.monotonic() - start < 2.0
    assert all("cannot connect to http://llm.invalid:8080/v1: host name not found" in a.error for a in answers)


def test_the_breaker_is_per_call(chat_server: ChatServer) -> None:
    port = closed_port()
    model = OpenAICompatibleModel(base_url=f"http://127.0.0.1:{port}/v1", model="m", backoff=0.01)
    ask(model, [f"prompt {i}" for i in range(5)])
    model.base_url, model.endpoint = chat_server.base_url, f"{chat_server.base_url}/chat/completions"
    assert ask(model, ["later"]) == ["{}"]  # the server came up: the next call tries again


CHILD = """
import sys
from spacy_ner_project.components.cache import ResponseCache
from spacy_ner_project.components.models import OpenAICompatibleModel
model = OpenAICompatibleModel(base_url=sys.argv[1], model="test-model", cache=ResponseCache(sys.argv[2]),
                              concurrency=4, max_retries=3, max_retry_wait=3600, timeout=60)
model([[p] for p in sys.argv[3:]])
"""
FAST = ["fast 0", "fast 1", "fast 2"]
SLOW = [f"slow {i}" for i in range(6)]


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the child never got there"
        time.sleep(0.02)


@pytest.mark.parametrize("fault", [hang(30), http_error(429, retry_after="3600")], ids=["in-flight", "retry-after-wait"])
def test_ctrl_c_stops_at_once_and_a_rerun_repeats_no_finished_request(
    chat_server: ChatServer, tmp_path: Path, fault: Any
) -> None:
    path = tmp_path / "cache.sqlite"
    chat_server.responder = lambda prompt: f"answer {prompt}"
    chat_server.fail("slow", *[fault] * 20)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, chat_server.base_url, str(path), *FAST, *SLOW],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        answered = lambda: {r.prompt for r in chat_server.chat_requests if r.status == 200}  # noqa: E731
        slow = lambda: [r for r in chat_server.chat_requests if r.prompt.startswith("slow")]  # noqa: E731
        wait_for(lambda: answered() == set(FAST) and len(slow()) >= 4, 60)
        time.sleep(0.2)  # the slow requests hang in flight, or wait out their Retry-After
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)
        elapsed = time.monotonic() - start
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stderr = child.stderr.read().decode() if child.stderr else ""
    assert elapsed < 2.0 and child.returncode != 0 and "KeyboardInterrupt" in stderr
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert sorted(prompt for (prompt,) in db.execute("SELECT prompt FROM responses")) == FAST
    cache = ResponseCache(path)

    chat_server.reset()
    rerun = OpenAICompatibleModel(base_url=chat_server.base_url, model="test-model", cache=cache)
    assert ask(rerun, FAST) == [f"answer {p}" for p in FAST]
    assert chat_server.chat_requests == [] and rerun.stats.cache_hits == 3
