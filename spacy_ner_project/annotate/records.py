"""INPUT → records ``{"id", "text", "error"}``: one reader per format, one validation for all.

A record that cannot be annotated is never an exception: it gets an ``error`` value (and
``text``/``id`` as far as they could be read) and goes to OUTPUT like any other. The same
functions turn raw rows into records for both engines (the Ray engine's read tasks call
:func:`records_from_jsonl` on a range of a JSONL file's lines, :func:`txt_records` on some of
the .txt files, :func:`parquet_records` on one Parquet file), so both engines see exactly the
same records.

What makes INPUT as a whole unusable is refused before any work, by :func:`scan_input`: two
records with one id (it names the first two lines or rows that share it), ids of both JSON
types (the integer 1 and the string "1" would be one id), and bytes that are not UTF-8 (the
file and line; ``encoding_errors="replace"`` reads them as U+FFFD instead). Ids are written
as strings (an integer id 7 becomes "7"); OUTPUT's manifest keeps their type, so a resumed
run cannot mix them either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import AbstractSet, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, TypedDict

from spacy_ner_project.errors import UserError

from .settings import InputFormat, InputSpec, OptionError, OptionName

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_ROWS_PER_BATCH = 1024
BOM = b"\xef\xbb\xbf"
STRING, INTEGER = "string", "integer"  # the JSON types an id may have


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
        return f"text has {len(text):,} characters, more than max_chars={max_chars:,}: split the document or raise max_chars"
    return None


def id_type(value: Any) -> Optional[str]:
    """``STRING`` or ``INTEGER`` for a usable id, else None (a bool is no id)."""
    if isinstance(value, str):
        return STRING
    if isinstance(value, int) and not isinstance(value, bool):
        return INTEGER
    return None


def _id(value: Any) -> Optional[str]:
    return str(value) if id_type(value) is not None else None


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


def decode(data: bytes, *, spec: InputSpec, where: str, encoding: str = "utf-8") -> str:
    """``data`` as text; bytes that are not UTF-8 are an :class:`OptionError` naming ``where``
    (a file, or a file's line), or U+FFFD with ``spec.encoding_errors == "replace"``."""
    try:
        return data.decode(encoding, errors=spec.encoding_errors)
    except UnicodeDecodeError as err:
        reason = f"{err.reason} at byte {err.start}"

        def words(name: OptionName) -> str:
            return (
                f"{where} is not UTF-8 ({reason}): save INPUT as UTF-8, or pass "
                f"{name('encoding_errors', 'replace')} to read such bytes as U+FFFD"
            )

        raise OptionError(words) from None


def jsonl_lines(lines: Iterable[bytes], *, first_line: int = 1) -> Iterator[Tuple[int, bytes]]:
    """(line number, line without its end) of each line that is not blank, the first of
    ``lines`` being line ``first_line`` (a part of a file); a UTF-8 byte order mark before
    line 1 is dropped. Lines end at b"\\n" only (as in a file opened in binary mode), so both
    engines number them alike."""
    for number, raw in enumerate(lines, start=first_line):
        line = raw.rstrip(b"\r\n")
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        if line.strip():
            yield number, line


def records_from_jsonl(lines: Iterable[bytes], *, path: str, spec: InputSpec, first_line: int = 1) -> Iterator[Record]:
    """The records of a JSONL file's raw lines (the first of them line ``first_line``)."""
    for number, line in jsonl_lines(lines, first_line=first_line):
        yield record_from_line(decode(line, spec=spec, where=f"{path} line {number}"), spec=spec)


def record_from_file(path: str, data: bytes, *, root: Path, spec: InputSpec) -> Record:
    """A record from a .txt file: id = its path relative to the INPUT folder (with /)."""
    try:
        record_id = PurePath(path).relative_to(root).as_posix()
    except ValueError:
        record_id = PurePath(path).name
    text = decode(data, spec=spec, where=path, encoding="utf-8-sig")
    return Record(id=record_id, text=text, error=text_error(text, field="text", max_chars=spec.max_chars))


def txt_root(spec: InputSpec) -> Path:
    return spec.path.resolve()


def txt_files(spec: InputSpec) -> List[Path]:
    """The .txt files under the INPUT folder, sorted."""
    return sorted(p for p in txt_root(spec).rglob("*.txt") if p.is_file())


def txt_records(paths: Iterable[Path], *, spec: InputSpec) -> Iterator[Record]:
    """The records of some of the INPUT folder's .txt files (all of them: :func:`txt_files`)."""
    root = txt_root(spec)
    for path in paths:
        yield record_from_file(str(path), path.read_bytes(), root=root, spec=spec)


def parquet_records(path: str, *, spec: InputSpec) -> Iterator[Record]:
    """The records of a Parquet file or folder (INPUT, or one of its files), batch by batch."""
    import pyarrow.dataset

    for batch in pyarrow.dataset.dataset(path, format="parquet").to_batches(batch_size=PARQUET_ROWS_PER_BATCH):
        for row in batch.to_pylist():
            yield record_from_fields(row, spec=spec)


def read_records(spec: InputSpec) -> Iterator[Record]:
    """Every record of INPUT, in input order (the local engine's reader)."""
    kind = input_format(spec)
    if kind == "jsonl":
        with spec.path.open("rb") as lines:
            yield from records_from_jsonl(lines, path=str(spec.path), spec=spec)
    elif kind == "txt":
        yield from txt_records(txt_files(spec), spec=spec)
    else:
        yield from parquet_records(str(spec.path), spec=spec)


def skip_done(records: Iterable[Record], done: AbstractSet[str]) -> Iterator[Record]:
    """Records whose id is not in ``done`` (the ids OUTPUT holds when resuming); records
    without an id cannot be matched and are annotated (and written) again."""
    return (record for record in records if record["id"] is None or record["id"] not in done)


# -- INPUT as a whole: checked before any work ---------------------------------------------


@dataclass(frozen=True)
class InputScan:
    """What :func:`scan_input` found: the number of records with an id, and the ids' JSON type
    (``STRING`` or ``INTEGER``; None when no record has one)."""

    ids: int
    id_type: Optional[str]


@dataclass
class IdCheck:
    """Ids as they are read, with where each was first seen: refuses a second record with an
    id, and a second JSON type of id. ``unit`` names a position ("line", "row")."""

    path: str
    unit: str
    seen: Dict[str, int] = field(default_factory=dict)
    first_of_type: Optional[Tuple[str, int, Any]] = None

    def add(self, value: Any, position: int) -> None:
        kind = id_type(value)
        if kind is None:
            return  # no usable id: the record becomes a row with an error value
        if self.first_of_type is None:
            self.first_of_type = (kind, position, value)
        elif kind != self.first_of_type[0]:
            self._mixed(kind, position, value)
        key = str(value)
        first = self.seen.setdefault(key, position)
        if first != position:
            raise UserError(
                f"{self.path}: {self.unit}s {first} and {position} share the id {json.dumps(value, ensure_ascii=False)}: "
                "give each record its own id (annotate writes one row per id, and resuming skips ids already written)"
            )

    def _mixed(self, kind: str, position: int, value: Any) -> None:
        first_kind, first_position, first_value = self.first_of_type or (kind, position, value)
        raise UserError(
            f"{self.path}: {self.unit} {first_position} has the {first_kind} id {json.dumps(first_value, ensure_ascii=False)} "
            f"but {self.unit} {position} the {kind} id {json.dumps(value, ensure_ascii=False)}: give every record a string id, "
            'or every record an integer id (ids are written as strings, so 1 and "1" would be one id)'
        )

    def result(self) -> InputScan:
        return InputScan(ids=len(self.seen), id_type=self.first_of_type[0] if self.first_of_type else None)


def scan_input(spec: InputSpec) -> InputScan:
    """Read INPUT once, before any work: refuse duplicate ids, ids of two JSON types and (with
    ``encoding_errors="strict"``) bytes that are not UTF-8, each in one line naming where."""
    kind = input_format(spec)
    if kind == "jsonl":
        return _scan_jsonl(spec)
    if kind == "parquet":
        return _scan_parquet(spec)
    return _scan_txt(spec)


def _scan_jsonl(spec: InputSpec) -> InputScan:
    check = IdCheck(str(spec.path), "line")
    with spec.path.open("rb") as lines:
        for number, line in jsonl_lines(lines):
            text = decode(line, spec=spec, where=f"{spec.path} line {number}")
            try:
                row = json.loads(text)
            except ValueError:
                continue  # a row with an error value
            if isinstance(row, dict):
                check.add(row.get(spec.id_field), number)
    return check.result()


def _scan_parquet(spec: InputSpec) -> InputScan:
    import pyarrow.dataset

    dataset = pyarrow.dataset.dataset(str(spec.path), format="parquet")
    check = IdCheck(str(spec.path), "row")
    if spec.id_field not in dataset.schema.names:
        return check.result()  # every row gets an error value
    position = 0
    for batch in dataset.to_batches(columns=[spec.id_field], batch_size=PARQUET_ROWS_PER_BATCH * 64):
        for value in batch.column(0).to_pylist():
            position += 1
            check.add(value, position)
    return check.result()


def _scan_txt(spec: InputSpec) -> InputScan:
    """Ids are relative paths (unique); with strict decoding, every file must be UTF-8."""
    files = txt_files(spec)
    if spec.encoding_errors == "strict":
        for path in files:
            decode(path.read_bytes(), spec=spec, where=str(path), encoding="utf-8-sig")
    return InputScan(ids=len(files), id_type=STRING)
