"""Streaming, cancelling and reproducibility against the real local server (the [local-llm]
extra: llama-cpp-python's server with Gemma 3 270M, started by the launcher). Skipped when the
extra or the model package is not installed. Run with ``-s`` to see the timings."""

from __future__ import annotations

import time
from typing import Any, Iterator, List, Tuple

import httpx
import pytest
from local_llm import local_llm_marks

from spacy_ner_project.components.models import FailedResponse, OpenAICompatibleModel
from spacy_ner_project.llm.server import LocalLLMServer, ServerSettings

MODEL = "gemma3-270m"
# a base model continues a count for as long as it may: a long generation on purpose
COUNT = "Count: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
SHORT = "The capital of France is"
PROMPTS = [
    "Text: Maria Lopez flew from Lisbon to Nairobi.\nPeople:",
    "Text: Shares of Northwind Bank fell on Tuesday.\nCompanies:",
    "Text: Ravi Patel joined Globex in Osaka.\nPlaces:",
    "The largest city in Japan is",
    "A list of European capitals: Paris, Berlin,",
]


pytestmark = local_llm_marks(MODEL)


def start() -> LocalLLMServer:
    return LocalLLMServer(ServerSettings(model=MODEL, startup_timeout=180.0))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalLLMServer]:
    with start() as running:
        yield running


def model(server: LocalLLMServer, *, max_tokens: int, **options: Any) -> OpenAICompatibleModel:
    config = {**OpenAICompatibleModel.DEFAULT_CONFIG, "max_tokens": max_tokens}
    return OpenAICompatibleModel(base_url=server.base_url, model=MODEL, config=config, max_retries=0, **options)


def ask(any_model: OpenAICompatibleModel, prompts: List[str]) -> List[str]:
    return [list(responses)[0] for responses in any_model([[prompt] for prompt in prompts])]


def timed(any_model: OpenAICompatibleModel, prompt: str) -> Tuple[float, str]:
    start_time = time.monotonic()
    (answer,) = ask(any_model, [prompt])
    return time.monotonic() - start_time, answer


def test_a_streamed_answer_is_the_whole_answer_and_a_runaway_is_cut(server: LocalLLMServer) -> None:
    listed = httpx.get(f"{server.base_url}/models", trust_env=False).json()["data"][0]["id"]
    assert listed == server.alias and listed.startswith(f"{MODEL}@sha256:") and listed.endswith("+passthrough")
    streamed = model(server, max_tokens=24)
    answers = ask(streamed, PROMPTS[:3])
    assert all(answers) and streamed.stats.answered == 3 and streamed.stats.failures == 0
    assert ask(model(server, max_tokens=24, stream=False), PROMPTS[:3]) == answers  # the same text either way
    short = model(server, max_tokens=8, stream=False)
    alone, _ = timed(short, SHORT)
    runaway = model(server, max_tokens=200)
    seconds, answer = timed(runaway, "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,")
    after, _ = timed(short, SHORT)  # the stream was closed: the server stopped that generation
    print(f"\nrunaway cut after {seconds:.2f} s: {answer!r}; a short answer alone {alone:.2f} s, right after {after:.2f} s")
    assert runaway.stats.repetition_stops == 1 and len(answer) < 60 and after < 3 * alone + 1.0


def test_a_request_given_up_on_frees_the_server_at_once(server: LocalLLMServer) -> None:
    """Through the model class: an attempt that passes its deadline while the server generates
    a long answer. Streamed, the next request is answered in about its own time; not streamed
    (the contrast), it waits for the abandoned answer to be finished."""
    short = model(server, max_tokens=8, stream=False)
    alone, expected = timed(short, SHORT)
    results = {}
    for stream in (True, False):
        abandoned = model(server, max_tokens=300, timeout=1.0, stream=stream)
        (failed,) = ask(abandoned, [COUNT])
        assert isinstance(failed, FailedResponse) and "timed out" in failed.error
        results[stream] = timed(short, SHORT)
        assert results[stream][1] == expected
    (after_stream, _), (after_plain, _) = results[True], results[False]
    print(f"\nshort answer alone {alone:.2f} s; after a cancelled stream {after_stream:.2f} s; "
          f"after an abandoned non-streamed answer {after_plain:.2f} s")
    assert after_stream < 3 * alone + 1.0
    assert after_plain > after_stream + 1.0  # why streaming is the default


def test_two_cold_runs_give_the_same_answers() -> None:
    """Temperature 0 and a fixed seed (the model's defaults): a fresh server, twice."""
    runs = []
    for _ in range(2):
        with start() as fresh:
            runs.append(ask(model(fresh, max_tokens=24, concurrency=2), PROMPTS))
    print(f"\nanswers: {runs[0]}")
    assert all(runs[0]) and runs[0] == runs[1]
