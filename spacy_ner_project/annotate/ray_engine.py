"""Engine ``ray``: Ray Data read → records in blocks → ``map_batches`` with an actor class → rows to the driver.

It streams, end to end: nothing is materialised, so what the object store and every process
hold is bounded by the blocks in flight, whatever the size of INPUT (a small object store
spills, it does not fail). INPUT is read by read tasks of this module's own datasource
(:func:`input_reads`): a JSONL file in line-aligned byte ranges, a folder's ``.txt`` files some
at a time, Parquet file by file and batch by batch; each turns its raw rows into records with
the local engine's functions (minus those already in OUTPUT) and yields them in blocks of at
most ``ROWS_PER_BLOCK``, so that every actor gets some. The read tasks ask for no CPU
(``READ_CPUS``): where the actors hold every CPU (2 actors on 2 cores) a reader that waited
for one would wait forever (Ray Data's own file readers list the files in a task that does);
``read_concurrency`` bounds them instead.

Each actor loads the pipeline once (``spacy.require_gpu()`` first when it has a GPU) and
annotates batch after batch with the same code as the local engine, each call in
``nlp.memory_zone()`` (the vocabulary forgets the call's new words). A dead actor (its process
or its node) is restarted and its batch retried (``max_restarts``/``max_task_retries``), so it
loses and doubles nothing: a batch's rows reach the driver once, when the batch finished. The
driver writes them with the local engine's :class:`~.output.PartWriter` (the same part files,
names and manifest; it holds one part's rows at most). INPUT (and OUTPUT/docbin, written by
the actors) must be paths every node can reach (a shared filesystem or object storage) when
``address`` names a cluster; the part files need only the driver's.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, FrozenSet, Iterable, Iterator, List, Optional, Sequence

from spacy_ner_project.errors import OptionError

from .output import PartWriter, to_arrow, write_docbin_shard
from .pipeline import PipelineSpec
from .predict import OutputRecord, annotate_records
from .records import Record, parquet_records, records_from_jsonl, skip_done, txt_files, txt_records
from .settings import AnnotateOptions, InputSpec

# what one read task reads: bytes of a JSONL file, .txt files; and records per block (what an
# actor takes at once at most: small enough for every actor to get some, large enough for
# little overhead per block)
JSONL_BYTES_PER_READ = 4 * 2**20
TXT_FILES_PER_READ = 1024
ROWS_PER_BLOCK = 1024
# CPUs a read task asks for (the module docstring), and read tasks at once per actor
READ_CPUS = 0
READS_PER_ACTOR = 0.5
RECORD_COLUMNS = ("id", "text", "error")


@dataclass(frozen=True)
class Read:
    """One read task: ``read()`` yields blocks of records; ``size`` is the bytes it reads."""

    read: Callable[[], Iterator[Any]]
    size: int


@contextmanager
def ray_session(address: Optional[str], *, object_store_mb: Optional[int] = None) -> Iterator[None]:
    """Join the Ray already initialised in this process, or the cluster at ``address``;
    with neither, start a local Ray (its object store ``object_store_mb`` MB when given) and
    shut it down afterwards."""
    try:
        import ray
    except ImportError:
        raise OptionError(lambda name: f'{name("engine", "ray")} needs Ray: pip install -e ".[ray]" (or pip install "ray[data]")') from None
    if ray.is_initialized():
        if object_store_mb is not None:
            raise OptionError(
                lambda name: f"{name('object_store_mb')} sizes the Ray that annotate starts, but this process runs Ray already: "
                "size its object store where it starts (ray.init(object_store_memory=...))"
            )
        yield
        return
    store = object_store_mb * 2**20 if object_store_mb is not None else None
    ray.init(address=address, object_store_memory=store, include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def records_table(records: Iterable[Record]) -> Any:
    """Records as a pyarrow Table of string columns ``id``, ``text``, ``error`` (also when empty)."""
    import pyarrow as pa

    rows = list(records)
    schema = pa.schema([(key, pa.string()) for key in RECORD_COLUMNS])
    return pa.table({key: [record[key] for record in rows] for key in RECORD_COLUMNS}, schema=schema)


def record_blocks(records: Iterable[Record], *, done: Any, rows: int = ROWS_PER_BLOCK) -> Iterator[Any]:
    """The records whose id is not in the set ``done`` (an object ref: fetched once per read
    task) as tables of at most ``rows`` rows (none when there are none)."""
    import ray

    block: List[Record] = []
    for record in skip_done(records, ray.get(done)):
        block.append(record)
        if len(block) >= rows:
            yield records_table(block)
            block = []
    if block:
        yield records_table(block)


@dataclass(frozen=True)
class LineRange:
    """Bytes ``start`` to ``end`` of a JSONL file: whole lines, the first of them line ``first_line``."""

    start: int
    end: int
    first_line: int


def line_ranges(path: Path, *, size: int) -> List[LineRange]:
    """The file in ranges of about ``size`` bytes that end at a line's end (one pass over it)."""
    ranges: List[LineRange] = []
    start, line = 0, 1
    with path.open("rb") as file:
        while data := file.read(size):
            rest = b"" if data.endswith(b"\n") else file.readline()
            end = start + len(data) + len(rest)
            ranges.append(LineRange(start, end, line))
            line += data.count(b"\n") + rest.count(b"\n")
            start = end
    return ranges


