"""What the LLM models return and count: responses with their request's metadata, and stats.

A model here is a spacy-llm prompt executor: it takes, per doc, the list of its shard prompts
and returns, per doc, one response per prompt, in the same order. Each response is a ``str``
(so any task reads it as text) that also carries ``elapsed_s``: the seconds its request took,
None when it came from the cache. A request that finally failed gives a :class:`FailedResponse`
(the empty string, with ``.error``). A task may hand a model :class:`RequestPrompt` prompts
instead of plain ``str``: each carries request fields of its own (a per-request ``grammar`` or
``response_format``), which are part of the prompt's identity (deduplication, cache key).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

PromptExecutor = Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]]
CacheCheck = Callable[[str], bool]


def _frozen(value: Any) -> Any:
    """A read-only copy of decoded JSON: mappings become read-only views, lists tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def canonical_json(fields: Mapping[str, Any]) -> str:
    """``fields`` as canonical JSON (keys sorted, no spaces): "" for none. Raises ValueError
    (one line) for keys that are not strings or values JSON cannot hold."""
    if not fields:
        return ""
    if not isinstance(fields, Mapping) or not all(isinstance(key, str) for key in fields):
        raise ValueError(f"request_fields must be a mapping with string keys, got {fields!r}")
    try:
        return json.dumps(dict(fields), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"request_fields must be JSON (strings, numbers, booleans, null, lists, objects): {err}") from None


