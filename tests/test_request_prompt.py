"""Prompts with request fields of their own (RequestPrompt): merged into their request, part of
their identity (deduplication, cache key) in OpenAICompatible.v1 and CachedModel alike."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, List

import pytest
from chat_server import ChatServer

from spacy_ner_project.components.cache import ResponseCache, cache_key
from spacy_ner_project.components.models import CachedModel, OpenAICompatibleModel, RequestPrompt

GRAMMAR_A = {"grammar": 'root ::= "A"'}
GRAMMAR_B = {"grammar": 'root ::= "B"'}


def model(server: ChatServer, **options: Any) -> OpenAICompatibleModel:
    """One request at a time: the responder reads the request in flight."""
    return OpenAICompatibleModel(base_url=server.base_url, model="m", backoff=0.01, concurrency=1, **options)


def ask(any_model: Any, *doc_prompts: List[str]) -> List[List[str]]:
    return [list(responses) for responses in any_model([list(prompts) for prompts in doc_prompts])]


def answer_with_the_grammar(server: ChatServer) -> None:
    """The server answers with the prompt and the grammar it was sent (one request at a time)."""
    server.responder = lambda prompt: f"{prompt}/{server.requests[-1].body.get('grammar')}"


def test_request_fields_are_read_only_copies() -> None:
    fields = {"grammar": "g", "response_format": {"type": "json_object", "enum": ["a"]}}
    prompt = RequestPrompt("text", request_fields=fields)
    fields["grammar"] = "changed"
    assert prompt == RequestPrompt("text", request_fields={"response_format": {"enum": ["a"], "type": "json_object"}, "grammar": "g"})
    with pytest.raises(TypeError):
        prompt.request_fields["grammar"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        prompt.request_fields["response_format"]["type"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        prompt.request_fields = {}  # type: ignore[misc]
    assert prompt.request_fields["response_format"]["enum"] == ("a",)
    assert str(prompt) == "text" and type(str(prompt)) is str and prompt.upper() == "TEXT"


def test_identity_is_text_and_fields() -> None:
    a, b = RequestPrompt("p", request_fields=GRAMMAR_A), RequestPrompt("p", request_fields=GRAMMAR_B)
    assert a != b and a != "p" and "p" != a and len({a, b, "p", RequestPrompt("p")}) == 3
    assert RequestPrompt("p") == "p" and hash(RequestPrompt("p")) == hash("p")
    assert a == RequestPrompt("p", request_fields=dict(GRAMMAR_A)) and hash(a) == hash(RequestPrompt("p", request_fields=GRAMMAR_A))


@pytest.mark.parametrize(
    "fields,message", [({"x": object()}, "request_fields must be JSON"), ({1: "x"}, "a mapping with string keys")]
)
def test_fields_that_are_no_json_are_refused(fields: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RequestPrompt("p", request_fields=fields)


def test_fields_are_merged_last_and_prompts_deduplicated_by_text_and_fields(chat_server: ChatServer) -> None:
    answer_with_the_grammar(chat_server)
    a, b = RequestPrompt("p", request_fields=GRAMMAR_A), RequestPrompt("p", request_fields=GRAMMAR_B)
    answers = ask(model(chat_server, structured_output={"grammar": "root ::= config"}), [a, b], [a, "p"], [RequestPrompt("p")])
    assert answers == [['p/root ::= "A"', 'p/root ::= "B"'], ['p/root ::= "A"', "p/root ::= config"], ["p/root ::= config"]]
    assert len(chat_server.chat_requests) == 3  # a, b and "p" (a RequestPrompt without fields is "p")
    assert all(request.body["messages"] == [{"role": "user", "content": "p"}] for request in chat_server.chat_requests)


def test_fields_the_model_sets_itself_are_refused_before_anything_is_sent(chat_server: ChatServer) -> None:
    with pytest.raises(ValueError, match="request_fields set model, which the model sets itself"):
        ask(model(chat_server), ["fine", RequestPrompt("p", request_fields={"model": "other"})])
    assert chat_server.chat_requests == []


def test_the_cache_keys_prompts_by_text_and_fields(chat_server: ChatServer, tmp_path: Path) -> None:
    answer_with_the_grammar(chat_server)
    cache = ResponseCache(tmp_path / "c.sqlite")
    a, b = RequestPrompt("p", request_fields=GRAMMAR_A), RequestPrompt("p", request_fields=GRAMMAR_B)
    first = model(chat_server, cache=cache)
    assert ask(first, ["p"]) == [["p/None"]]
    assert ask(first, [a]) == [['p/root ::= "A"']]  # not the plain prompt's cached answer
    rerun = model(chat_server, cache=cache)
    assert ask(rerun, [a, "p", b]) == [['p/root ::= "A"', "p/None", 'p/root ::= "B"']]
    assert rerun.stats.cache_hits == 2 and len(chat_server.chat_requests) == 3 and len(cache) == 3
    # a plain prompt's key is what it always was: SHA-256 of the model id, NUL, the prompt
    assert cache_key(rerun.model_id, "p") == hashlib.sha256(f"{rerun.model_id}\x00p".encode()).hexdigest()
    assert cache_key(rerun.model_id, RequestPrompt("p")) == cache_key(rerun.model_id, "p") != cache_key(rerun.model_id, a)


class FieldsEcho:
    """A stand-in for any spacy-llm model: answers with each prompt's grammar, keeps what it got."""

    def __init__(self) -> None:
        self.seen: List[str] = []

    def __call__(self, prompts: Any) -> Any:
        batch = [list(doc) for doc in prompts]
        self.seen += [prompt for doc in batch for prompt in doc]
        return [[f"{p}/{getattr(p, 'request_fields', {}).get('grammar')}" for p in doc] for doc in batch]


def test_cached_model_keys_them_the_same_and_hands_them_on_unchanged(tmp_path: Path) -> None:
    inner = FieldsEcho()
    cache = ResponseCache(tmp_path / "c.sqlite")
    a, b = RequestPrompt("p", request_fields=GRAMMAR_A), RequestPrompt("p", request_fields=GRAMMAR_B)
    wrapped = CachedModel(model=inner, cache=cache, model_id="echo")
    assert ask(wrapped, [a, b, a], ["p"]) == [['p/root ::= "A"', 'p/root ::= "B"', 'p/root ::= "A"'], ["p/None"]]
    assert inner.seen == [a, b, "p"] and isinstance(inner.seen[0], RequestPrompt)
    assert inner.seen[0].request_fields == GRAMMAR_A
    again = CachedModel(model=inner, cache=cache, model_id="echo")
    assert ask(again, [b, a, "p"]) == [['p/root ::= "B"', 'p/root ::= "A"', "p/None"]]
    assert len(inner.seen) == 3 and again.stats.cache_hits == 3
