"""The LLM model's settings (ModelSettings): validation, normalisation, request and identity."""

from __future__ import annotations

import dataclasses

import pytest

from spacy_ner_project.components.model_settings import ModelDefaults, ModelSettings


def settings(**overrides: object) -> ModelSettings:
    options: dict = dict(base_url="http://localhost:11434/v1/", model="m")
    options.update(overrides)
    return ModelSettings(**options)


def test_defaults_are_the_class_constants_and_suit_a_one_slot_local_server() -> None:
    made = settings()
    assert (made.concurrency, made.timeout, made.max_retries, made.max_retry_wait) == (2, 300.0, 2, 30.0)
    assert made.config == ModelDefaults.DEFAULT_CONFIG == {"temperature": 0.0, "seed": 0}  # the same answers every run
    assert made.cache_namespace == "" and made.api_key_env is None and made.context_length is None
    assert made.stream is ModelDefaults.DEFAULT_STREAM is True
    assert made.stop_repetition == ModelDefaults.DEFAULT_STOP_REPETITION == 8


def test_values_are_normalised_and_frozen() -> None:
    made = settings(timeout=60, concurrency=4.0, config={"max_tokens": 8})
    assert made.base_url == "http://localhost:11434/v1" and made.endpoint == "http://localhost:11434/v1/chat/completions"
    assert made.timeout == 60.0 and isinstance(made.timeout, float) and made.concurrency == 4 and isinstance(made.concurrency, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.timeout = 1.0  # type: ignore[misc]
    with pytest.raises(NotImplementedError):
        made.config["max_tokens"] = 9  # type: ignore[index]


def test_each_bad_value_is_one_line_of_the_error() -> None:
    with pytest.raises(ValueError) as error:
        settings(base_url="localhost:11434", concurrency=0, timeout=0, max_retries=-1, max_retry_wait=-1, context_length=0)
    lines = str(error.value).splitlines()
    assert lines == [
        "base_url must start with http:// or https://, got 'localhost:11434' "
        "(e.g. http://localhost:11434/v1 for Ollama, https://api.openai.com/v1)",
        "max_retries must be at least 0, got -1",
        "concurrency must be at least 1, got 0",
        "context_length must be at least 1, got 0",
        "max_retry_wait must be at least 0, got -1",
        "timeout must be more than 0, got 0",
    ]


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"model": ""}, "model must name the model to query"),
        ({"config": {"model": "x"}}, "config holds request parameters only"),
        ({"structured_output": {"messages": []}}, "structured_output holds request parameters only"),
        ({"config": {"format": "json"}, "structured_output": {"format": {}}}, "config and structured_output both set format"),
    ],
)
def test_request_fields_the_model_owns_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**overrides)


def test_payload_and_identity() -> None:
    made = settings(config={"max_tokens": 8}, structured_output={"format": {"type": "object"}}, cache_namespace="t")
    assert made.payload("hi") == {
        "max_tokens": 8,
        "format": {"type": "object"},
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    assert "stream" not in settings(stream=False).payload("hi")
    # where the server listens is no part of the identity; whether it streams neither
    assert made.identity() == {
        "protocol": "openai-chat-completions",
        "model": "m",
        "params": {"max_tokens": 8},
        "structured_output": {"format": {"type": "object"}},
        "stop_repetition": 8,
        "namespace": "t",
    }
    assert settings(base_url="http://127.0.0.1:1234/v1").identity() == settings(base_url="http://10.0.0.1:99/v1").identity()
    assert settings(stream=False).identity() == settings().identity() != settings(stop_repetition=0).identity()


def test_a_prompts_request_fields_come_last_and_win() -> None:
    from spacy_ner_project.components.models import RequestPrompt

    made = settings(config={"max_tokens": 8, "temperature": 0.0}, structured_output={"grammar": "root ::= x"})
    prompt = RequestPrompt("hi", request_fields={"grammar": "root ::= y", "max_tokens": 4})
    body = made.payload(prompt)
    assert body["grammar"] == "root ::= y" and body["max_tokens"] == 4 and body["temperature"] == 0.0
    assert body["messages"] == [{"role": "user", "content": "hi"}] and type(body["messages"][0]["content"]) is str
    with pytest.raises(ValueError, match="request_fields set messages, stream, which the model sets itself"):
        made.payload(RequestPrompt("hi", request_fields={"stream": False, "messages": []}))


@pytest.mark.parametrize(
    "overrides,message",
    [({"stop_repetition": 1}, "stop_repetition must be 0 (off) or at least 2"),
     ({"stop_repetition": -1}, "stop_repetition must be at least 0, got -1"),
     ({"stream": "yes"}, "stream must be true or false, got 'yes'")],
)
def test_stream_and_stop_rule_values_are_checked(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(**overrides)