def read_line_range(path: Path, part: LineRange, *, spec: InputSpec, done: Any) -> Iterator[Any]:
    """The records of a range of a JSONL file's lines, in blocks."""
    with path.open("rb") as file:
        file.seek(part.start)
        data = file.read(part.end - part.start)
    yield from record_blocks(records_from_jsonl(data.split(b"\n"), path=str(spec.path), spec=spec, first_line=part.first_line), done=done)


def read_txt_files(paths: Sequence[Path], *, spec: InputSpec, done: Any) -> Iterator[Any]:
    """The records of some of the .txt files of the INPUT folder, in blocks."""
    yield from record_blocks(txt_records(paths, spec=spec), done=done)


def read_parquet_file(path: str, *, spec: InputSpec, done: Any) -> Iterator[Any]:
    """The records of one Parquet file, batch by batch, in blocks."""
    yield from record_blocks(parquet_records(path, spec=spec), done=done)


def input_reads(spec: InputSpec, kind: str, *, done: Any) -> List[Read]:
    """INPUT in read tasks: a JSONL file in :func:`line_ranges`, a folder's .txt files
    ``TXT_FILES_PER_READ`` at a time, Parquet file by file (each read batch by batch)."""
    if kind == "jsonl":
        path = spec.path.resolve()
        return [
            Read(functools.partial(read_line_range, path, part, spec=spec, done=done), part.end - part.start)
            for part in line_ranges(path, size=JSONL_BYTES_PER_READ)
        ]
    if kind == "txt":
        files = txt_files(spec)
        groups = [files[i : i + TXT_FILES_PER_READ] for i in range(0, len(files), TXT_FILES_PER_READ)]
        return [Read(functools.partial(read_txt_files, group, spec=spec, done=done), sum(p.stat().st_size for p in group)) for group in groups]
    import pyarrow.dataset

    files = pyarrow.dataset.dataset(str(spec.path.resolve()), format="parquet").files
    return [Read(functools.partial(read_parquet_file, path, spec=spec, done=done), Path(path).stat().st_size) for path in files]


def records_source(reads: Sequence[Read]) -> Any:
    """The read tasks as a Ray Data datasource (a class of Ray's, so made when Ray is there)."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class RecordsSource(Datasource):
        def estimate_inmemory_data_size(self) -> Optional[int]:
            return sum(read.size for read in reads)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None, data_context: Any = None) -> List[Any]:
            return [
                ReadTask(read.read, BlockMetadata(num_rows=None, size_bytes=read.size, input_files=None, exec_stats=None))
                for read in reads
            ]

    return RecordsSource()


def read_concurrency(options: AnnotateOptions, *, reads: int) -> int:
    """Read tasks at once (they ask for no CPU, so this is what bounds them), at most ``reads``
    (the read tasks there are: Ray Data warns of a bound above it)."""
    return max(1, min(round(options.actors * READS_PER_ACTOR), reads))


def read_records_dataset(spec: InputSpec, kind: str, *, options: AnnotateOptions, done: FrozenSet[str]) -> Any:
    """INPUT's records not in ``done`` as a Dataset of string columns id, text, error (lazy).
    Read by the local engine's functions in read tasks of this module's own (Ray Data's file
    readers list the files in a task that asks for a CPU, which the actors may all hold)."""
    import ray
    import ray.data

    reads = input_reads(spec, kind, done=ray.put(done))  # the ids once, not in every read task
    return ray.data.read_datasource(records_source(reads), num_cpus=READ_CPUS, concurrency=read_concurrency(options, reads=len(reads)))


class Annotator:
    """The actor: loads the pipeline once, then annotates one batch per call."""

    def __init__(self, spec: PipelineSpec, batch_size: int, docbin_dir: Optional[str]) -> None:
        self.nlp = spec.load()
        self.batch_size = batch_size
        self.docbin_dir = Path(docbin_dir) if docbin_dir else None

    def __call__(self, batch: Any) -> Any:
        with self.nlp.memory_zone():  # the docs do not outlive the call: rows are plain values
            pairs = list(annotate_records(self.nlp, batch.to_pylist(), batch_size=self.batch_size))
            if self.docbin_dir is not None:
                write_docbin_shard(self.docbin_dir, [doc for _, doc in pairs if doc is not None])
            return to_arrow([row for row, _ in pairs])


def run_ray(
    spec: PipelineSpec,
    source: InputSpec,
    kind: str,
    writer: PartWriter,
    *,
    options: AnnotateOptions,
    done: FrozenSet[str],
    docbin_dir: Optional[Path],
) -> None:
    """Annotate INPUT on Ray (the session of :func:`ray_session`), the rows into ``writer``."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = options.progress
    annotated = read_records_dataset(source, kind, options=options, done=done).map_batches(
        Annotator,
        fn_constructor_args=(spec, options.batch_size, str(docbin_dir) if docbin_dir else None),
        batch_size=options.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=options.cpus_per_actor,
        num_gpus=options.gpus_per_actor or None,
        max_restarts=options.max_retries,
        max_task_retries=options.max_retries,
    )
    for batch in annotated.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows: List[OutputRecord] = batch.to_pylist()
        for row in rows:
            writer.add(row)
    writer.flush()
