"""spacy_ner_project.OpenAICompatible.v1 against the local chat-completions server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any, List

import pytest
from chat_server import ChatServer, dictionary_responder, drop, fixed_responder, hang, http_error, malformed
from spacy_llm.registry import registry as llm_registry

from spacy_ner_project.components.models import FailedResponse, OpenAICompatibleModel, parse_chat_completion


def make_model(server: ChatServer, **overrides: Any) -> OpenAICompatibleModel:
    options: dict = dict(base_url=server.base_url, model="test-model", timeout=5.0, max_retries=2, backoff=0.01)
    options.update(overrides)
    return llm_registry.llm_models.get("spacy_ner_project.OpenAICompatible.v1")(**options)


def ask(model: OpenAICompatibleModel, *doc_prompts: List[str]) -> List[List[str]]:
    return [list(responses) for responses in model([list(prompts) for prompts in doc_prompts])]


def test_construction_contacts_no_host(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError(f"network access at construction: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    make_model(chat_server, base_url="https://api.openai.com/v1", api_key_env=None)
    make_model(chat_server)
    assert chat_server.requests == []


def test_answers_keep_doc_and_shard_order(chat_server: ChatServer) -> None:
    chat_server.responder = lambda prompt: prompt.upper()
    answers = ask(make_model(chat_server), ["a", "b"], [], ["c"])
    assert answers == [["A", "B"], [], ["C"]]


def test_request_is_chat_completion_with_params(chat_server: ChatServer) -> None:
    model = make_model(chat_server, config={"temperature": 0.0, "max_tokens": 64})
    ask(model, ["Find entities."])
    (request,) = chat_server.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.body == {
        "temperature": 0.0,
        "max_tokens": 64,
        "model": "test-model",
        "messages": [{"role": "user", "content": "Find entities."}],
        "stream": True,  # the default: this server ignores it and answers one JSON body
    }
    assert "authorization" not in {name.lower() for name in request.headers}


def test_only_base_url_is_contacted_even_with_proxy_env(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    chat_server.responder = fixed_responder("ok")
    assert ask(make_model(chat_server), ["x"], ["y"]) == [["ok"], ["ok"]]
    port = chat_server.base_url.split(":")[2].split("/")[0]
    assert {r.headers["Host"] for r in chat_server.requests} == {f"127.0.0.1:{port}"}
    assert {r.path for r in chat_server.requests} == {"/v1/chat/completions"}


def test_api_key_from_named_env_var(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNP_TEST_KEY", "sk-local-123")
    ask(make_model(chat_server, api_key_env="SNP_TEST_KEY"), ["x"])
    assert chat_server.requests[0].headers["Authorization"] == "Bearer sk-local-123"


def test_named_but_unset_api_key_env_is_a_clear_error(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNP_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match="SNP_MISSING_KEY.*not set"):
        make_model(chat_server, api_key_env="SNP_MISSING_KEY")


def test_requests_overlap_up_to_the_concurrency_limit(chat_server: ChatServer) -> None:
    chat_server.latency = 0.2
    model = make_model(chat_server, concurrency=4)
    start = time.monotonic()
    answers = ask(model, *[[f"prompt {i}"] for i in range(12)])
    elapsed = time.monotonic() - start
    assert len(answers) == 12 and len(chat_server.requests) == 12
    assert chat_server.max_in_flight == 4
    assert elapsed < 12 * 0.2 / 2  # sequential would take 2.4 s; 4 at a time about 0.6 s


def test_identical_prompts_in_one_call_are_sent_once(chat_server: ChatServer) -> None:
    chat_server.responder = lambda prompt: f"answer to {prompt}"
    model = make_model(chat_server)
    answers = ask(model, ["same", "other"], ["same"], ["same"])
    assert answers == [["answer to same", "answer to other"], ["answer to same"], ["answer to same"]]
    assert sorted(r.prompt for r in chat_server.requests) == ["other", "same"]
    assert model.stats.deduplicated == 2


@pytest.mark.parametrize(
    "fault",
    [http_error(500), http_error(502), http_error(503), http_error(429), malformed(), malformed('{"id": "x"}'), drop()],
    ids=["500", "502", "503", "429", "non-json", "no-choices", "dropped-connection"],
)
def test_transient_failures_are_retried(chat_server: ChatServer, fault: Any) -> None:
    chat_server.responder = fixed_responder("fine")
    chat_server.fail("flaky", fault, fault)
    model = make_model(chat_server, max_retries=2)
    assert ask(model, ["flaky"]) == [["fine"]]
    assert len(chat_server.requests) == 3
    assert model.stats.retries == 2


def test_timeout_is_retried(chat_server: ChatServer) -> None:
    chat_server.responder = fixed_responder("late but fine")
    chat_server.fail("slow", hang(1.0))
    model = make_model(chat_server, timeout=0.25, max_retries=1)
    assert ask(model, ["slow"]) == [["late but fine"]]
    assert len(chat_server.requests) == 2


def test_retry_after_is_honoured(chat_server: ChatServer) -> None:
    chat_server.fail("limited", http_error(429, retry_after="0.4"))
    model = make_model(chat_server, backoff=0.001)
    ask(model, ["limited"])
    first, second = chat_server.requests
    assert second.started - first.ended >= 0.35


def test_backoff_grows_exponentially(chat_server: ChatServer) -> None:
    chat_server.fail("flaky", http_error(503), http_error(503), http_error(503))
    model = make_model(chat_server, backoff=0.1, max_retries=3)
    ask(model, ["flaky"])
    gaps = [b.started - a.ended for a, b in zip(chat_server.requests, chat_server.requests[1:])]
    # waits are drawn from [b/2, b] with b = 0.1, 0.2, 0.4
    assert 0.05 <= gaps[0] < 0.2 and 0.1 <= gaps[1] < 0.35 and 0.2 <= gaps[2] < 0.6


def test_a_doc_whose_request_fails_gets_an_error_the_others_keep_results(chat_server: ChatServer) -> None:
    chat_server.responder = lambda prompt: f"entities of {prompt}"
    chat_server.fail("doomed", *[http_error(500)] * 3)
    model = make_model(chat_server, max_retries=2, concurrency=3)
    answers = ask(model, ["first"], ["doomed"], ["last", "shard two"])
    assert answers[0] == ["entities of first"] and answers[2] == ["entities of last", "entities of shard two"]
    (failed,) = answers[1]
    assert isinstance(failed, FailedResponse) and failed == ""
    assert "after 3 attempts" in failed.error and "HTTP 500" in failed.error and "/chat/completions" in failed.error
    assert model.stats.failures == 1


def test_malformed_body_that_never_heals_is_reported(chat_server: ChatServer) -> None:
    chat_server.fail("broken", *[malformed("<html>oops</html>")] * 2)
    (answer,), = ask(make_model(chat_server, max_retries=1), ["broken"])
    assert isinstance(answer, FailedResponse) and "not JSON" in answer.error and "oops" in answer.error


def test_client_errors_are_not_retried(chat_server: ChatServer) -> None:
    chat_server.fail("x", http_error(401))
    (answer,), = ask(make_model(chat_server), ["x"])
    assert isinstance(answer, FailedResponse) and "HTTP 401" in answer.error and "api_key_env" in answer.error
    assert len(chat_server.requests) == 1


def test_unreachable_server_fails_each_request_without_raising() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAICompatibleModel(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff=0.01)
    (answer,), = [list(r) for r in model([["hello"]])]
    assert isinstance(answer, FailedResponse) and f"cannot connect to http://127.0.0.1:{port}/v1" in answer.error


def test_works_when_called_inside_a_running_event_loop(chat_server: ChatServer) -> None:
    chat_server.responder = fixed_responder("from a loop")
    model = make_model(chat_server)

    async def notebook_cell() -> List[List[str]]:
        return ask(model, ["x"], ["y"])

    assert asyncio.run(notebook_cell()) == [["from a loop"], ["from a loop"]]


def test_failed_response_pickles_with_its_error() -> None:
    import pickle

    failed = pickle.loads(pickle.dumps(FailedResponse("boom")))
    assert isinstance(failed, FailedResponse) and failed.error == "boom" and str(failed) == ""


def test_parse_chat_completion_reads_message_content() -> None:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": '{"PER": ["Sam"]}'}}]})
    assert parse_chat_completion(body) == '{"PER": ["Sam"]}'


def test_invalid_options_are_rejected(chat_server: ChatServer) -> None:
    with pytest.raises(ValueError, match="http"):
        make_model(chat_server, base_url="localhost:11434/v1")
    with pytest.raises(ValueError, match="concurrency"):
        make_model(chat_server, concurrency=0)


def test_runs_inside_a_spacy_llm_pipeline(chat_server: ChatServer) -> None:
    import spacy

    chat_server.responder = dictionary_responder({"Paris": "LOC"})
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "llm",
        config={
            "task": {"@llm_tasks": "spacy.NoOp.v1"},
            "model": {
                "@llm_models": "spacy_ner_project.OpenAICompatible.v1",
                "base_url": chat_server.base_url,
                "model": "test-model",
                "context_length": 4096,
            },
            "save_io": True,
        },
    )
    docs = list(nlp.pipe(["Sam flew to Paris.", "Nothing here."], batch_size=2))
    assert len(chat_server.requests) == 1  # NoOp's prompt is the same for both docs
    assert all(doc.user_data["llm_io"]["llm"]["response"] == ["{}"] for doc in docs)


def test_registered_defaults_are_the_class_constants() -> None:
    import inspect

    from spacy_ner_project.components.models import openai_compatible_v1

    constants = {
        "api_key_env": OpenAICompatibleModel.DEFAULT_API_KEY_ENV,
        "timeout": OpenAICompatibleModel.DEFAULT_TIMEOUT,
        "max_retries": OpenAICompatibleModel.DEFAULT_MAX_RETRIES,
        "concurrency": OpenAICompatibleModel.DEFAULT_CONCURRENCY,
        "config": OpenAICompatibleModel.DEFAULT_CONFIG,
        "context_length": OpenAICompatibleModel.DEFAULT_CONTEXT_LENGTH,
        "backoff": OpenAICompatibleModel.DEFAULT_BACKOFF,
        "max_backoff": OpenAICompatibleModel.DEFAULT_MAX_BACKOFF,
        "max_retry_wait": OpenAICompatibleModel.DEFAULT_MAX_RETRY_WAIT,
        "structured_output": OpenAICompatibleModel.DEFAULT_STRUCTURED_OUTPUT,
        "cache_namespace": OpenAICompatibleModel.DEFAULT_CACHE_NAMESPACE,
        "cache": None,
        "cache_check": None,
        "stream": OpenAICompatibleModel.DEFAULT_STREAM,
        "stop_repetition": OpenAICompatibleModel.DEFAULT_STOP_REPETITION,
    }
    for function in (openai_compatible_v1, OpenAICompatibleModel.__init__):
        parameters = inspect.signature(function).parameters
        defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
        assert defaults == constants, function.__qualname__
    assert dict(OpenAICompatibleModel.DEFAULT_CONFIG) == {"temperature": 0.0, "seed": 0}


def test_the_class_default_config_is_sent(chat_server: ChatServer) -> None:
    ask(OpenAICompatibleModel(base_url=chat_server.base_url, model="m"), ["x"])
    assert chat_server.requests[0].body["temperature"] == 0.0 and chat_server.requests[0].body["seed"] == 0


def test_structured_output_is_merged_into_every_request(chat_server: ChatServer) -> None:
    schema = {"response_format": {"type": "json_object", "schema": {"type": "object"}}}
    model = make_model(chat_server, config={"max_tokens": 64}, structured_output=schema)
    ask(model, ["a"], ["b"])
    for request in chat_server.requests:
        assert request.body["response_format"] == schema["response_format"] and request.body["max_tokens"] == 64
    with pytest.raises(ValueError, match="both set response_format"):
        make_model(chat_server, config={"response_format": {"type": "text"}}, structured_output=schema)


def test_on_progress_sees_each_finished_request(chat_server: ChatServer) -> None:
    chat_server.fail("bad", http_error(401))
    model = make_model(chat_server, concurrency=2)
    seen: List[Any] = []
    model.on_progress = seen.append
    ask(model, ["a"], ["b"], ["bad"], ["a"])
    assert len(seen) == 3 and sorted(s.done for s in seen) == [1, 2, 3]
    last = max(seen, key=lambda s: s.done)
    assert (last.answered, last.failures, last.prompts) == (2, 1, 4)
    assert seen[0] is not model.stats  # a snapshot, not the live counters


def test_responses_carry_the_seconds_their_request_took(chat_server: ChatServer, tmp_path: Any) -> None:
    from spacy_ner_project.components.cache import ResponseCache
    from spacy_ner_project.components.models import CachedModel, ModelResponse

    chat_server.latency = 0.1
    chat_server.fail("bad", http_error(401))
    model = make_model(chat_server, cache=ResponseCache(tmp_path / "c.sqlite"))
    (answer,), (failed,) = ask(model, ["good"], ["bad"])
    assert isinstance(answer, ModelResponse) and answer == "{}" and answer.elapsed_s is not None and answer.elapsed_s >= 0.1
    assert isinstance(failed, FailedResponse) and failed.elapsed_s is not None and failed.elapsed_s >= 0.1
    ((cached,),) = ask(model, ["good"])
    assert isinstance(cached, ModelResponse) and cached == "{}" and cached.elapsed_s is None  # from the cache

    wrapped = CachedModel(model=lambda prompts: [[p.upper() for p in doc] for doc in prompts], cache=model.cache, model_id="upper")
    ((first,),) = [list(r) for r in wrapped([["x"]])]
    ((again,),) = [list(r) for r in wrapped([["x"]])]
    assert first == again == "X" and first.elapsed_s is not None and again.elapsed_s is None
