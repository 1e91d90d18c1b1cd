"""What the LLM models return and count: responses with their request's metadata, and stats.

A model here is a spacy-llm prompt executor: it takes, per doc, the list of its shard prompts
and returns, per doc, one response per prompt, in the same order. Each response is a ``str``
(so any task reads it as text) that also carries ``elapsed_s``: the seconds its request took,
None when it came from the cache. A request that finally failed gives a :class:`FailedResponse`
(the empty string, with ``.error``).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

PromptExecutor = Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]]
CacheCheck = Callable[[str], bool]


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
    uncached_unusable: server answers returned but not cached because cache_check rejected them.
    """

    prompts: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    requests: int = 0
    retries: int = 0
    failures: int = 0
    answered: int = 0
    uncached_unusable: int = 0

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


def flatten_unique(prompts: Iterable[Iterable[str]]) -> Tuple[List[List[str]], List[str]]:
    """The prompts per doc (as str), and the distinct prompts of all docs in first-seen order."""
    per_doc = [[str(prompt) for prompt in doc_prompts] for doc_prompts in prompts]
    unique = list(dict.fromkeys(prompt for doc_prompts in per_doc for prompt in doc_prompts))
    return per_doc, unique


def nest(per_doc: List[List[str]], answers: Mapping[str, str]) -> List[List[str]]:
    """The answers in the shape of ``per_doc``: per doc, the answer to each of its prompts."""
    return [[answers[prompt] for prompt in prompts] for prompts in per_doc]
