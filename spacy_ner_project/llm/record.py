"""The LLM task's outcome per doc: one typed record, where it lives on a Doc and how to read it.

The JsonNER task (``spacy_ner_project.components.llm.task``) builds an :class:`LLMOutcome` for
each doc it annotates and leaves its dict form (:meth:`LLMOutcome.to_dict`, JSON-safe) under
``doc.user_data[LLM_RECORD_KEY]`` (``"spacy_ner_project.llm"``), so it survives
``DocBin(store_user_data=True)`` and spacy-llm's cache. Everything else reads it back with
:func:`read_llm_outcome` and uses its fields: evaluation (the task totals, the problem lines,
the speed), its report, and annotate (whose ``llm`` column holds the dict as JSON text). The
core never imports the components.

The dict form (here of a doc of one shard whose answer held no entity list; ``unplaced`` ...
as another doc could have them)::

    {
      "status": "unparseable",  # "ok"; "failed": a request finally failed, no answer came;
                                # "unparseable": an answer came but held no entity list.
                                # A sharded doc has its worst shard's: failed, then unparseable
      "error": "no JSON entity answer in the response: 'Sorry.'",   # the first error of that
                                                                     # status (null when "ok")
      "errors": ["shard 0: no JSON entity answer in the response: 'Sorry.'"],   # every shard's
      "answers": ["Sorry."],    # each shard's raw answer; null where its request finally failed
      "n_shards": 1,
      "elapsed_s": 0.812,       # seconds its requests took (shards summed); null when unknown,
                                # or when an answer came from a cache
      "unknown_labels": [{"label": "FOOD", "text": "pizza"}],
      "unplaced": [{"label": "ORG", "text": "OpenAI", "reason": "not_found"}],
      # reasons: spacy_ner_project.llm.align's ("not_found", "overlap", "function_word", ...), or
      # "copied_from_examples": not in the text, and equal (align.normalize) to an entity
      # string of a few-shot example, so most likely copied from the prompt
      "dropped": [{"label": "LOC", "text": "New York", "start_char": 4, "end_char": 12,
                   "reason": "overlap"}],                # or "existing_entity"
      "fuzzy": [{"label": "PER", "text": "Gorbachov", "start_char": 8, "end_char": 17,
                 "score": 88.9}],                        # placed by typo-tolerant matching
    }

A record written before ``status`` existed (``errors`` and the lists only) is still read:
:meth:`LLMOutcome.from_dict` infers ``status`` and ``error`` from ``errors``. Only this module
looks inside an error's text; the message of a failed request is made here
(:func:`failed_request_error`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Protocol, Sequence, TypedDict

if TYPE_CHECKING:
    from spacy.tokens import Doc

LLM_RECORD_KEY = "spacy_ner_project.llm"
_REQUEST_FAILED = "request failed: "
_SHARD_PREFIX = re.compile(r"^shard \d+: ")


class LLMStatus(str, Enum):
    """What became of a doc's (or a shard's) request: ``ok``, ``failed`` (no answer),
    ``unparseable`` (an answer without an entity list). Worst last."""

    OK = "ok"
    UNPARSEABLE = "unparseable"
    FAILED = "failed"


_SEVERITY = {status: rank for rank, status in enumerate(LLMStatus)}


# the items of the lists (their keys are those of the dict form, see the module docstring)
class UnknownLabelItem(TypedDict):
    label: str
    text: str


class UnplacedItem(TypedDict):
    label: str
    text: str
    reason: str


class DroppedItem(TypedDict):
    label: str
    text: str
    start_char: int
    end_char: int
    reason: str


class FuzzyItem(TypedDict):
    label: str
    text: str
    start_char: int
    end_char: int
    score: float


class ShardAnswer(Protocol):
    """What the task knows of one shard's answer (its parser's ``ParsedAnswer`` is one)."""

    status: LLMStatus
    error: Optional[str]
    answer: Optional[str]
    elapsed_s: Optional[float]


def failed_request_error(message: str) -> str:
    """The error of a shard whose request finally failed with ``message``."""
    return f"{_REQUEST_FAILED}{message}"


@dataclass
class LLMOutcome:
    """One doc's outcome of the LLM task (the fields are the dict form's, see the module docstring)."""

    status: LLMStatus = LLMStatus.OK
    error: Optional[str] = None
    errors: List[str] = field(default_factory=list)
    answers: List[Optional[str]] = field(default_factory=list)
    n_shards: int = 1
    elapsed_s: Optional[float] = None
    unknown_labels: List[UnknownLabelItem] = field(default_factory=list)
    unplaced: List[UnplacedItem] = field(default_factory=list)
    dropped: List[DroppedItem] = field(default_factory=list)
    fuzzy: List[FuzzyItem] = field(default_factory=list)

    @property
    def got_answer(self) -> bool:
        """Whether some shard's request was answered (its answer may still be unparseable)."""
        return any(answer is not None for answer in self.answers)

    @classmethod
    def from_shards(
        cls,
        shards: Sequence[ShardAnswer],
        *,
        unknown_labels: Sequence[UnknownLabelItem] = (),
        unplaced: Sequence[UnplacedItem] = (),
        dropped: Sequence[DroppedItem] = (),
        fuzzy: Sequence[FuzzyItem] = (),
    ) -> LLMOutcome:
        """The outcome of a doc from its shards' answers, in shard order, and what alignment left."""
        statuses = [LLMStatus(shard.status) for shard in shards]
        status = max(statuses, key=_SEVERITY.__getitem__, default=LLMStatus.OK)
        return cls(
            status=status,
            error=next((shard.error for shard, s in zip(shards, statuses) if s is status and shard.error), None),
            errors=[f"shard {i}: {shard.error}" for i, shard in enumerate(shards) if shard.error],
            answers=[shard.answer for shard in shards],
            n_shards=len(shards),
            elapsed_s=_total_seconds([shard.elapsed_s for shard in shards]),
            unknown_labels=list(unknown_labels),
            unplaced=list(unplaced),
            dropped=list(dropped),
            fuzzy=list(fuzzy),
        )

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-safe dict form (what ``doc.user_data[LLM_RECORD_KEY]`` holds)."""
        return {
            "status": self.status.value,
            "error": self.error,
            "errors": list(self.errors),
            "answers": list(self.answers),
            "n_shards": self.n_shards,
            "elapsed_s": self.elapsed_s,
            "unknown_labels": [dict(item) for item in self.unknown_labels],
            "unplaced": [dict(item) for item in self.unplaced],
            "dropped": [dict(item) for item in self.dropped],
            "fuzzy": [dict(item) for item in self.fuzzy],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMOutcome:
        """The outcome from its dict form (lists may come back as tuples from a DocBin); a
        record without ``status`` (written before it existed) gets the one its ``errors`` say."""
        errors = [str(error) for error in data.get("errors") or ()]
        if "status" in data:
            status, error = LLMStatus(data["status"]), data.get("error")
        else:
            status = _status_of_errors(errors)
            error = next((_SHARD_PREFIX.sub("", e) for e in errors if _status_of_errors([e]) is status), None)
        return cls(
            status=status,
            error=error,
            errors=errors,
            answers=list(data.get("answers") or ()),
            n_shards=int(data.get("n_shards", 1)),
            elapsed_s=data.get("elapsed_s"),
            unknown_labels=[UnknownLabelItem(**item) for item in data.get("unknown_labels") or ()],
            unplaced=[UnplacedItem(**item) for item in data.get("unplaced") or ()],
            dropped=[DroppedItem(**item) for item in data.get("dropped") or ()],
            fuzzy=[FuzzyItem(**item) for item in data.get("fuzzy") or ()],
        )


def _status_of_errors(errors: Sequence[str]) -> LLMStatus:
    """The status that errors written without one mean (records older than ``status``)."""
    if any(_REQUEST_FAILED in error for error in errors):
        return LLMStatus.FAILED
    return LLMStatus.UNPARSEABLE if errors else LLMStatus.OK


def _total_seconds(seconds: Sequence[Optional[float]]) -> Optional[float]:
    """The shards' request times summed, or None unless each is known."""
    if not seconds or any(s is None for s in seconds):
        return None
    return round(sum(s for s in seconds if s is not None), 3)


def read_llm_outcome(doc: Doc) -> Optional[LLMOutcome]:
    """The LLM task's outcome of ``doc``, or None when the doc has none (no JsonNER task ran)."""
    data = doc.user_data.get(LLM_RECORD_KEY)
    return None if data is None else LLMOutcome.from_dict(data)


def write_llm_outcome(doc: Doc, outcome: LLMOutcome) -> None:
    """Leave ``outcome`` on ``doc`` in its dict form (what :func:`read_llm_outcome` reads)."""
    doc.user_data[LLM_RECORD_KEY] = outcome.to_dict()
