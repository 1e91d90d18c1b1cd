"""Engine ``ray``: Ray Data read → ``map_batches`` with an actor class → rows to the driver.

Each actor loads the pipeline once (``spacy.require_gpu()`` first when it has a GPU) and
annotates batch after batch with the same code as the local engine. A dead actor is
restarted and its batch retried (``max_restarts``/``max_task_retries``), so a killed worker
loses and doubles nothing: a batch's rows reach OUTPUT only when the batch finished. Reading
is Ray Data's own (read_binary_files for JSONL and .txt, read_parquet), parsed by the local
engine's functions; the annotated rows stream back to the driver, which writes them with the
local engine's :class:`~.output.PartWriter` (the same part files, names and manifest; the
driver holds one part's rows at most). INPUT (and OUTPUT/docbin, written by the actors) must
be paths every node can reach (a shared filesystem or object storage) when ``address`` names
a cluster; the part files need only the driver's.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, FrozenSet, Iterator, List, Optional

from spacy_ner_project.errors import OptionError, UserError

from .output import PartWriter, to_arrow, write_docbin_shard
from .pipeline import PipelineSpec
from .predict import OutputRecord, annotate_records
from .records import records_from_rows, skip_done
from .settings import AnnotateOptions, InputSpec


@contextmanager
def ray_session(address: Optional[str]) -> Iterator[None]:
    """Join the Ray already initialised in this process, or the cluster at ``address``;
    with neither, start a local Ray and shut it down afterwards."""
    try:
        import ray
    except ImportError:
        raise OptionError(lambda name: f'{name("engine", "ray")} needs Ray: pip install -e ".[ray]" (or pip install "ray[data]")') from None
    if ray.is_initialized():
        yield
        return
    ray.init(address=address, include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def parse_batch(batch: Any, *, kind: str, spec: InputSpec, done: FrozenSet[str]) -> Any:
    """Raw rows of a Ray Data reader → records (minus those already in OUTPUT), as a pyarrow
    Table of string columns (also where a batch holds no id or no text at all)."""
    import pyarrow as pa

    records = list(skip_done(records_from_rows(batch.to_pylist(), kind=kind, spec=spec), done))
    columns = ("id", "text", "error")
    schema = pa.schema([(key, pa.string()) for key in columns])
    return pa.table({key: [record[key] for record in records] for key in columns}, schema=schema)


class Annotator:
    """The actor: loads the pipeline once, then annotates one batch per call."""

    def __init__(self, spec: PipelineSpec, batch_size: int, docbin_dir: Optional[str]) -> None:
        self.nlp = spec.load()
        self.batch_size = batch_size
        self.docbin_dir = Path(docbin_dir) if docbin_dir else None

    def __call__(self, batch: Any) -> Any:
        pairs = list(annotate_records(self.nlp, batch.to_pylist(), batch_size=self.batch_size))
        if self.docbin_dir is not None:
            write_docbin_shard(self.docbin_dir, [doc for _, doc in pairs if doc is not None])
        return to_arrow([row for row, _ in pairs])


# The actors hold the CPUs they ask for; where they hold all of them (2 actors on 2 cores),
# a reader task that needs a CPU would wait forever (Ray Data's resource budget). So the input
# is read and parsed (streamed, spilled to disk when large) before the actor pool starts, and
# the rows are written by the driver, which needs no task.


def read_dataset(spec: InputSpec, kind: str) -> Any:
    import ray.data

    path = str(spec.path.resolve())
    if kind == "jsonl":  # the file's bytes: lines are split and decoded as the local engine does
        return ray.data.read_binary_files(path, include_paths=True)
    if kind == "txt":
        return ray.data.read_binary_files(path, include_paths=True, file_extensions=["txt"])
    return ray.data.read_parquet(path)


# blocks per actor the parsed records are split into at least (the actor pool hands out whole
# blocks: a JSONL file is read as one, which would keep all actors but one idle)
BLOCKS_PER_ACTOR = 4


def spread(dataset: Any, *, options: AnnotateOptions) -> Any:
    """The parsed records in enough blocks for every actor to get some (no shuffle)."""
    blocks = min(options.actors * BLOCKS_PER_ACTOR, -(-dataset.count() // options.batch_size))
    if dataset.num_blocks() >= blocks:
        return dataset
    return dataset.repartition(blocks).materialize()


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
    dataset = spread(
        read_dataset(source, kind).map_batches(
            parse_batch, fn_kwargs={"kind": kind, "spec": source, "done": done}, batch_format="pyarrow"
        ).materialize(),
        options=options,
    )
    annotated = dataset.map_batches(
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
