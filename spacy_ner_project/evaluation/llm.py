"""What an LLM pipeline's run did, observed while :func:`~spacy_ner_project.evaluation.evaluate.score_pipeline`
predicts: the model's request counters, the task's per-doc records summed up, a progress bar
of done / cached / failed prompts, and the per-doc warnings summarised.

A pipeline takes part when one of its components holds a model with a ``stats`` dataclass
(our ``OpenAICompatible`` / cached models in ``components/models.py``; spacy-llm keeps the
model as ``_model``). This module only duck-types that attribute and its ``on_progress`` hook:
the core never imports the components.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy_ner_project import progress
from spacy_ner_project.errors import OptionError
from spacy_ner_project.llm.record import LLM_RECORD_KEY, LLMOutcome, LLMStatus, read_llm_outcome

if TYPE_CHECKING:  # spaCy only in annotations: the commands read FailurePolicy's default without loading it
    from spacy.language import Language
    from spacy.tokens import Doc

LLM_LOGGER = "spacy_ner_project.llm"
# the problem line of each status that is a problem
PROBLEM_KINDS = {LLMStatus.FAILED: "failed requests", LLMStatus.UNPARSEABLE: "unparseable answers"}


@dataclass(frozen=True)
class FailurePolicy:
    """When an evaluation of an LLM pipeline fails: the share of docs whose request finally
    failed exceeds ``max_failed`` (0-1), or every doc's request finally failed (also with
    ``max_failed = 1``), or no doc got a usable answer because the answers that came held no
    entity list (unparseable). The docs are counted by the status of their typed outcome
    (``task_report``'s counts), never by their error messages."""

    max_failed: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_failed <= 1.0:
            raise ValueError(f"max_failed is a share of docs between 0 and 1, got {self.max_failed}")

    def failed(self, *, n_failed: int, n_docs: int) -> bool:
        return n_docs > 0 and (n_failed == n_docs or n_failed / n_docs > self.max_failed)

    @staticmethod
    def nothing_usable(*, n_failed: int, n_unparseable: int, n_docs: int) -> bool:
        """Whether answers came but none held an entity list: every doc unparseable or failed."""
        return n_docs > 0 and n_unparseable > 0 and n_unparseable + n_failed >= n_docs

    def check(self, block: Dict[str, Any]) -> Optional[OptionError]:
        """Why an ``llm`` metrics block fails the policy, as an error whose one line names the
        ``max_failed`` option (in the command line's words where it shows it), or None."""
        report, n_docs = block["task_report"], block["n_docs"]
        n_failed = report["docs_with_failed_requests"]
        n_unparseable = report.get("docs_with_unparseable_answers", 0)
        if self.failed(n_failed=n_failed, n_docs=n_docs):
            return OptionError(lambda name: (
                f"{n_failed} of {n_docs} docs got no answer (failed requests; {name('max_failed')} {self.max_failed:g}): "
                "check the server, then rerun (answered requests are cached)"
            ))
        if self.nothing_usable(n_failed=n_failed, n_unparseable=n_unparseable, n_docs=n_docs):
            failed = f" and {n_failed} got none" if n_failed else ""
            return OptionError(lambda name: (
                f"no doc got a usable answer: {n_unparseable} of {n_docs} docs got answers without an entity list "
                f"(unparseable){failed}, so the scores mean nothing: check the model, the prompt template and "
                "structured_output, then rerun (unparseable answers are not cached)"
            ))
        return None


def llm_model(nlp: Language) -> Optional[Tuple[str, Any]]:
    """(component name, model) of the first component whose model counts its requests in ``stats``."""
    for name, pipe in nlp.pipeline:
        model = getattr(pipe, "_model", None)
        if is_dataclass(getattr(model, "stats", None)):
            return name, model
    return None


def outcomes(docs: Iterable[Doc]) -> List[LLMOutcome]:
    """The LLM task's outcome of each doc that has one."""
    return [outcome for outcome in map(read_llm_outcome, docs) if outcome is not None]


def task_report_counts(docs: Iterable[Doc]) -> Dict[str, int]:
    """Totals of what the JsonNER task left on the docs (errors, unplaced strings ...);
    ``docs_with_failed_requests`` and ``docs_with_unparseable_answers`` split ``docs_with_errors``
    by the docs' status (a sharded doc with both kinds of error counts as failed)."""
    counts: Counter = Counter()
    for key in ("docs_with_errors", "docs_with_failed_requests", "docs_with_unparseable_answers", "errors"):
        counts[key] = 0
    for key in ("unplaced", "unknown_labels", "dropped", "fuzzy"):
        counts[key] = 0
    for outcome in outcomes(docs):
        counts["docs_with_errors"] += outcome.status is not LLMStatus.OK
        counts["docs_with_failed_requests"] += outcome.status is LLMStatus.FAILED
        counts["docs_with_unparseable_answers"] += outcome.status is LLMStatus.UNPARSEABLE
        counts["errors"] += len(outcome.errors)
        counts["unplaced"] += len(outcome.unplaced)
        counts["unknown_labels"] += len(outcome.unknown_labels)
        counts["dropped"] += len(outcome.dropped)
        counts["fuzzy"] += len(outcome.fuzzy)
        counts.update(f"unplaced_{item['reason']}" for item in outcome.unplaced)  # e.g. unplaced_not_found
    return dict(counts)


def every_request_failed(docs: Sequence[Doc]) -> bool:
    """Whether no doc got an answer: each has an outcome whose requests all finally failed
    (then the run's time says nothing about the model's speed)."""
    found = outcomes(docs)
    return bool(docs) and len(found) == len(docs) and all(o.status is LLMStatus.FAILED and not o.got_answer for o in found)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) as one space."""
    return " ".join(text.split())


def problem_summary(docs: Sequence[Doc]) -> List[str]:
    """One line per kind of per-doc problem (PROBLEM_KINDS): how many docs, and the first
    doc's error in full."""
    errors: Dict[LLMStatus, List[str]] = {status: [] for status in PROBLEM_KINDS}
    for outcome in outcomes(docs):
        if outcome.status in errors:
            errors[outcome.status].append(outcome.error or "")
    return [
        f"{len(found)} of {len(docs)} docs had {PROBLEM_KINDS[status]} (first: {one_line(found[0])}); see "
        f"doc.user_data[{LLM_RECORD_KEY!r}]['errors']; they count as predicting no entities"
        for status, found in errors.items()
        if found
    ]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def collected_warnings(name: str = LLM_LOGGER) -> Iterator[List[logging.LogRecord]]:
    """Hold back the warnings of logger ``name`` (one per doc) for a summary; yields them."""
    logger = logging.getLogger(name)
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def warning_summary(records: Sequence[logging.LogRecord], docs: Sequence[Doc]) -> List[str]:
    """Collected warnings grouped by their message template, one line each: "N x <first
    message>" (the message in full), leaving out those that repeat an error kept on a doc (the
    problem summary has those)."""
    kept = {error for outcome in outcomes(docs) for error in outcome.errors}
    groups: Dict[str, List[logging.LogRecord]] = {}
    for record in records:
        message = record.getMessage()
        if not any(message.endswith(error) for error in kept):
            groups.setdefault(str(record.msg), []).append(record)
    return [
        (f"{len(group)} x " if len(group) > 1 else "") + one_line(group[0].getMessage()) for group in groups.values()
    ]


