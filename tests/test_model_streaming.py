"""Streamed answers (OpenAICompatible.v1's ``stream``, on by default) against a scripted one-slot
server that generates as llama-cpp-python's does (tests/one_slot_server.py): a request given up
on stops the server's generation, so no retry waits on dead work; the stop rule cuts runaway
answers; a stream the server cut short is never taken for an answer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any, Iterator, List

import pytest
from chat_server import ChatServer, fixed_responder
from one_slot_server import Generation, OneSlotServer
from test_model_faults import default_ctrl_c, wait_for, within

from spacy_ner_project.components.cache import ResponseCache
from spacy_ner_project.components.model_retry import RequestError
from spacy_ner_project.components.model_stream import ChatAnswer, read_event_stream, repetition_end
from spacy_ner_project.components.models import FailedResponse, ModelDefaults, OpenAICompatibleModel

TOKEN = 0.01  # seconds per token of the one-slot server
SLACK = 0.15  # what a loaded 2-core machine adds to a thread's wake-up
TIMEOUT = 0.5  # the client's deadline per attempt
# the first answer to "stall" takes 2 s (200 tokens), far past the deadline; the retry's is short
STALLED = json.dumps({"PER": [f"name {i}" for i in range(60)]})[: 200 * 3]


@pytest.fixture
def one_slot() -> Iterator[OneSlotServer]:
    with OneSlotServer(token_interval=TOKEN, chars_per_token=3) as server:
        yield server


def ask(model: OpenAICompatibleModel, prompts: List[str]) -> List[str]:
    return [list(responses)[0] for responses in model([[prompt] for prompt in prompts])]


def abandoned(generations: List[Generation]) -> List[Generation]:
    return [g for g in generations if g.client_gone is not None]


def time_waiting_on_dead_work(generations: List[Generation]) -> float:
    """The longest time any request waited for the slot while a generation whose client had
    gone held it."""
    waits = [
        min(dead.ended, waiting.started) - max(dead.client_gone, waiting.arrived)  # type: ignore[type-var]
        for dead in abandoned(generations)
        for waiting in generations
        if waiting is not dead
    ]
    return max([0.0, *waits])


def timed_out_once(server: OneSlotServer, **settings: Any) -> List[str]:
    """One prompt whose first answer takes 2 s, against a 0.5 s deadline; the retry's is "{}"."""
    server.script("stall", STALLED, "{}")
    model = OpenAICompatibleModel(base_url=server.base_url, model="m", timeout=TIMEOUT, backoff=0.01, **settings)
    return within(30, lambda: ask(model, ["stall"]))


def test_by_default_an_abandoned_generation_stops_and_the_retry_does_not_wait_for_it(one_slot: OneSlotServer) -> None:
    assert ModelDefaults.DEFAULT_STREAM is True
    assert timed_out_once(one_slot) == ["{}"]
    first, retry = one_slot.generations
    assert first.stream and first.cancelled and first.tokens < first.planned / 2
    assert first.client_gone - (first.arrived + TIMEOUT) < 2 * TOKEN + SLACK  # seen gone within a token or two
    assert first.dead_work <= TOKEN + SLACK  # and it stopped at that token
    assert retry.started >= first.ended and retry.waited < 2 * TOKEN + SLACK  # one slot, no queue behind dead work
    assert time_waiting_on_dead_work(one_slot.generations) < 2 * TOKEN + SLACK
    assert not retry.cancelled and retry.tokens == retry.planned


def test_without_streaming_the_retries_queue_behind_the_abandoned_generation(one_slot: OneSlotServer) -> None:
    """WHY STREAMING IS THE DEFAULT: the same request with stream = false. The server finishes the
    abandoned answer (2 s) while each retry waits for the slot until its own deadline passes,
    so the request fails although the server would answer the retry at once."""
    (answer,) = timed_out_once(one_slot, stream=False)
    assert isinstance(answer, FailedResponse) and "after 3 attempts: timed out" in answer.error
    wait_for(lambda: all(generation.ended for generation in one_slot.generations), 10)  # the server goes on
    first, *retries = one_slot.generations
    assert not first.stream and not first.cancelled and first.tokens == first.planned  # ran to its end
    assert first.dead_work > 1.0  # over a second generating for nobody
    assert len(retries) == 2 and all(retry.started >= first.ended for retry in retries)
    assert retries[0].waited > TIMEOUT - SLACK  # queued behind dead work, then gone before its turn
    assert all(retry.tokens == 0 and retry.cancelled for retry in retries)  # never generated
    assert time_waiting_on_dead_work(one_slot.generations) > TIMEOUT - SLACK


# -- the stop rule -----------------------------------------------------------------------------------

RUNAWAY = '{"PER": ["Sam", ' + '"", ' * 300 + '""]}'


def test_a_runaway_answer_is_cut_and_its_generation_stopped(one_slot: OneSlotServer, tmp_path: Any) -> None:
    one_slot.script("doc", RUNAWAY)
    model = OpenAICompatibleModel(base_url=one_slot.base_url, model="m", cache=ResponseCache(tmp_path / "c.sqlite"))
    start = time.monotonic()
    (answer,) = within(30, lambda: ask(model, ["doc"]))
    elapsed = time.monotonic() - start
    end = repetition_end(RUNAWAY, times=ModelDefaults.DEFAULT_STOP_REPETITION)
    assert end is not None and end < 60 and answer == RUNAWAY[:end]  # eight '", "' after "Sam"
    wait_for(lambda: one_slot.generations[0].ended > 0, 5)
    (generation,) = one_slot.generations
    assert generation.cancelled and generation.tokens <= end / 3 + 3 and generation.planned > 350  # stopped at once
    assert elapsed < 2.0 and model.stats.repetition_stops == 1 and model.stats.answered == 1
    assert ask(model, ["doc"]) == [RUNAWAY[:end]] and len(one_slot.generations) == 1  # the cut answer was cached