class RequestPrompt(str):
    """A prompt with request fields of its own: ``RequestPrompt(text, request_fields={...})``.

    It reads as its text everywhere (``str`` ops give plain ``str``); ``request_fields`` is a
    read-only copy, all the way down, of the fields the model merges into this prompt's request
    body (after its config and structured output: the fields win). Two prompts are the same
    prompt (equal, equal hashes: one request when both come in one call, one cache entry) when
    their text and their fields are; a RequestPrompt without fields is its plain text.
    """

    _fields: Mapping[str, Any]
    _fields_json: str

    def __new__(cls, text: str, *, request_fields: Optional[Mapping[str, Any]] = None) -> "RequestPrompt":
        prompt = super().__new__(cls, text)
        prompt._fields_json = canonical_json(request_fields or {})
        prompt._fields = _frozen(json.loads(prompt._fields_json)) if prompt._fields_json else MappingProxyType({})
        return prompt

    @property
    def request_fields(self) -> Mapping[str, Any]:
        """The fields merged into this prompt's request body (read-only)."""
        return self._fields

    @property
    def fields_json(self) -> str:
        """The request fields as canonical JSON (keys sorted): "" when there are none."""
        return self._fields_json

    def plain_fields(self) -> Dict[str, Any]:
        """A fresh, mutable copy of the request fields (for a request body)."""
        return json.loads(self.fields_json) if self.fields_json else {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return NotImplemented
        return str.__eq__(self, other) and self.fields_json == fields_json_of(other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return str.__hash__(self) if not self.fields_json else hash((str(self), self.fields_json))

    def __repr__(self) -> str:
        return f"RequestPrompt({str(self)!r}, request_fields={self.plain_fields()!r})"

    def __reduce__(self) -> Any:
        return (_request_prompt, (str(self), self.plain_fields()))


def _request_prompt(text: str, fields: Mapping[str, Any]) -> RequestPrompt:
    return RequestPrompt(text, request_fields=fields)


def fields_json_of(prompt: str) -> str:
    """The canonical JSON of a prompt's request fields: "" for a plain ``str``."""
    return prompt.fields_json if isinstance(prompt, RequestPrompt) else ""


def request_fields_of(prompt: str) -> Dict[str, Any]:
    """A fresh copy of a prompt's request fields: {} for a plain ``str``."""
    return prompt.plain_fields() if isinstance(prompt, RequestPrompt) else {}


class ModelResponse(str):
    """A model's answer to one prompt: the text, with ``elapsed_s`` (seconds the request took,
    retries and their waits included; None when the answer came from the cache)."""

    elapsed_s: Optional[float]

    def __new__(cls, text: str, *, elapsed_s: Optional[float] = None) -> "ModelResponse":
        response = super().__new__(cls, text)
        response.elapsed_s = elapsed_s
        return response

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, elapsed_s={self.elapsed_s!r})"

    def __reduce__(self) -> Any:
        return (type(self), (str(self),), {"elapsed_s": self.elapsed_s})


class FailedResponse(ModelResponse):
    """The response of a request that finally failed: the empty string, with ``.error``."""

    error: str

    def __new__(cls, error: str, *, elapsed_s: Optional[float] = None) -> "FailedResponse":
        response = super().__new__(cls, "", elapsed_s=elapsed_s)
        response.error = error
        return response

    def __repr__(self) -> str:
        return f"FailedResponse(error={self.error!r}, elapsed_s={self.elapsed_s!r})"

    def __reduce__(self) -> Any:
        return (FailedResponse, (self.error,), {"elapsed_s": self.elapsed_s})


@dataclass
class ModelStats:
    """Counters over the model's lifetime (read them in benchmarks, reports and progress bars).

    prompts: prompts asked for (shards included, duplicates included);
    deduplicated: duplicates within one call, answered once;
    cache_hits: distinct prompts answered from the cache;
    answered: distinct prompts answered by the server;
    failures: distinct prompts whose request finally failed (FailedResponse);
    requests / retries: HTTP attempts, and those of them that were retries;
    uncached_unusable: server answers returned but not cached because cache_check rejected them;
    repetition_stops: server answers cut short by the stop rule (``stop_repetition``), streamed
    or not: they repeated themselves.
    """

    prompts: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    requests: int = 0
    retries: int = 0
    failures: int = 0
    answered: int = 0
    uncached_unusable: int = 0
    repetition_stops: int = 0

    @property
    def done(self) -> int:
        """Distinct prompts finished so far: from the cache, answered, or failed."""
        return self.cache_hits + self.answered + self.failures

    def add(self, **increments: int) -> None:
        """Add to the named counters."""
        for name, value in increments.items():
            setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> "ModelStats":
        """A copy of the counters as they are now."""
        return dataclasses.replace(self)


ProgressHook = Callable[[ModelStats], None]


class CountsRequests:
    """What the models share about counting: ``stats`` (ModelStats), updated as each request
    finishes, and ``on_progress`` (None, or set it after loading, e.g.
    ``nlp.get_pipe("llm")._model.on_progress = bar_update``), called with a snapshot of ``stats``
    from the thread that finished a request, one call at a time (under the stats lock: keep it
    cheap, never call the model from it)."""

    def __init__(self) -> None:
        self.stats = ModelStats()
        self.on_progress: Optional[ProgressHook] = None
        self._stats_lock = threading.Lock()

    def _count(self, *, progress: bool = True, **increments: int) -> None:
        with self._stats_lock:
            self.stats.add(**increments)
            if progress and self.on_progress is not None:
                self.on_progress(self.stats.snapshot())


def as_prompt(prompt: Any) -> str:
    """A prompt as the models take it: a RequestPrompt as it is, anything else as plain ``str``."""
    return prompt if isinstance(prompt, RequestPrompt) else str(prompt)


def flatten_unique(prompts: Iterable[Iterable[str]]) -> Tuple[List[List[str]], List[str]]:
    """The prompts per doc (as str, RequestPrompts kept), and the distinct prompts of all docs in
    first-seen order (text and request fields: see RequestPrompt)."""
    per_doc = [[as_prompt(prompt) for prompt in doc_prompts] for doc_prompts in prompts]
    unique = list(dict.fromkeys(prompt for doc_prompts in per_doc for prompt in doc_prompts))
    return per_doc, unique


def nest(per_doc: List[List[str]], answers: Mapping[str, str]) -> List[List[str]]:
    """The answers in the shape of ``per_doc``: per doc, the answer to each of its prompts."""
    return [[answers[prompt] for prompt in prompts] for prompts in per_doc]
