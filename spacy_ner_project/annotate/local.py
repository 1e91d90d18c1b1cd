"""Engine ``local``: one ``nlp.pipe`` over the records (``n_process`` processes), on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, List, Optional

from .output import ShardWriter, write_docbin_shard
from .pipeline import PipelineSpec
from .predict import OutputRecord, annotate_records
from .records import Record

if TYPE_CHECKING:
    from spacy.tokens import Doc

Progress = Callable[[int], None]


def run_local(
    spec: PipelineSpec,
    records: Iterable[Record],
    writer: ShardWriter,
    *,
    batch_size: int,
    n_process: int,
    rows_per_file: int,
    docbin_dir: Optional[Path] = None,
    on_progress: Optional[Progress] = None,
) -> List[Path]:
    """Annotate and write; ``on_progress(n)`` after every ``batch_size`` rows. Returns the files written."""
    nlp = spec.load()
    rows: List[OutputRecord] = []
    docs: List[Doc] = []
    since_report = 0
    for row, doc in annotate_records(nlp, records, batch_size=batch_size, n_process=n_process):
        rows.append(row)
        if doc is not None and docbin_dir is not None:
            docs.append(doc)
        since_report += 1
        if on_progress is not None and since_report >= batch_size:
            on_progress(since_report)
            since_report = 0
        if len(rows) >= rows_per_file:
            writer.write(rows)
            if docbin_dir is not None:
                write_docbin_shard(docbin_dir, docs)
            rows, docs = [], []
    if rows:
        writer.write(rows)
    if docbin_dir is not None:
        write_docbin_shard(docbin_dir, docs)
    if on_progress is not None and since_report:
        on_progress(since_report)
    return list(writer.files)
