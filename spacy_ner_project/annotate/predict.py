"""Docs → output records: ``id``, ``text``, ``entities``, ``llm``, ``error``.

``entities`` lists ``{"start_char", "end_char", "label", "text"}`` in document order;
``llm`` is the LLM task's outcome of the doc (``spacy_ner_project.llm.record``: its status and
error, what could not be placed ...) in its dict form as JSON text, null when the pipeline has
none.
Both engines call :func:`annotate_records`, so they produce the same rows.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Deque, Iterable, Iterator, List, Optional, Tuple, TypedDict

from spacy_ner_project.llm.record import read_llm_outcome

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


def llm_column(doc: Doc) -> Optional[str]:
    """The ``llm`` value: the doc's LLM outcome (its dict form) as JSON text with sorted keys, or None."""
    outcome = read_llm_outcome(doc)
    return None if outcome is None else json.dumps(outcome.to_dict(), ensure_ascii=False, sort_keys=True)


def output_record(record: Record, doc: Optional[Doc] = None) -> OutputRecord:
    """The output row of a record: annotated from ``doc``, or with the record's error."""
    return OutputRecord(
        id=record["id"],
        text=record["text"],
        entities=entities(doc) if doc is not None else [],
        llm=llm_column(doc) if doc is not None else None,
        error=record["error"],
    )


def annotate_records(
    nlp: Language, records: Iterable[Record], *, batch_size: int, n_process: int = 1
) -> Iterator[Tuple[OutputRecord, Optional[Doc]]]:
    """Run ``nlp.pipe`` over the records without an error (one call, so ``n_process`` workers
    start once); records with an error pass through without a doc. Yields (row, doc)."""
    held: Deque[Record] = deque()

    def valid() -> Iterator[Tuple[str, Record]]:
        for record in records:
            if record["error"] is None and record["text"] is not None:
                yield record["text"], record
            else:
                held.append(record)

    for doc, record in nlp.pipe(valid(), as_tuples=True, batch_size=batch_size, n_process=n_process):
        while held:
            yield output_record(held.popleft()), None
        yield output_record(record, doc), doc
    while held:
        yield output_record(held.popleft()), None
