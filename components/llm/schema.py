"""Structured output: the request fields that ask a server to answer in the entity JSON schema.

``spacy_ner_project.EntitySchema.v1`` (llm_misc) returns extra request fields for
``spacy_ner_project.OpenAICompatible.v1``'s ``structured_output``, which merges them into every
request (and into the cache key). The schema is the answer format JsonNER.v1 asks for: an
object with exactly the label keys, each a list of strings, all required, nothing else::

    [components.llm.model.structured_output]
    @llm_misc = "spacy_ner_project.EntitySchema.v1"
    labels = ["PER", "ORG", "LOC", "MISC"]
    style = "openai"

Styles, by server:

- ``"openai"``: ``{"response_format": {"type": "json_schema", "json_schema": {"name":
  "entities", "strict": true, "schema": ...}}}``: OpenAI, vLLM and llama.cpp's own server
  (``llama-server``).
- ``"llama-cpp-python"``: ``{"response_format": {"type": "json_object", "schema": ...}}``:
  the server of llama-cpp-python 0.3.x, which ignores the ``json_schema`` form.
- ``"ollama"``: ``{"format": schema}``: Ollama's OpenAI-compatible endpoint.
- ``"none"``: ``{}``: servers without structured output (the task's parser copes alone).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from spacy_llm.util import split_labels

Schema = Dict[str, Any]

SCHEMA_NAME = "entities"


def entity_json_schema(labels: List[str], *, max_items: Optional[int] = None, max_length: Optional[int] = None) -> Schema:
    """JSON schema of an answer: {label: [string, ...]} with exactly these labels, all required.

    ``max_items`` bounds each label's list and ``max_length`` each string (non-empty then:
    ``minLength`` 1), so that a grammar-constrained model cannot run on to ``max_tokens`` with
    repeated or empty strings; None leaves them unbounded (the v1 schema)."""
    if isinstance(labels, str) or not labels or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"labels must be a non-empty list of label names, e.g. [\"PER\", \"ORG\"]; got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must not repeat a label; got {labels!r}")
    for name, bound in (("max_items", max_items), ("max_length", max_length)):
        if bound is not None and (not isinstance(bound, int) or bound < 1):
            raise ValueError(f"{name} must be a whole number of 1 or more (or null: unbounded); got {bound!r}")
    item: Schema = {"type": "string"}
    if max_length is not None:
        item.update(minLength=1, maxLength=max_length)
    array: Schema = {"type": "array", "items": item}
    if max_items is not None:
        array["maxItems"] = max_items
    return {
        "type": "object",
        "properties": {label: dict(array) for label in labels},
        "required": list(labels),
        "additionalProperties": False,
    }


_STYLES: Mapping[str, Callable[[Schema], Dict[str, Any]]] = {
    "openai": lambda schema: {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
        }
    },
    "llama-cpp-python": lambda schema: {"response_format": {"type": "json_object", "schema": schema}},
    "ollama": lambda schema: {"format": schema},
    "none": lambda schema: {},
}

STYLES = tuple(_STYLES)
# the style of entity_schema_v1 when a config names none
DEFAULT_STYLE = "openai"


def structured_output_fields(
    labels: Union[List[str], str], *, style: str, max_items: Optional[int] = None, max_length: Optional[int] = None
) -> Dict[str, Any]:
    """The extra request fields that ask for answers in the entity schema, in a server's style.

    labels: a list, or a comma-separated string as JsonNER.v1 takes them.
    """
    if style not in _STYLES:
        raise ValueError(f"style must be one of {', '.join(map(repr, STYLES))}; got {style!r}")
    names = split_labels(labels) if isinstance(labels, str) else list(labels)
    return _STYLES[style](entity_json_schema(names, max_items=max_items, max_length=max_length))


def entity_schema_v1(
    labels: Union[List[str], str],
    style: str = DEFAULT_STYLE,
    max_items: Optional[int] = None,
    max_length: Optional[int] = None,
) -> Dict[str, Any]:
    """Registered as ``spacy_ner_project.EntitySchema.v1`` (llm_misc).

    labels (Union[List[str], str]): The answer's keys, e.g. ["PER", "ORG", "LOC", "MISC"] or
        "PER,ORG,LOC,MISC" (the task's labels: ``${llm.labels}`` in configs/llm_ner.cfg).
    style (str): "openai" (OpenAI, vLLM, llama.cpp's llama-server), "llama-cpp-python",
        "ollama", or "none" (no structured output).
    max_items (Optional[int]): At most this many strings per label (null: no bound).
    max_length (Optional[int]): Strings of 1 to this many characters (null: no bound).
    RETURNS (Dict[str, Any]): Request fields for OpenAICompatible.v1's ``structured_output``.
    """
    return structured_output_fields(labels, style=style, max_items=max_items, max_length=max_length)


# --- one label for one candidate span (the candidate NER task) ----------------------------------

LABEL_KEY = "label"


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal: backslash, double quote and control characters escaped
    (llama-cpp-python 0.3's JSON-schema converter escapes the quote but not the backslash, so a
    schema string holding either yields a grammar that does not compile; grammars made here do)."""
    escaped = "".join(_GBNF_ESCAPES.get(char, char) for char in text)
    return f'"{escaped}"'


_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def label_choice_schema(words: List[str]) -> Schema:
    """JSON schema of a one-label answer: ``{"label": <one of words>}``."""
    if not words or len(set(words)) != len(words) or not all(isinstance(word, str) and word for word in words):
        raise ValueError(f"the answer words must be distinct non-empty strings; got {words!r}")
    return {
        "type": "object",
        "properties": {LABEL_KEY: {"type": "string", "enum": list(words)}},
        "required": [LABEL_KEY],
        "additionalProperties": False,
    }


def label_choice_fields(words: List[str], *, style: str) -> Dict[str, Any]:
    """The request fields that make a server answer with exactly one of ``words``.

    ``"llama-cpp-python"`` gets a GBNF ``grammar`` whose answer is the bare word (two or three
    generated tokens instead of the seven more that ``{"label": "..."}`` costs; every generated
    token under a grammar is checked against the whole vocabulary, 262k tokens for Gemma 3); the
    other styles get the :func:`label_choice_schema` object in their form; ``"none"`` nothing.
    """
    if style not in _STYLES:
        raise ValueError(f"style must be one of {', '.join(map(repr, STYLES))}; got {style!r}")
    schema = label_choice_schema(words)
    if style == "llama-cpp-python":
        return {"grammar": "root ::= " + " | ".join(gbnf_literal(word) for word in words)}
    return _STYLES[style](schema)
