"""The settings of ``spacy_ner_project.OpenAICompatible.v1``, each with its one default.

:class:`ModelDefaults` holds the default of every setting as a ``DEFAULT_<SETTING>`` class
constant; :class:`ModelSettings` (validated, frozen), the model class and the registered
function take their defaults from there and nowhere else. The defaults suit a one-slot local
server on a CPU (llama.cpp, Ollama): it answers one request at a time and takes minutes per
answer, so few requests in flight, a long timeout and few retries; answers are streamed, so
that a request the client gives up on (a timeout, Ctrl-C, a runaway answer) stops the server's
generation instead of holding the one slot for the next request (a server that ignores
``stream`` answers as usual); temperature 0 and a fixed seed, so every run gets the same
answers. A config changes one only on purpose, saying why (tests/test_defaults.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Dict, List, Mapping, Optional

from confection import SimpleFrozenDict

from .model_responses import request_fields_of

# Numeric settings and the least value each may take (timeout: more than this).
_AT_LEAST: Mapping[str, float] = {
    "max_retries": 0,
    "concurrency": 1,
    "context_length": 1,
    "backoff": 0.0,
    "max_backoff": 0.0,
    "max_retry_wait": 0.0,
    "stop_repetition": 0,
}
_MORE_THAN: Mapping[str, float] = {"timeout": 0.0}
_INTEGERS = ("max_retries", "concurrency", "context_length", "stop_repetition")
_FLOATS = ("timeout", "backoff", "max_backoff", "max_retry_wait")
# Request fields the model sets itself: never in config, structured_output or a prompt's request_fields.
RESERVED_FIELDS = ("messages", "model", "stream")


class ModelDefaults:
    """The default of every model setting, one ``DEFAULT_<SETTING>`` constant each (read by
    ModelSettings, OpenAICompatibleModel and ``spacy_ner_project.OpenAICompatible.v1``)."""

    DEFAULT_API_KEY_ENV: ClassVar[Optional[str]] = None  # local servers need no key
    # seconds per attempt, all of it (connect, send, read): generating an answer on a CPU plus the
    # wait behind the request in flight
    DEFAULT_TIMEOUT: ClassVar[float] = 300.0
    # a local server that timed out once usually times out again
    DEFAULT_MAX_RETRIES: ClassVar[int] = 2
    # llama.cpp and Ollama serve one request at a time: one in flight, one queued
    DEFAULT_CONCURRENCY: ClassVar[int] = 2
    # the same answers every run: greedy decoding, and a fixed seed for whatever still samples
    DEFAULT_CONFIG: ClassVar[Mapping[str, Any]] = SimpleFrozenDict(temperature=0.0, seed=0)
    DEFAULT_CONTEXT_LENGTH: ClassVar[Optional[int]] = None  # no sharding
    DEFAULT_BACKOFF: ClassVar[float] = 1.0
    DEFAULT_MAX_BACKOFF: ClassVar[float] = 60.0
    # a server asking for a longer Retry-After is retried after this many seconds
    DEFAULT_MAX_RETRY_WAIT: ClassVar[float] = 30.0
    DEFAULT_STRUCTURED_OUTPUT: ClassVar[Mapping[str, Any]] = SimpleFrozenDict()  # none
    DEFAULT_CACHE_NAMESPACE: ClassVar[str] = ""
    # stream the answers: a request given up on (timeout, Ctrl-C, the stop rule) closes its
    # connection, which stops a streamed generation (llama-cpp-python: at its next token) instead
    # of leaving it to hold the one slot for the retry; a server that ignores it answers as usual
    DEFAULT_STREAM: ClassVar[bool] = True
    # stop an answer once it repeats itself this many times (model_stream.repetition_end; 0: never).
    # In the 303 answers of Gemma 3 270M to CoNLL dev sentences in this project's cache the longest
    # repetition that was no runaway was 3 ("1000", "111", "..."; none at 4 or more): 8 leaves a
    # wide margin, and still cuts a run of empty strings after some 20 tokens, not at max_tokens
    DEFAULT_STOP_REPETITION: ClassVar[int] = 8


@dataclass(frozen=True)
class ModelSettings(ModelDefaults):
    """What ``spacy_ner_project.OpenAICompatible.v1`` talks to and how (its registered function
    documents each setting). Numbers are coerced (``timeout=60`` is 60.0), ``base_url`` loses a
    trailing slash, ``config`` and ``structured_output`` are frozen copies. Raises ValueError
    with one line per bad value."""

    base_url: str
    model: str
    api_key_env: Optional[str] = ModelDefaults.DEFAULT_API_KEY_ENV
    timeout: float = ModelDefaults.DEFAULT_TIMEOUT
    max_retries: int = ModelDefaults.DEFAULT_MAX_RETRIES
    concurrency: int = ModelDefaults.DEFAULT_CONCURRENCY
    config: Mapping[str, Any] = field(default_factory=lambda: ModelDefaults.DEFAULT_CONFIG)
    context_length: Optional[int] = ModelDefaults.DEFAULT_CONTEXT_LENGTH
    backoff: float = ModelDefaults.DEFAULT_BACKOFF
    max_backoff: float = ModelDefaults.DEFAULT_MAX_BACKOFF
    max_retry_wait: float = ModelDefaults.DEFAULT_MAX_RETRY_WAIT
    structured_output: Mapping[str, Any] = field(default_factory=lambda: ModelDefaults.DEFAULT_STRUCTURED_OUTPUT)
    cache_namespace: str = ModelDefaults.DEFAULT_CACHE_NAMESPACE
    stream: bool = ModelDefaults.DEFAULT_STREAM
    stop_repetition: int = ModelDefaults.DEFAULT_STOP_REPETITION

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError("\n".join(problems))
        normalised: Dict[str, Any] = {
            "base_url": self.base_url.rstrip("/"),
            "config": SimpleFrozenDict(self.config or {}),
            "structured_output": SimpleFrozenDict(self.structured_output or {}),
        }
        normalised.update((name, int(getattr(self, name))) for name in _INTEGERS if getattr(self, name) is not None)
        normalised.update((name, float(getattr(self, name))) for name in _FLOATS)
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    def _problems(self) -> List[str]:
        """One line per bad value, saying what it must be."""
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(
                f"base_url must start with http:// or https://, got {self.base_url!r} "
                "(e.g. http://localhost:11434/v1 for Ollama, https://api.openai.com/v1)"
            )
        if not self.model:
            problems.append("model must name the model to query, e.g. 'llama3.1:8b' or 'gpt-4o-mini'")
        for name, least in _AT_LEAST.items():
            value = getattr(self, name)
            if value is not None and value < least:
                problems.append(f"{name} must be at least {least:g}, got {value}")
        for name, bound in _MORE_THAN.items():
            if getattr(self, name) <= bound:
                problems.append(f"{name} must be more than {bound:g}, got {getattr(self, name)}")
        for name in ("config", "structured_output"):
            reserved = [key for key in RESERVED_FIELDS if key in (getattr(self, name) or {})]
            if reserved:
                problems.append(
                    f"{name} holds request parameters only, not {', '.join(reserved)}, which the model sets itself "
                    "(the model with `model`, streaming with `stream`)"
                )
        if not isinstance(self.stream, bool):
            problems.append(f"stream must be true or false, got {self.stream!r}")
        if self.stop_repetition == 1:
            problems.append("stop_repetition must be 0 (off) or at least 2 (repetitions that stop an answer), got 1")
        clash = sorted(set(self.config or {}) & set(self.structured_output or {}))
        if clash:
            problems.append(
                f"config and structured_output both set {', '.join(clash)}: keep it in one of them "
                "(structured_output = {} switches structured output off)"
            )
        return problems

    @property
    def endpoint(self) -> str:
        """Where the chat completions are posted."""
        return f"{self.base_url}/chat/completions"

    def payload(self, prompt: str) -> Dict[str, Any]:
        """The request body that asks for the answer to ``prompt``: config, then structured_output,
        then the prompt's own request fields (a RequestPrompt's; they win), and ``"stream": true``
        when streaming. Raises ValueError for request fields the model sets itself."""
        fields = request_fields_of(prompt)
        reserved = sorted(set(RESERVED_FIELDS) & set(fields))
        if reserved:
            raise ValueError(f"a prompt's request_fields set {', '.join(reserved)}, which the model sets itself")
        body: Dict[str, Any] = {**self.config, **self.structured_output, **fields}
        body.update(model=self.model, messages=[{"role": "user", "content": str(prompt)}])
        if self.stream:
            body["stream"] = True
        return body

    def identity(self) -> Dict[str, Any]:
        """What makes two models' answers interchangeable, as far as the settings tell (the cache
        key's model identity adds what the server reports about the model it serves): the model
        name, the request parameters, structured output, the stop rule and the namespace. Not
        where the server is (``base_url``: a restarted server on another port gives the same
        answers), nor whether answers are streamed (the same text either way)."""
        return dict(
            protocol="openai-chat-completions",
            model=self.model,
            params=dict(self.config),
            structured_output=dict(self.structured_output),
            stop_repetition=self.stop_repetition,
            namespace=self.cache_namespace,
        )


SETTING_NAMES = tuple(setting.name for setting in fields(ModelSettings))
