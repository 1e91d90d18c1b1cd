"""Engine ``ray``: Ray Data read → ``map_batches`` with an actor class → write.

Each actor loads the pipeline once (``spacy.require_gpu()`` first when it has a GPU) and
annotates batch after batch with the same code as the local engine. A dead actor is
restarted and its batch retried (``max_restarts``/``max_task_retries``), so a killed worker
loses and doubles nothing: a batch's rows reach OUTPUT only when the batch finished. Reading
and writing are Ray Data's own (read_text / read_parquet / read_binary_files,
write_parquet / write_json); OUTPUT and INPUT must be paths every node can reach (a shared
filesystem or object storage) when ``address`` names a cluster.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterator, List, Optional

from spacy_ner_project.errors import UserError

from .output import to_arrow, write_docbin_shard
from .pipeline import PipelineSpec
from .predict import annotate_records
from .records import records_from_rows, skip_done
from .settings import AnnotateOptions, InputSpec


@contextmanager
def ray_session(address: Optional[str]) -> Iterator[None]:
    """Join the Ray already initialised in this process, or the cluster at ``address``;
    with neither, start a local Ray and shut it down afterwards."""
    try:
        import ray
    except ImportError:
        raise UserError('--engine ray needs Ray: pip install -e ".[ray]" (or pip install "ray[data]")') from None
    if ray.is_initialized():
        yield
        return
    ray.init(address=address, include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def parse_batch(batch: Any, *, kind: str, spec: InputSpec, done: FrozenSet[str]) -> Dict[str, List[Any]]:
    """Raw rows of a Ray Data reader → records (minus those already in OUTPUT)."""
    records = list(skip_done(records_from_rows(batch.to_pylist(), kind=kind, spec=spec), done))
    return {key: [record[key] for record in records] for key in ("id", "text", "error")}


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
# a reader or writer task that needs a CPU would wait forever (Ray Data's resource budget).
# So the input is read and parsed (streamed, spilled to disk when large) before the actor pool
# starts, and the writes ask for no CPU.
IO_TASK_ARGS: Dict[str, Any] = {"num_cpus": 0}


def read_dataset(spec: InputSpec, kind: str) -> Any:
    import ray.data

    path = str(spec.path.resolve())
    if kind == "jsonl":
        return ray.data.read_text(path)
    if kind == "txt":
        return ray.data.read_binary_files(path, include_paths=True, file_extensions=["txt"])
    return ray.data.read_parquet(path)


def run_ray(
    spec: PipelineSpec,
    source: InputSpec,
    kind: str,
    output: Path,
    *,
    options: AnnotateOptions,
    done: FrozenSet[str],
    docbin_dir: Optional[Path],
) -> None:
    """Annotate INPUT into OUTPUT on Ray (the session of :func:`ray_session`)."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = options.progress
    dataset = read_dataset(source, kind).map_batches(
        parse_batch, fn_kwargs={"kind": kind, "spec": source, "done": done}, batch_format="pyarrow"
    ).materialize()
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
    if options.output_format == "parquet":
        annotated.write_parquet(str(output.resolve()), ray_remote_args=IO_TASK_ARGS)
    else:
        annotated.write_json(str(output.resolve()), ray_remote_args=IO_TASK_ARGS, force_ascii=False)
