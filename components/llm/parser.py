"""Parse an LLM's JSON entity answer, whatever it is wrapped in.

``json_repair`` turns the raw response into Python values: it strips Markdown fences and prose,
accepts single quotes and trailing commas, and closes truncated output. When the response holds
several JSON values (an echoed prompt with its format line and examples, then the answer),
json_repair returns them as a list, and the answer is the LAST value that looks like one.

Two answer shapes are understood:

* the label dict the prompt asks for: ``{"PER": ["Sam"], "ORG": [], ...}`` (a value may also be
  a single string, or a list of ``{"text": ...}`` objects), possibly wrapped in a key such as
  ``{"entities": {...}}``;
* a list of entity objects: ``[{"text": "Sam", "label": "PER"}, ...]`` (also ``entity``/``name``
  for the text, ``type``/``entity_type``/``category`` for the label).

A response that contains a document tag of the json_ner.v2 prompt (``<document-ID>`` or
``</document-ID>``) repeats the prompt: only what follows the last closing tag can be the answer
(so the examples' answers and the format line of an echoed prompt are never taken for it), and
a response whose last tag opens a document has none.

Label names go through a label map (PERSON/Person/per -> PER, ORGANIZATION -> ORG, GPE -> LOC,
MISCELLANEOUS -> MISC ...) and are then matched case-insensitively against the task's labels.
Labels that still match nothing are returned as ``unknown`` with their strings, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import json_repair

from spacy_ner_project.components.models import FailedResponse
from spacy_ner_project.llm.record import LLMStatus, failed_request_error

from .prompt import DOCUMENT_TAG_RE

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc

    from .task import JsonNERTask

DEFAULT_LABEL_MAP: Dict[str, str] = {
    "PERSON": "PER",
    "PERSONS": "PER",
    "PEOPLE": "PER",
    "PER": "PER",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "ORGANIZATIONS": "ORG",
    "ORGANISATIONS": "ORG",
    "ORG": "ORG",
    "LOCATION": "LOC",
    "LOCATIONS": "LOC",
    "GPE": "LOC",
    "LOC": "LOC",
    "MISCELLANEOUS": "MISC",
    "MISC": "MISC",
}
_TEXT_KEYS = ("text", "entity", "name", "span", "value", "mention")
_LABEL_KEYS = ("label", "type", "entity_type", "category", "tag", "entity_label")
_WRAPPER_KEYS = ("entities", "named_entities", "ents", "result", "results", "answer", "output")


@dataclass
class ParsedAnswer:
    """Entities parsed from one response (one shard's answer: a ``record.ShardAnswer``).

    entities: (task label, string) pairs in the order given.
    unknown: (label as written by the LLM, string) pairs whose label maps to no task label.
    labels_answered: task labels the answer has (a key, or an entity object's label), in
        first-seen order, also those with no strings (``{"PER": []}`` answers PER).
    error: why nothing could be parsed (None when an answer was found, even an empty one).
    status: OK; UNPARSEABLE with an error; FAILED when the request finally failed.
    answer: the raw response text (None when the request finally failed or gave no text);
        ``parse_json_responses`` sets it.
    elapsed_s: seconds the request took, when the model says (``response.elapsed_s``).
    """

    entities: List[Tuple[str, str]] = field(default_factory=list)
    unknown: List[Tuple[str, str]] = field(default_factory=list)
    labels_answered: List[str] = field(default_factory=list)
    error: Optional[str] = None
    status: LLMStatus = LLMStatus.OK
    answer: Optional[str] = None
    elapsed_s: Optional[float] = None


def _unparseable(error: str) -> ParsedAnswer:
    return ParsedAnswer(error=error, status=LLMStatus.UNPARSEABLE)


def _key(label: str) -> str:
    return "".join(label.split()).replace("-", "_").upper()


class LabelNormalizer:
    """Maps labels written by the LLM to task labels; build once, call often.

    A call returns the task label for a label written by the LLM, or None if it has none: the
    label map is looked up ignoring case and whitespace (a hyphen reads as an underscore); its
    target, or the raw label itself, must then equal one of ``labels`` the same way.
    """

    def __init__(self, *, labels: Sequence[str], label_map: Mapping[str, str]) -> None:
        self._by_key = {_key(label): label for label in labels}
        self._mapped = {_key(k): _key(v) for k, v in label_map.items()}

    def __call__(self, raw: str) -> Optional[str]:
        key = _key(raw)
        mapped = self._mapped.get(key)
        if mapped is not None and mapped in self._by_key:
            return self._by_key[mapped]
        return self._by_key.get(key)


def _entity_object(value: Any) -> Optional[Tuple[str, Any]]:
    """(label, text) of an object like {"text": "Sam", "label": "PER"}; None otherwise."""
    if not isinstance(value, dict):
        return None
    keys = {str(k).lower(): v for k, v in value.items()}
    text = next((keys[k] for k in _TEXT_KEYS if k in keys), None)
    label = next((keys[k] for k in _LABEL_KEYS if k in keys), None)
    if isinstance(label, str) and text is not None:
        return label, text
    return None


def _is_partial_object(value: Any) -> bool:
    """An entity object cut short by truncated output, e.g. {"text": "IB"}: it is skipped."""
    return (
        isinstance(value, dict)
        and bool(value)
        and {str(k).lower() for k in value} <= set(_TEXT_KEYS + _LABEL_KEYS)
        and _entity_object(value) is None
    )


def _is_label_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and _entity_object(value) is None
        and not _is_partial_object(value)
        and all(isinstance(v, (list, str)) or v is None for v in value.values())
    )


def _unwrap(value: Any) -> Any:
    """{"entities": X} -> X (repeatedly) when X is an answer."""
    while isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if str(key).lower() in _WRAPPER_KEYS and isinstance(inner, (dict, list)):
            value = inner
        else:
            break
    return value


def _as_answer(value: Any) -> Optional[List[Tuple[str, Any]]]:
    """(raw label, value) pairs if ``value`` is an answer on its own, else None."""
    value = _unwrap(value)
    if _is_label_dict(value):
        return [(str(label), v) for label, v in value.items()]
    single = _entity_object(value)
    if single is not None:
        return [single]
    if isinstance(value, list):
        objects = [_entity_object(v) for v in value if not _is_partial_object(v)]
        if all(obj is not None for obj in objects):
            return objects  # type: ignore[return-value]
    return None


def _last_answer(value: Any) -> Optional[List[Tuple[str, Any]]]:
    """The answer in json_repair's output: the whole value, or the last answer among several."""
    whole = _as_answer(value)
    if whole is not None or not isinstance(value, list):
        return whole
    # several top-level values: a trailing run of entity objects is one list-of-objects answer
    tail: List[Tuple[str, Any]] = []
    for item in reversed(value):
        if _is_partial_object(item):
            continue
        obj = _entity_object(item)
        if obj is None:
            break
        tail.insert(0, obj)
    if tail:
        return tail
    for item in reversed(value):
        answer = _as_answer(item)
        if answer is not None:
            return answer
    return None


def _strings(value: Any) -> List[str]:
    """Entity strings in a label's value: a list of strings/objects, or one string."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            obj = {str(k).lower(): v for k, v in item.items()}
            item = next((obj[k] for k in _TEXT_KEYS if k in obj), None)
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if isinstance(item, str) and item.strip():
            out.append(item)
    return out


def parse_answer(response: str, *, labels: Sequence[str], label_map: Mapping[str, str]) -> ParsedAnswer:
    """Entities in one LLM response (see the module docstring for what is accepted)."""
    if not response or not response.strip():
        return _unparseable("empty response")
    last_tag = None
    for last_tag in DOCUMENT_TAG_RE.finditer(response):
        pass
    if last_tag is not None:
        if not last_tag.group(1):
            return _unparseable("the response repeats the prompt and stops inside a document")
        response = response[last_tag.end() :]
        if response.strip() in ("", "Answer:"):
            return _unparseable("the response repeats the prompt and has no answer after its last document")
    try:
        value = json_repair.repair_json(response, return_objects=True)
    except Exception as err:  # json_repair is lenient; anything it raises means "unparseable"
        return _unparseable(f"could not parse the response as JSON ({type(err).__name__}: {err})")
    answer = _last_answer(value)
    if answer is None:
        snippet = " ".join(response.split())[:120]
        return _unparseable(f"no JSON entity answer in the response: {snippet!r}")
    parsed = ParsedAnswer()
    to_task_label = LabelNormalizer(labels=labels, label_map=label_map)
    for raw_label, raw_value in answer:
        label = to_task_label(raw_label)
        if label is not None and label not in parsed.labels_answered:
            parsed.labels_answered.append(label)
        for string in _strings(raw_value):
            if label is None:
                parsed.unknown.append((raw_label, string))
            else:
                parsed.entities.append((label, string))
    return parsed


def is_usable_answer(response: str, *, labels: Sequence[str], label_map: Mapping[str, str]) -> bool:
    """Whether ``response`` yields an entity list for ``labels`` (worth caching, see models' cache_check).

    True when ``parse_answer`` finds an answer that has at least one task label, even with no
    entities (``{"PER": [], "ORG": []}``). False for an empty response, prose without JSON, an
    echoed json_ner.v2 prompt without an answer after it, and JSON without any task label
    (``{}``, ``[]``, ``{"FOOD": [...]}`` when FOOD maps to no label): asking again may help.
    """
    parsed = parse_answer(response, labels=labels, label_map=label_map)
    return parsed.error is None and bool(parsed.labels_answered)


def parse_json_responses(
    task: "JsonNERTask", shards: Iterable[Iterable["Doc"]], responses: Iterable[Iterable[Any]]
) -> Iterable[List[ParsedAnswer]]:
    """spacy-llm TaskResponseParser: per doc, one ParsedAnswer per shard response."""
    for _shards, doc_responses in zip(shards, responses):
        yield [parse_response(response, labels=task.labels, label_map=task.label_map) for response in doc_responses]


def parse_response(response: Any, *, labels: Sequence[str], label_map: Mapping[str, str]) -> ParsedAnswer:
    """One model response as a ParsedAnswer with its status, raw answer and request time.

    A :class:`~spacy_ner_project.components.models.FailedResponse` (a request that finally
    failed) is FAILED with its error; a response that is not text is UNPARSEABLE.
    """
    elapsed_s = getattr(response, "elapsed_s", None)
    if isinstance(response, FailedResponse):
        return ParsedAnswer(error=failed_request_error(response.error), status=LLMStatus.FAILED, elapsed_s=elapsed_s)
    if not isinstance(response, str):
        return _unparseable(f"the model returned {type(response).__name__}, not text")
    parsed = parse_answer(response, labels=labels, label_map=label_map)
    parsed.answer, parsed.elapsed_s = str(response), elapsed_s
    return parsed
