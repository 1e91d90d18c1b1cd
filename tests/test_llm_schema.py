"""spacy_ner_project.EntitySchema.v1: the request fields that ask for the entity JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import jsonschema
import pytest
from chat_server import ChatServer
from spacy_llm.registry import registry as llm_registry
from thinc.api import Config

from spacy_ner_project.components.llm.schema import entity_json_schema

LABELS = ["PER", "ORG", "LOC", "MISC"]


def entity_schema(**options: Any) -> Dict[str, Any]:
    return llm_registry.llm_misc.get("spacy_ner_project.EntitySchema.v1")(**options)


def test_the_schema_takes_exactly_the_labels_as_lists_of_strings() -> None:
    schema = entity_json_schema(LABELS)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"PER": ["Sam"], "ORG": [], "LOC": ["Paris"], "MISC": []})
    assert not validator.is_valid({"PER": ["Sam"], "ORG": [], "LOC": []})  # a label missing
    assert not validator.is_valid({"PER": [], "ORG": [], "LOC": [], "MISC": [], "DATE": []})  # another key
    assert not validator.is_valid({"PER": "Sam", "ORG": [], "LOC": [], "MISC": []})  # not a list
    assert not validator.is_valid({"PER": [1], "ORG": [], "LOC": [], "MISC": []})  # not strings


def test_styles() -> None:
    schema = entity_json_schema(LABELS)
    assert entity_schema(labels=LABELS) == {
        "response_format": {"type": "json_schema", "json_schema": {"name": "entities", "strict": True, "schema": schema}}
    }
    assert entity_schema(labels=LABELS, style="llama-cpp-python") == {
        "response_format": {"type": "json_object", "schema": schema}
    }
    assert entity_schema(labels=LABELS, style="ollama") == {"format": schema}
    assert entity_schema(labels=LABELS, style="none") == {}
    assert entity_schema(labels="PER, ORG,LOC,MISC") == entity_schema(labels=LABELS)  # as JsonNER.v1 takes them


@pytest.mark.parametrize(
    "options, message",
    [
        ({"labels": LABELS, "style": "vllm"}, "style must be one of 'openai', 'llama-cpp-python', 'ollama', 'none'; got 'vllm'"),
        ({"labels": []}, "labels must be a non-empty list"),
        ({"labels": ["PER", ""]}, "labels must be a non-empty list"),
        ({"labels": ["PER", "PER"]}, "must not repeat"),
    ],
)
def test_bad_options_are_one_line_errors(options: Dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        entity_schema(**options)


def test_a_config_sends_the_schema_with_every_request(chat_server: ChatServer, tmp_path: Path) -> None:
    config = Config().from_str(
        f"""
        [model]
        @llm_models = "spacy_ner_project.OpenAICompatible.v1"
        base_url = "{chat_server.base_url}"
        model = "test-model"

        [model.structured_output]
        @llm_misc = "spacy_ner_project.EntitySchema.v1"
        labels = ["PER", "ORG", "LOC", "MISC"]
        style = "ollama"
        """
    )
    model = llm_registry.resolve(config)["model"]
    list(model([["Find the entities."]]))
    (request,) = chat_server.chat_requests
    assert request.body["format"] == entity_json_schema(LABELS) and request.body["temperature"] == 0.0


def test_bounded_schema_refuses_runaway_answers() -> None:
    """max_items / max_length (configs/llm_ner.cfg sets them): no list of empty or endless strings."""

    schema = entity_json_schema(["PER", "LOC"], max_items=3, max_length=10)
    jsonschema.validate({"PER": ["Ann Lee"], "LOC": []}, schema)
    for runaway in ({"PER": ["", ""], "LOC": []}, {"PER": ["a", "b", "c", "d"], "LOC": []}, {"PER": ["x" * 11], "LOC": []}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(runaway, schema)
    assert "maxItems" not in json.dumps(entity_json_schema(["PER"]))  # unbounded unless asked: the v1 schema
    with pytest.raises(ValueError, match="max_items must be a whole number"):
        entity_json_schema(["PER"], max_items=0)
