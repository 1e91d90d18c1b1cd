"""Docs → output records: ``id``, ``text``, ``entities``, ``llm``, ``error``.

``entities`` lists ``{"start_char", "end_char", "label", "text"}`` in document order;
``llm`` is the LLM task's outcome of the doc (``spacy_ner_project.llm.record``: its status and
error, what could not be placed ...) in its dict form as JSON text, null when the pipeline has
none.
Both engines call :func:`annotate_records`, so they produce the same rows.

A doc whose LLM request finally failed (outcome status ``failed``: no answer came) is not
finished: its row carries the error (and the entities of any shard that was answered), and
:func:`request_failed` tells such a row from the others by the outcome's status, so that a
resumed run asks again for exactly those rows. An answer without an entity list
(``unparseable``) is an answer: its row is finished, and its ``llm`` value says so.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Iterable, Iterator, List, Mapping, Optional, Tuple, TypedDict

from spacy_ner_project.llm.record import LLMOutcome, LLMStatus, read_llm_outcome

from .records import Record

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc


class Entity(TypedDict):
    start_char: int
    end_char: int
    label: str
    text: str


class OutputRecord(TypedDict):
    id: Optional[str]
    text: Optional[str]
    entities: List[Entity]
    llm: Optional[str]
    error: Optional[str]


def entities(doc: Doc) -> List[Entity]:
    return [Entity(start_char=e.start_char, end_char=e.end_char, label=e.label_, text=e.text) for e in doc.ents]


def llm_column(outcome: Optional[LLMOutcome]) -> Optional[str]:
    """The ``llm`` value: the doc's LLM outcome (its dict form) as JSON text with sorted keys, or None."""
    return None if outcome is None else json.dumps(outcome.to_dict(), ensure_ascii=False, sort_keys=True)


def failed_request_error(outcome: Optional[LLMOutcome]) -> Optional[str]:
    """The ``error`` value of a doc whose LLM request finally failed, else None."""
    if outcome is None or outcome.status is not LLMStatus.FAILED:
        return None
    return f"the LLM request failed, so this row is not finished (a resumed run asks again): {outcome.error}"


def output_record(record: Record, doc: Optional[Doc] = None) -> OutputRecord:
    """The output row of a record: annotated from ``doc``, or with the record's error."""
    if doc is None:
        return OutputRecord(id=record["id"], text=record["text"], entities=[], llm=None, error=record["error"])
    outcome = read_llm_outcome(doc)
    return OutputRecord(
        id=record["id"],
        text=record["text"],
        entities=entities(doc),
        llm=llm_column(outcome),
        error=record["error"] or failed_request_error(outcome),
    )


def request_failed(row: Mapping[str, Any]) -> bool:
    """Whether an output row's LLM request failed (its outcome's status is ``failed``): the
    row is not finished. Only rows with an error value can be, so only theirs are parsed."""
    if row.get("error") is None or row.get("llm") is None:
        return False
    return LLMOutcome.from_dict(json.loads(row["llm"])).status is LLMStatus.FAILED


# records with an error that wait (for the next doc out of nlp.pipe, to keep input order) at most
# this many batches' worth before they are handed to ``spill`` (a long run of bad records)
HELD_BATCHES = 4


def annotate_records(
    nlp: Language,
    records: Iterable[Record],
    *,
    batch_size: int,
    n_process: int = 1,
    spill: Optional[Callable[[OutputRecord], None]] = None,
) -> Iterator[Tuple[OutputRecord, Optional[Doc]]]:
    """Run ``nlp.pipe`` over the records without an error (one call, so ``n_process`` workers
    start once); records with an error pass through without a doc, in input order. Yields
    (row, doc). With ``spill``, the rows of more than ``HELD_BATCHES * batch_size`` records
    with an error in a row go to ``spill`` at once (out of order) instead of waiting, so
    what is held never grows with the input."""
    held: Deque[Record] = deque()
    limit = HELD_BATCHES * batch_size

    def valid() -> Iterator[Tuple[str, Record]]:
        for record in records:
            if record["error"] is None and record["text"] is not None:
                yield record["text"], record
                continue
            held.append(record)
            if spill is not None and len(held) > limit:
                while held:
                    spill(output_record(held.popleft()))

    for doc, record in nlp.pipe(valid(), as_tuples=True, batch_size=batch_size, n_process=n_process):
        while held:
            yield output_record(held.popleft()), None
        yield output_record(record, doc), doc
    while held:
        yield output_record(held.popleft()), None
