"""OUTPUT: a folder of Parquet (default) or JSONL files, a manifest, optional DocBin shards.

Layout (both engines)::

    OUTPUT/_annotate.json          what wrote it (format, pipeline, input): marks the folder as ours
    OUTPUT/*.parquet | *.jsonl     rows id, text, entities, llm, error (Ray Data names its files .json)
    OUTPUT/docbin/<hash>.spacy     with --docbin: the annotated docs, user_data kept

An existing OUTPUT is never overwritten silently: by default the run refuses; ``--overwrite``
deletes it first (only a folder with our manifest), ``--resume`` keeps it and annotates only
the ids it does not hold yet (a run that crashed leaves whole files only: each file is written
to a temporary name and renamed). Read it all back with :func:`read_output`, or with
``pandas.read_parquet(OUTPUT)`` / ``pyarrow.dataset.dataset(OUTPUT)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set

from spacy_ner_project.errors import UserError

from .predict import OutputRecord

if TYPE_CHECKING:
    from spacy.tokens import Doc

MANIFEST = "_annotate.json"
DOCBIN_DIR = "docbin"
SUFFIXES = {"parquet": (".parquet",), "jsonl": (".jsonl", ".json")}


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


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class ShardWriter:
    """Writes rows to OUTPUT as numbered files of this run (``part-<run>-00000.parquet``)."""

    def __init__(self, folder: Path, *, output_format: str) -> None:
        self.folder = folder
        self.output_format = output_format
        self.run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.files: List[Path] = []

    def write(self, rows: Sequence[OutputRecord]) -> Path:
        path = self.folder / f"part-{self.run}-{len(self.files):05d}{SUFFIXES[self.output_format][0]}"
        if self.output_format == "parquet":
            import pyarrow.parquet as pq

            _atomic(path, lambda tmp: pq.write_table(to_arrow(rows), tmp))
        else:
            _atomic(path, lambda tmp: tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"))
        self.files.append(path)
        return path


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


def output_files(folder: Path) -> List[Path]:
    """The row files in OUTPUT (either format), sorted."""
    suffixes = {suffix for group in SUFFIXES.values() for suffix in group}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in suffixes and not p.name.startswith((".", "_")))


def read_output_file(path: Path, columns: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=list(columns) if columns else None).to_pylist()
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the output file {path} ({err}): delete it and rerun with --resume") from err
    return [{key: row.get(key) for key in columns} for row in rows] if columns else rows


def read_output(folder: Path, *, columns: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Every row in OUTPUT (``entities`` as lists of dicts, ``llm`` as JSON text)."""
    return [row for path in output_files(folder) for row in read_output_file(path, columns)]


def done_ids(folder: Path) -> Set[str]:
    """Ids OUTPUT already holds (rows without an id do not count)."""
    return {row["id"] for row in read_output(folder, columns=["id"]) if row["id"] is not None}


def read_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as err:
        raise UserError(f"{path} is not JSON ({err}): it is not an annotate output; choose another OUTPUT") from err


def prepare_output(folder: Path, *, output_format: str, existing: str, manifest: Mapping[str, Any]) -> Set[str]:
    """Create OUTPUT, or deal with the one there as ``existing`` says ("refuse", "overwrite",
    "resume"); write the manifest. Returns the ids to skip (resume), else an empty set."""
    done: Set[str] = set()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"OUTPUT {folder} is a file; annotate writes a folder: choose another OUTPUT path")
    if folder.exists() and any(folder.iterdir()):
        previous = read_manifest(folder)
        if previous is None:
            raise UserError(
                f"OUTPUT {folder} exists and holds no {MANIFEST}, so it is not an annotate output: "
                "choose another OUTPUT path (annotate never deletes what it did not write)"
            )
        if existing == "refuse":
            raise UserError(
                f"OUTPUT {folder} holds an earlier annotate output: pass --resume to annotate only the ids "
                "it lacks, or --overwrite to replace it"
            )
        if existing == "overwrite":
            shutil.rmtree(folder)
        elif previous.get("format") != output_format:
            raise UserError(
                f"OUTPUT {folder} holds {previous.get('format')} files; resume with --format {previous.get('format')}"
            )
        else:
            done = done_ids(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps(dict(manifest, format=output_format), indent=2, default=str), encoding="utf-8"))
    return done


def summarize(rows: Iterable[Mapping[str, Any]]) -> Dict[str, int]:
    """Counts of rows, rows with an error, entities."""
    counts = {"rows": 0, "errors": 0, "entities": 0}
    for row in rows:
        counts["rows"] += 1
        counts["errors"] += row.get("error") is not None
        counts["entities"] += len(row.get("entities") or [])
    return counts