def test_an_answer_that_came_whole_is_cut_at_the_same_place(chat_server: ChatServer) -> None:
    """A server that ignores "stream" (one JSON body): the same answer as a streamed one."""
    chat_server.responder = fixed_responder(RUNAWAY)
    model = OpenAICompatibleModel(base_url=chat_server.base_url, model="m")
    end = repetition_end(RUNAWAY, times=ModelDefaults.DEFAULT_STOP_REPETITION)
    assert ask(model, ["doc"]) == [RUNAWAY[:end]] and model.stats.repetition_stops == 1
    assert chat_server.chat_requests[0].body["stream"] is True
    assert ask(OpenAICompatibleModel(base_url=chat_server.base_url, model="m", stop_repetition=0), ["doc"]) == [RUNAWAY]


def test_the_stop_rule_leaves_a_normal_answer_alone(one_slot: OneSlotServer) -> None:
    normal = '{"PER": ["Sam", "Sam Smith"], "ORG": ["AAA"], "LOC": ["Paris", "Paris"], "MISC": ["1000000"]}'
    one_slot.responder = lambda prompt: normal
    model = OpenAICompatibleModel(base_url=one_slot.base_url, model="m")
    assert ask(model, ["doc"]) == [normal] and model.stats.repetition_stops == 0


# -- a stream the server cut short, Ctrl-C ----------------------------------------------------------


def test_a_stream_cut_short_for_a_waiting_request_is_never_taken_for_the_answer() -> None:
    """llama-cpp-python's default interrupt_requests ends a stream with [DONE] as soon as another
    request waits: the answer is cut, without a finish reason. It is retried, never returned."""
    full = {f"doc {i}": json.dumps({"PER": [f"person {i} {j}" for j in range(8)]}) for i in range(2)}
    with OneSlotServer(token_interval=TOKEN, responder=full.__getitem__, interrupt_requests=True) as server:
        model = OpenAICompatibleModel(base_url=server.base_url, model="m", backoff=0.01, concurrency=2)
        answers = within(60, lambda: ask(model, list(full)))
        assert any(generation.interrupted for generation in server.generations)
    for prompt, answer in zip(full, answers):
        if isinstance(answer, FailedResponse):
            assert "--interrupt_requests False" in answer.error
        else:
            assert answer == full[prompt]


CTRL_C_CHILD = """
import sys
from spacy_ner_project.components.models import OpenAICompatibleModel
OpenAICompatibleModel(base_url=sys.argv[1], model="m", timeout=60)([["long"]])
"""


def test_ctrl_c_stops_the_generation_in_flight(one_slot: OneSlotServer) -> None:
    one_slot.script("long", STALLED)
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, one_slot.base_url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=default_ctrl_c,
    )
    try:
        wait_for(lambda: bool(one_slot.generations) and one_slot.generations[0].tokens >= 5, 60)
        pressed = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and b"KeyboardInterrupt" in (child.stderr.read() if child.stderr else b"")
    wait_for(lambda: one_slot.generations[0].ended > 0, 5)
    (generation,) = one_slot.generations
    assert generation.cancelled and generation.ended - pressed < 1.0 + SLACK  # not the 2 s of the whole answer


# -- reading the events ----------------------------------------------------------------------------


def events(*chunks: Any) -> List[str]:
    """The lines of a stream of these chunks (dicts as JSON, strings as they are)."""
    lines: List[str] = [": ping - 2024-01-01"]
    for item in chunks:
        lines += [f"data: {json.dumps(item) if isinstance(item, dict) else item}", ""]
    return lines


def delta(content: Any = None, finish: Any = None) -> dict:
    return {"choices": [{"index": 0, "delta": {} if content is None else {"content": content}, "finish_reason": finish}]}


def test_the_events_are_read_up_to_done() -> None:
    lines = events({"choices": [{"delta": {"role": "assistant"}}]}, delta('{"PER"'), delta(': ["Sam"]}'),
                   delta(finish="stop"), "[DONE]", delta("ignored"))
    assert read_event_stream(lines, stop_repetition=8) == ChatAnswer('{"PER": ["Sam"]}')
    multi_line = ["event: message", "id: 1", "data: {\"choices\": [{\"delta\": {\"content\": \"a\"},", "data:  \"finish_reason\": \"stop\"}]}", ""]
    assert read_event_stream(multi_line, stop_repetition=0) == ChatAnswer("a")  # no [DONE]: the finish reason ends it


@pytest.mark.parametrize(
    "chunks,message",
    [((delta("a"), "[DONE]"), "ended before the answer was finished"),
     ((delta("a"),), "ended before the answer was finished"),
     (({"error": {"message": "out of memory"}},), "server returned an error: .*out of memory"),
     (("<html>",), "a streamed event is not JSON"),
     (({"object": "x"},), "a streamed chunk has no choices")],
    ids=["done-without-finish", "no-done", "error", "not-json", "no-choices"],
)
def test_a_broken_stream_is_a_retryable_error(chunks: Any, message: str) -> None:
    with pytest.raises(RequestError, match=message) as error:
        read_event_stream(events(*chunks), stop_repetition=8)
    assert error.value.retryable


def test_the_stop_rule_stops_reading() -> None:
    def endless() -> Iterator[str]:
        yield from events(delta('{"PER": ['))
        while True:
            yield from events(delta('"", '))

    answer = within(5, lambda: read_event_stream(endless(), stop_repetition=4))
    assert answer == ChatAnswer('{"PER": ["", "", "", ""', repetition_stop=True)
