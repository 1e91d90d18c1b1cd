"""INPUT → records ``{"id", "text", "error"}``: one reader per format, one validation for all.

A record that cannot be annotated is never an exception: it gets an ``error`` value (and
``text``/``id`` as far as they could be read) and goes to OUTPUT like any other. The same
functions turn raw rows into records for both engines (the Ray engine reads with Ray Data's
own readers and calls :func:`records_from_rows` on each batch), so both engines see exactly
the same records. Ids are written as strings (an integer id 7 becomes "7").
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import AbstractSet, Any, Iterable, Iterator, List, Mapping, Optional, TypedDict

from spacy_ner_project.errors import UserError

from .settings import InputFormat, InputSpec

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_ROWS_PER_BATCH = 1024


class Record(TypedDict):
    id: Optional[str]
    text: Optional[str]
    error: Optional[str]


def input_format(spec: InputSpec) -> str:
    """The format of INPUT: the one given, else by suffix (a folder: .txt files, unless it holds Parquet)."""
    path = spec.path
    if not path.exists():
        raise UserError(f"INPUT {path} does not exist: pass a JSONL or Parquet file, or a folder of .txt files")
    if spec.format is not InputFormat.AUTO:
        return spec.format.value
    if path.is_dir():
        return "parquet" if any(path.glob("*.parquet")) and not any(path.rglob("*.txt")) else "txt"
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    raise UserError(
        f"cannot tell the format of INPUT {path} from its suffix: name it .jsonl or .parquet, "
        "or pass --input-format jsonl|parquet|txt"
    )


def text_error(text: Any, *, field: str, max_chars: int) -> Optional[str]:
    """Why ``text`` cannot be annotated, or None."""
    if text is None:
        return f"no {field!r} value"
    if not isinstance(text, str):
        return f"{field!r} must be a string, got {type(text).__name__}"
    if not text.strip():
        return "empty text"
    if len(text) > max_chars:
        return f"text has {len(text):,} characters, more than max_chars={max_chars:,}: split the document or raise --max-chars"
    return None


def _id(value: Any) -> Optional[str]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def record_from_fields(row: Mapping[str, Any], *, spec: InputSpec) -> Record:
    """A record from a JSON object or a Parquet row, by the configured field names."""
    raw_id = row.get(spec.id_field)
    raw_text = row.get(spec.text_field)
    record_id = _id(raw_id)
    text = raw_text if isinstance(raw_text, str) else None
    if record_id is None:
        problem = f"no {spec.id_field!r} value" if raw_id is None else f"{spec.id_field!r} must be a string or an integer, got {type(raw_id).__name__}"
        return Record(id=None, text=text, error=problem)
    return Record(id=record_id, text=text, error=text_error(raw_text, field=spec.text_field, max_chars=spec.max_chars))


def record_from_line(line: str, *, spec: InputSpec) -> Record:
    """A record from one JSONL line."""
    try:
        row = json.loads(line)
    except ValueError as err:
        return Record(id=None, text=None, error=f"line is not JSON ({err}): {line[:80]!r}")
    if not isinstance(row, dict):
        return Record(id=None, text=None, error=f"line is not a JSON object but {type(row).__name__}: {line[:80]!r}")
    return record_from_fields(row, spec=spec)


def record_from_file(path: str, data: bytes, *, root: Path, spec: InputSpec) -> Record:
    """A record from a .txt file: id = its path relative to the INPUT folder (with /)."""
    try:
        record_id = PurePath(path).relative_to(root).as_posix()
    except ValueError:
        record_id = PurePath(path).name
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return Record(id=record_id, text=None, error=f"file is not UTF-8 ({err.reason} at byte {err.start})")
    return Record(id=record_id, text=text, error=text_error(text, field="text", max_chars=spec.max_chars))


def records_from_rows(rows: Iterable[Mapping[str, Any]], *, kind: str, spec: InputSpec) -> List[Record]:
    """Records from raw rows as Ray Data's readers give them: ``{"text": line}`` (read_text
    of JSONL), ``{"path", "bytes"}`` (read_binary_files), or Parquet rows."""
    if kind == "jsonl":
        return [record_from_line(row["text"], spec=spec) for row in rows if row["text"].strip()]
    if kind == "txt":
        root = txt_root(spec)
        return [record_from_file(row["path"], row["bytes"], root=root, spec=spec) for row in rows]
    return [record_from_fields(row, spec=spec) for row in rows]


def txt_root(spec: InputSpec) -> Path:
    return spec.path.resolve()


def txt_files(spec: InputSpec) -> List[Path]:
    """The .txt files under the INPUT folder, sorted."""
    return sorted(p for p in txt_root(spec).rglob("*.txt") if p.is_file())


def read_records(spec: InputSpec) -> Iterator[Record]:
    """Every record of INPUT, in input order (the local engine's reader)."""
    kind = input_format(spec)
    if kind == "jsonl":
        with spec.path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.strip():
                    yield record_from_line(line.rstrip("\r\n"), spec=spec)
    elif kind == "txt":
        root = txt_root(spec)
        for path in txt_files(spec):
            yield record_from_file(str(path), path.read_bytes(), root=root, spec=spec)
    else:
        import pyarrow.dataset

        for batch in pyarrow.dataset.dataset(str(spec.path), format="parquet").to_batches(batch_size=PARQUET_ROWS_PER_BATCH):
            yield from records_from_rows(batch.to_pylist(), kind="parquet", spec=spec)


def skip_done(records: Iterable[Record], done: AbstractSet[str]) -> Iterator[Record]:
    """Records whose id is not in ``done`` (the ids OUTPUT holds when resuming); records
    without an id cannot be matched and are annotated (and written) again."""
    return (record for record in records if record["id"] is None or record["id"] not in done)
