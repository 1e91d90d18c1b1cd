"""OUTPUT: a folder of Parquet (default) or JSONL part files, a manifest, optional DocBin shards.

Layout (both engines write it with :class:`PartWriter`, and everything reads it with
:func:`read_output`: ``--resume``, the summary, the tests)::

    OUTPUT/_annotate.json                      the manifest: layout, format, what made the rows
                                               (the pipeline's identity, the ids' type), each run
    OUTPUT/part-<run>-<n>.parquet | .jsonl     rows id, text, entities, llm, error; <run> is the
                                               run's number and start time, <n> counts its parts
    OUTPUT/docbin/<hash>.spacy                 with --docbin: the annotated docs, user_data kept

An existing OUTPUT is never overwritten silently: by default the run refuses; ``--overwrite``
deletes it first (only a folder with our manifest), ``--resume`` keeps it and annotates only
the ids it does not hold yet and those whose LLM request failed (a run that crashed leaves
whole files only: each file is written to a temporary name and renamed). OUTPUT holds one row
per id: a row asked again replaces the earlier one, which is removed from its file once the
new row is written (and a run that stopped in between leaves the later row to win: the next
resume removes the earlier one first). Read it all back with :func:`read_output`, or with
``pandas.read_parquet(OUTPUT)`` / ``pyarrow.dataset.dataset(OUTPUT)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set

from spacy_ner_project.errors import UserError

from .predict import OutputRecord, request_failed
from .settings import OptionError

if TYPE_CHECKING:
    from spacy.tokens import Doc

MANIFEST = "_annotate.json"
DOCBIN_DIR = "docbin"
PART_PREFIX = "part-"
SUFFIXES = {"parquet": ".parquet", "jsonl": ".jsonl"}
# the manifest's "layout": what this module writes and reads; an OUTPUT of another layout
# (written before there was one: Ray named its files .json, no pipeline identity) is not resumed
LAYOUT = 2
STATUS_COLUMNS = ("id", "error", "llm")  # what resuming reads of each row


def require_pyarrow(what: str) -> None:
    """Raise a UserError naming the fix when pyarrow (for Parquet) is not installed."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UserError(f"{what} needs pyarrow: pip install -e \".[ray]\" (or pip install pyarrow), or use JSONL") from None


def arrow_schema() -> Any:
    import pyarrow as pa

    entity = pa.struct(
        [("start_char", pa.int64()), ("end_char", pa.int64()), ("label", pa.string()), ("text", pa.string())]
    )
    return pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("entities", pa.list_(entity)), ("llm", pa.string()), ("error", pa.string())]
    )


def to_arrow(rows: Sequence[OutputRecord]) -> Any:
    """Rows as a pyarrow Table with :func:`arrow_schema` (the same for every file and engine)."""
    import pyarrow as pa

    return pa.Table.from_pylist(list(rows), schema=arrow_schema())


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_part(path: Path, rows: Sequence[Mapping[str, Any]], *, output_format: str) -> None:
    """Write ``rows`` as one part file (whole or not at all: a temporary name, then renamed)."""
    if output_format == "parquet":
        import pyarrow.parquet as pq

        _atomic(path, lambda tmp: pq.write_table(to_arrow(rows), tmp))  # type: ignore[arg-type]
    else:
        _atomic(path, lambda tmp: tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"))


@dataclass
class RunCounts:
    """What a run wrote: rows, of them rows with an error value, of those rows whose LLM
    request failed (not finished: a resumed run asks again), and entities."""

    rows: int = 0
    errors: int = 0
    failed: int = 0
    entities: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        self.errors += row.get("error") is not None
        self.failed += request_failed(row)
        self.entities += len(row.get("entities") or [])


class PartWriter:
    """This run's rows into OUTPUT, ``rows_per_file`` rows a part (``part-<run>-00000``):
    the one writer of both engines. Holds one part's rows at most; counts what it wrote and
    remembers which of the ids in ``replacing`` (rows asked again, by the file holding their
    earlier row) it wrote."""

    def __init__(
        self,
        folder: Path,
        *,
        output_format: str,
        run: str,
        rows_per_file: int,
        replacing: Optional[Mapping[str, Path]] = None,
    ) -> None:
        self.folder = folder
        self.output_format = output_format
        self.run = run
        self.rows_per_file = rows_per_file
        self.replacing: Mapping[str, Path] = replacing or {}
        self.files: List[Path] = []
        self.counts = RunCounts()
        self.replaced: Set[str] = set()
        self._rows: List[OutputRecord] = []

    def add(self, row: OutputRecord) -> Optional[Path]:
        """Buffer ``row``; returns the part written when it filled one, else None."""
        self._rows.append(row)
        self.counts.add(row)
        if row["id"] is not None and row["id"] in self.replacing:
            self.replaced.add(row["id"])
        return self.flush() if len(self._rows) >= self.rows_per_file else None

    def flush(self) -> Optional[Path]:
        """Write the buffered rows as the next part (None when there are none)."""
        if not self._rows:
            return None
        path = self.folder / f"{PART_PREFIX}{self.run}-{len(self.files):05d}{SUFFIXES[self.output_format]}"
        write_part(path, self._rows, output_format=self.output_format)
        self.files.append(path)
        self._rows = []
        return path

    def replace_earlier_rows(self) -> None:
        """Remove from earlier parts the rows this run wrote again (after :meth:`flush`)."""
        by_file: Dict[Path, Set[str]] = {}
        for key in self.replaced:
            by_file.setdefault(self.replacing[key], set()).add(key)
        drop_rows(by_file, output_format=self.output_format)


def write_docbin_shard(folder: Path, docs: Sequence[Doc]) -> Optional[Path]:
    """Write the docs as one DocBin named by a hash of their texts: a retried batch
    rewrites the same file instead of adding a second copy."""
    from spacy.tokens import DocBin

    if not docs:
        return None
    digest = hashlib.sha1("\x00".join(doc.text for doc in docs).encode("utf-8")).hexdigest()[:20]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.spacy"
    _atomic(path, lambda tmp: DocBin(docs=docs, store_user_data=True).to_disk(tmp))
    return path


# -- reading -----------------------------------------------------------------------------------


def output_files(folder: Path) -> List[Path]:
    """The part files in OUTPUT (``part-*.parquet`` / ``part-*.jsonl``), oldest run first."""
    suffixes = set(SUFFIXES.values())
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(PART_PREFIX) and p.suffix in suffixes)


