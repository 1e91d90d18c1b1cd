"""Engine ``local``: ``nlp.pipe`` over the records (``n_process`` processes), on this machine.

It streams: records are read as ``nlp.pipe`` asks for them, and each row goes to the
:class:`~.output.PartWriter`, which writes a part file whenever ``rows_per_file`` rows have
come (the docs of that part go to their DocBin shard at the same time). What it holds at once
is one part's rows (and docs), ``nlp.pipe``'s batches and a few batches' worth of records with
an error (``predict.HELD_BATCHES``), whatever the size of INPUT.

In one process, the records go through ``nlp.pipe`` a window of ``rows_per_file`` at a time,
each inside ``nlp.memory_zone()``: spaCy's vocabulary keeps every new word it sees otherwise
(a few hundred bytes each, so memory would grow with the input's vocabulary). The rows are
plain values and a window's docs are in their DocBin shard before the zone ends. With
``n_process`` > 1 there is one ``nlp.pipe`` call (its processes start once) and no zone: the
worker processes' vocabularies grow with the words they see.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, List, Optional

from .output import PartWriter, write_docbin_shard
from .pipeline import PipelineSpec
from .predict import OutputRecord, annotate_records
from .records import Record

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

Progress = Callable[[int], None]


def windows(records: Iterable[Record], size: int) -> Iterator[List[Record]]:
    """The records in lists of ``size`` (the last may be shorter)."""
    iterator = iter(records)
    while window := list(islice(iterator, size)):
        yield window


class LocalSink:
    """Where the local engine's rows and docs go: the writer, the DocBin shards, the progress."""

    def __init__(self, writer: PartWriter, *, docbin_dir: Optional[Path], batch_size: int, on_progress: Optional[Progress]) -> None:
        self.writer = writer
        self.docbin_dir = docbin_dir
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.docs: List[Doc] = []
        self.since_report = 0

    def add(self, row: OutputRecord, doc: Optional[Doc] = None) -> None:
        """Write ``row`` (a part file when one is full, with its docs' DocBin shard)."""
        if doc is not None and self.docbin_dir is not None:
            self.docs.append(doc)
        if self.writer.add(row) is not None:
            self.flush_docs()
        self.since_report += 1
        if self.on_progress is not None and self.since_report >= self.batch_size:
            self.on_progress(self.since_report)
            self.since_report = 0

    def flush_docs(self) -> None:
        if self.docbin_dir is not None and self.docs:
            write_docbin_shard(self.docbin_dir, self.docs)
        self.docs = []

    def close(self) -> None:
        self.writer.flush()
        self.flush_docs()
        if self.on_progress is not None and self.since_report:
            self.on_progress(self.since_report)


def pipe_in_zones(nlp: Language, records: Iterable[Record], sink: LocalSink, *, batch_size: int, window: int) -> None:
    """One process: ``nlp.pipe`` a window at a time, each in a memory zone (the module docstring)."""
    for chunk in windows(records, window):
        with nlp.memory_zone():
            for row, doc in annotate_records(nlp, chunk, batch_size=batch_size, spill=sink.add):
                sink.add(row, doc)
            sink.flush_docs()  # the docs must not outlive the zone


def run_local(
    spec: PipelineSpec,
    records: Iterable[Record],
    writer: PartWriter,
    *,
    batch_size: int,
    n_process: int,
    docbin_dir: Optional[Path] = None,
    on_progress: Optional[Progress] = None,
) -> List[Path]:
    """Annotate and write; ``on_progress(n)`` after every ``batch_size`` rows. Returns the files written."""
    nlp = spec.load()
    sink = LocalSink(writer, docbin_dir=docbin_dir, batch_size=batch_size, on_progress=on_progress)
    if n_process == 1:
        pipe_in_zones(nlp, records, sink, batch_size=batch_size, window=writer.rows_per_file)
    else:
        for row, doc in annotate_records(nlp, records, batch_size=batch_size, n_process=n_process, spill=sink.add):
            sink.add(row, doc)
    sink.close()
    return list(writer.files)
