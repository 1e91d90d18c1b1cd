"""``annotate(PIPELINE, INPUT, OUTPUT)``: prepare OUTPUT, pick the engine, summarise the run."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from .local import Progress, run_local
from .output import DOCBIN_DIR, ShardWriter, output_files, prepare_output, read_output_file, require_pyarrow, summarize
from .pipeline import pipeline_spec
from .records import input_format, read_records, skip_done
from .settings import AnnotateOptions, InputSpec


@dataclass
class AnnotateSummary:
    output: Path
    engine: str
    rows: int  # rows written by this run
    errors: int  # of them, rows with an error value
    entities: int
    skipped: int  # ids already in OUTPUT (resume)
    seconds: float
    files: List[Path]
    overrides: Dict[str, Any]


def annotate(
    pipeline: str,
    source: InputSpec,
    output: Path,
    *,
    options: AnnotateOptions = AnnotateOptions(),
    on_progress: Optional[Progress] = None,
) -> AnnotateSummary:
    """Annotate every record of ``source`` with ``pipeline`` into the folder ``output``."""
    start = time.perf_counter()
    kind = input_format(source)
    if options.output_format == "parquet" or kind == "parquet" or options.engine == "ray":
        require_pyarrow("Parquet input/output and the Ray engine")
    spec = pipeline_spec(
        pipeline,
        workers=options.workers,
        capacity=options.llm_capacity,
        cache=options.llm_cache,
        code=options.code,
        use_gpu=options.engine == "ray" and options.gpus_per_actor > 0,
    )
    manifest = {"pipeline": pipeline, "input": str(source.path), "input_format": kind, "options": asdict(options)}
    done = prepare_output(output, output_format=options.output_format, existing=options.existing, manifest=manifest)
    before = set(output_files(output))
    docbin_dir = output / DOCBIN_DIR if options.docbin else None
    if options.engine == "local":
        writer = ShardWriter(output, output_format=options.output_format)
        run_local(
            spec,
            skip_done(read_records(source), done),
            writer,
            batch_size=options.batch_size,
            n_process=options.n_process,
            rows_per_file=options.rows_per_file,
            docbin_dir=docbin_dir,
            on_progress=on_progress,
        )
    else:
        from .ray_engine import ray_session, run_ray

        with ray_session(options.address):
            run_ray(spec, source, kind, output, options=options, done=frozenset(done), docbin_dir=docbin_dir)
    files = [path for path in output_files(output) if path not in before]
    counts = summarize(row for path in files for row in read_output_file(path))
    return AnnotateSummary(
        output=output,
        engine=options.engine,
        rows=counts["rows"],
        errors=counts["errors"],
        entities=counts["entities"],
        skipped=len(done),
        seconds=round(time.perf_counter() - start, 3),
        files=files,
        overrides=dict(spec.overrides),
    )
