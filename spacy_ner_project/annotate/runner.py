"""``annotate(PIPELINE, INPUT, OUTPUT)``: check everything, prepare OUTPUT, pick the engine, summarise.

Before any work (nothing is written until every check passed): the pipeline is found and
described (``pipeline.pipeline_identity``), an existing OUTPUT is refused, or checked to be
resumable by this run (same layout, format, pipeline and id type), and INPUT is read once
(``records.scan_input``: duplicate ids, mixed id types, bytes that are not UTF-8).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .local import Progress, run_local
from .output import DOCBIN_DIR, PartWriter, existing_output, require_pyarrow, run_name, start_run
from .pipeline import PipelineSpec, identity_difference, pipeline_spec
from .records import InputScan, input_format, read_records, scan_input, skip_done
from .settings import AnnotateOptions, InputSpec, OptionError


@dataclass
class AnnotateSummary:
    output: Path
    engine: str
    rows: int  # rows written by this run
    errors: int  # of them, rows with an error value
    failed: int  # of those, rows whose LLM request failed: not finished, a resumed run asks again
    entities: int
    skipped: int  # ids whose finished row OUTPUT already held (resume)
    asked_again: int  # ids whose earlier LLM request had failed, written again by this run (resume)
    seconds: float
    files: List[Path]
    overrides: Dict[str, Any]


def check_same_pipeline(output: Path, previous: Mapping[str, Any], spec: PipelineSpec) -> None:
    """Refuse to resume an OUTPUT that another pipeline made, naming what differs."""
    difference = identity_difference(previous.get("pipeline") or {}, spec.identity)
    if difference is not None:
        raise OptionError(
            lambda name: f"OUTPUT {output} was made by another pipeline: {difference}; resume with the pipeline that made it, "
            f"or pass {name('existing', 'overwrite')} to annotate it all again, or choose another OUTPUT"
        )


def check_same_id_type(output: Path, previous: Mapping[str, Any], scan: InputScan) -> None:
    """Refuse to resume an OUTPUT of string ids with integer ids, or the other way round
    (both are written as strings: 1 would match the row of "1")."""
    made = previous.get("id_type")
    if made is not None and scan.id_type is not None and made != scan.id_type:
        raise OptionError(
            lambda name: f"OUTPUT {output} holds the rows of {made} ids, this INPUT has {scan.id_type} ids "
            f"(both are written as strings, so 1 would match the row of \"1\"): resume with the INPUT that made it, "
            f"or pass {name('existing', 'overwrite')} to annotate it all again, or choose another OUTPUT"
        )


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
        config_overrides=options.config_overrides,
        max_length=source.max_chars,
    )
    previous = existing_output(output, output_format=options.output_format, existing=options.existing)
    if previous is not None:
        check_same_pipeline(output, previous, spec)
    scan = scan_input(source)
    if previous is not None:
        check_same_id_type(output, previous, scan)
    run = run_name(previous)
    made_by = {
        "format": options.output_format,
        "pipeline": spec.identity,
        "id_type": scan.id_type or (previous or {}).get("id_type"),
    }
    this_run = {
        "run": run,
        "engine": options.engine,
        "input": str(source.path),
        "input_format": kind,
        "input_spec": asdict(source),
        "options": asdict(options),
    }
    state = start_run(output, manifest=made_by, previous=previous, run=this_run)
    writer = PartWriter(output, output_format=options.output_format, run=run, rows_per_file=options.rows_per_file, replacing=state.failed)
    docbin_dir = output / DOCBIN_DIR if options.docbin else None
    if options.engine == "local":
        run_local(
            spec,
            skip_done(read_records(source), state.done),
            writer,
            batch_size=options.batch_size,
            n_process=options.n_process,
            docbin_dir=docbin_dir,
            on_progress=on_progress,
        )
    else:
        from .ray_engine import ray_session, run_ray

        with ray_session(options.address, object_store_mb=options.object_store_mb):
            run_ray(spec, source, kind, writer, options=options, done=frozenset(state.done), docbin_dir=docbin_dir)
    writer.replace_earlier_rows()
    return AnnotateSummary(
        output=output,
        engine=options.engine,
        rows=writer.counts.rows,
        errors=writer.counts.errors,
        failed=writer.counts.failed,
        entities=writer.counts.entities,
        skipped=len(state.done),
        asked_again=len(writer.replaced),
        seconds=round(time.perf_counter() - start, 3),
        files=list(writer.files),
        overrides=dict(spec.overrides),
    )