def read_output_file(path: Path, columns: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """The rows of one part file (only ``columns``, when given)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=list(columns) if columns else None).to_pylist()
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the output file {path} ({err}): delete it, then resume the run to annotate its rows again") from err
    return [{key: row.get(key) for key in columns} for row in rows] if columns else rows


def read_output(folder: Path, *, columns: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Every row in OUTPUT (``entities`` as lists of dicts, ``llm`` as JSON text)."""
    return [row for path in output_files(folder) for row in read_output_file(path, columns)]


@dataclass
class OutputState:
    """What an existing OUTPUT holds, by id: the ids whose row is finished (``done``), the ids
    whose row's LLM request failed with the file holding that row (``failed``), and the rows
    a later row replaced but a stopped run left behind (``superseded``: file → ids)."""

    done: Set[str] = field(default_factory=set)
    failed: Dict[str, Path] = field(default_factory=dict)
    superseded: Dict[Path, Set[str]] = field(default_factory=dict)


def scan_output(folder: Path) -> OutputState:
    """Read the id, error and llm of every row, oldest part first: an id's latest row counts."""
    state = OutputState()
    latest: Dict[str, Path] = {}
    for path in output_files(folder):
        for row in read_output_file(path, STATUS_COLUMNS):
            key = row["id"]
            if key is None:
                continue
            if key in latest:
                state.superseded.setdefault(latest[key], set()).add(key)
            latest[key] = path
            if request_failed(row):
                state.done.discard(key)
                state.failed[key] = path
            else:
                state.failed.pop(key, None)
                state.done.add(key)
    return state


def drop_rows(ids_by_file: Mapping[Path, Set[str]], *, output_format: str) -> None:
    """Rewrite each file without the rows of its ids (a file left empty is deleted)."""
    for path, ids in ids_by_file.items():
        rows = [row for row in read_output_file(path) if row.get("id") not in ids]
        if rows:
            write_part(path, rows, output_format=output_format)
        else:
            path.unlink()


# -- the manifest and an existing OUTPUT ---------------------------------------------------------


def read_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as err:
        raise UserError(f"{path} is not JSON ({err}): it is not an annotate output; choose another OUTPUT") from err


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    _atomic(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8"))


def existing_output(folder: Path, *, output_format: str, existing: str) -> Optional[Dict[str, Any]]:
    """Check OUTPUT against ``existing`` ("refuse", "overwrite", "resume") before any work;
    returns the manifest of the OUTPUT to resume, else None. Nothing is changed here."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"OUTPUT {folder} is a file; annotate writes a folder: choose another OUTPUT path")
    if not folder.exists() or not any(folder.iterdir()):
        return None
    previous = read_manifest(folder)
    if previous is None:
        raise UserError(
            f"OUTPUT {folder} exists and holds no {MANIFEST}, so it is not an annotate output: "
            "choose another OUTPUT path (annotate never deletes what it did not write)"
        )
    if existing == "refuse":
        raise OptionError(
            lambda name: f"OUTPUT {folder} holds an earlier annotate output: pass {name('existing', 'resume')} to annotate "
            f"only the ids it lacks, or {name('existing', 'overwrite')} to replace it"
        )
    if existing == "overwrite":
        return None
    if previous.get("layout") != LAYOUT:
        raise OptionError(
            lambda name: f"OUTPUT {folder} was written by an earlier version of annotate (another layout of files), "
            f"which cannot be resumed: pass {name('existing', 'overwrite')} to annotate it all again, or choose another OUTPUT"
        )
    if previous.get("format") != output_format:
        raise OptionError(
            lambda name: f"OUTPUT {folder} holds {previous.get('format')} files; resume with {name('output_format', previous.get('format'))}"
        )
    return previous


def start_run(folder: Path, *, manifest: Mapping[str, Any], previous: Optional[Mapping[str, Any]], run: Mapping[str, Any]) -> OutputState:
    """Make OUTPUT ready for this run: a fresh folder (an earlier annotate output deleted), or the
    one to resume, cleaned of what a stopped run left (temporary files, rows written again);
    record the run in the manifest. Returns what OUTPUT holds."""
    state = OutputState()
    if previous is None and folder.exists():
        shutil.rmtree(folder)  # only an annotate output gets here (existing_output)
    folder.mkdir(parents=True, exist_ok=True)
    if previous is not None:
        for leftover in folder.glob(f".{PART_PREFIX}*.tmp"):
            leftover.unlink()
        state = scan_output(folder)
        drop_rows(state.superseded, output_format=str(manifest["format"]))
    runs = list(previous.get("runs", [])) if previous is not None else []
    write_manifest(folder, dict(manifest, layout=LAYOUT, runs=[*runs, dict(run)]))
    return state


def run_name(previous: Optional[Mapping[str, Any]]) -> str:
    """This run's part-file name: its number in OUTPUT (so names sort in run order), its start."""
    number = len(previous.get("runs", [])) + 1 if previous is not None else 1
    return f"{number:04d}-{time.strftime('%Y%m%d-%H%M%S')}"