class Progress:
    """Done / cached / failed prompts as a progress bar, fed by the model's ``on_progress`` hook
    from its request threads; no bar unless ``enabled`` and stderr is a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar = progress.bar(total=total, unit="prompt", desc="LLM", enabled=enabled)

    def update(self, stats: Any) -> None:
        done = getattr(stats, "done", None)
        if done is None:  # a model without the `done` counter
            done = stats.cache_hits + stats.requests - stats.retries
        with self._lock:
            if done > self._bar.total:
                self._bar.total = done  # long docs are sharded: more prompts than docs
            self._bar.n = done
            self._bar.set_postfix(cached=stats.cache_hits, failed=stats.failures, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


@dataclass
class LLMRun:
    """One observed run; :meth:`block` is the ``llm`` block of the metrics."""

    component: str
    model: Any
    n_docs: int
    start: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    records: List[logging.LogRecord] = field(default_factory=list)

    def block(self, predictions: Sequence[Doc]) -> Dict[str, Any]:
        """The metrics' ``llm`` block; no speed (``docs_per_second`` None) when no request got an answer."""
        stats = self.model.stats
        timed = self.seconds > 0 and not every_request_failed(predictions)
        return {
            "component": self.component,
            "n_docs": self.n_docs,
            "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.n_docs / self.seconds, 3) if timed else None,
            "model_stats": asdict(stats),
            "task_report": task_report_counts(predictions),
            "problems": problem_summary(predictions),
            "warnings": warning_summary(self.records, predictions),
        }


@contextmanager
def observe(nlp: Language, *, n_docs: int, show_progress: bool = False) -> Iterator[Optional[LLMRun]]:
    """While the block predicts: hook a :class:`Progress` to the LLM model's ``on_progress`` and
    collect the task's warnings; yields the :class:`LLMRun` (None for a pipeline without an LLM
    model, and then does nothing)."""
    found = llm_model(nlp)
    if found is None:
        yield None
        return
    component, model = found
    run = LLMRun(component=component, model=model, n_docs=n_docs)
    bar = Progress(n_docs, enabled=show_progress)
    hooked = hasattr(model, "on_progress")
    previous = model.on_progress if hooked else None
    if hooked:
        model.on_progress = bar.update
    try:
        with collected_warnings() as records:
            yield run
        run.records = list(records)
    finally:
        run.seconds = time.perf_counter() - run.start
        if hooked:
            model.on_progress = previous
        bar.close()
