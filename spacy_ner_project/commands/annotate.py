"""``annotate``: run a pipeline over a corpus on this machine or on Ray, into a folder of
Parquet or JSONL rows (id, text, entities, llm, error).

    python -m spacy_ner_project annotate training/ner_cnn/model-best docs.jsonl out/
    python -m spacy_ner_project annotate en_ner_conll03_trf texts/ out/ --engine ray --actors 8 --address auto

The logic is in :mod:`spacy_ner_project.annotate`; this module parses options and shows progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from spacy_ner_project.annotate import AnnotateOptions, AnnotateSummary, InputSpec, annotate
from spacy_ner_project.annotate.settings import ENCODING_ERRORS, MIN_OBJECT_STORE_MB, InputFormat
from spacy_ner_project.commands import flag_namer, in_flags, path_option
from spacy_ner_project.commands.bounds import above, at_least
from spacy_ner_project.errors import UserError
from spacy_ner_project.progress import bar

_OPTIONS = AnnotateOptions()
_INPUT = InputSpec(Path("."))
# the flag of each field of InputSpec/AnnotateOptions that a library message names
FLAGS = {
    "output_format": "--format",
    "max_chars": "--max-chars",
    "encoding_errors": "--encoding-errors",
    "id_field": "--id-field",
    "text_field": "--text-field",
}
VALUE_FLAGS = {("existing", "resume"): "--resume", ("existing", "overwrite"): "--overwrite"}
flag = flag_namer(FLAGS, VALUE_FLAGS)


def annotate_cli(
    ctx: typer.Context,
    pipeline: str = typer.Argument(..., help="Pipeline folder (e.g. training/x/model-best), installed package name, blank:LANG or config file (.cfg)"),
    source: Path = typer.Argument(..., metavar="INPUT", help="JSONL file, Parquet file/folder, or folder of .txt files"),
    output: Path = typer.Argument(..., help="Output folder (created; an existing one needs --resume or --overwrite)"),
    engine: str = typer.Option(_OPTIONS.engine, "--engine", help="local (nlp.pipe) or ray (Ray Data actors)"),
    output_format: str = typer.Option(_OPTIONS.output_format, "--format", help="Output files: parquet or jsonl"),
    input_format: InputFormat = typer.Option(_INPUT.format, "--input-format", help="What INPUT holds (auto: by its suffix)"),
    id_field: str = typer.Option(_INPUT.id_field, "--id-field", help="Field holding the id (JSONL, Parquet)"),
    text_field: str = typer.Option(_INPUT.text_field, "--text-field", help="Field holding the text (JSONL, Parquet)"),
    max_chars: int = typer.Option(_INPUT.max_chars, "--max-chars", help="Longer texts get an error value instead of entities (the pipeline's nlp.max_length is raised to it)", callback=at_least(1)),
    encoding_errors: str = typer.Option(_INPUT.encoding_errors, "--encoding-errors", help=f"Bytes that are not UTF-8: {' or '.join(ENCODING_ERRORS)} (strict: refuse INPUT, naming file and line; replace: read them as U+FFFD)"),
    batch_size: int = typer.Option(_OPTIONS.batch_size, "--batch-size", help="Docs per nlp.pipe / actor batch", callback=at_least(1)),
    n_process: int = typer.Option(_OPTIONS.n_process, "--n-process", help="local: processes", callback=at_least(1)),
    address: Optional[str] = typer.Option(_OPTIONS.address, "--address", help="ray: cluster address ('auto', HOST:PORT); default: start a local Ray"),
    actors: int = typer.Option(_OPTIONS.actors, "--actors", help="ray: actors, each with its own copy of the pipeline", callback=at_least(1)),
    cpus_per_actor: float = typer.Option(_OPTIONS.cpus_per_actor, "--cpus-per-actor", help="ray: CPUs per actor", callback=above(0)),
    gpus_per_actor: float = typer.Option(_OPTIONS.gpus_per_actor, "--gpus-per-actor", help="ray: GPUs per actor (> 0: spacy.require_gpu())", callback=at_least(0)),
    max_retries: int = typer.Option(_OPTIONS.max_retries, "--max-retries", help="ray: restarts of a dead actor / retries of its batch", callback=at_least(0)),
    object_store_mb: Optional[int] = typer.Option(_OPTIONS.object_store_mb, "--object-store-mb", help=f"ray, local Ray only (no --address): object store size in MB (default: Ray's, 30% of memory; at least {MIN_OBJECT_STORE_MB})", callback=at_least(MIN_OBJECT_STORE_MB)),
    llm_capacity: Optional[int] = typer.Option(_OPTIONS.llm_capacity, "--llm-capacity", help="LLM: requests the server takes at once, shared by all workers (default: the pipeline's concurrency)", callback=at_least(1)),
    llm_cache: Optional[Path] = typer.Option(_OPTIONS.llm_cache, "--llm-cache", help="LLM: SQLite response cache file (on each node's local disk)"),
    docbin: bool = typer.Option(_OPTIONS.docbin, "--docbin", help="Also write DocBin shards to OUTPUT/docbin/"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing OUTPUT (an annotate output only) first"),
    resume: bool = typer.Option(False, "--resume", help="Keep an existing OUTPUT and annotate only the ids it lacks or whose LLM request failed"),
    code: Optional[Path] = typer.Option(_OPTIONS.code, "--code", help="Python file registering custom components, imported by every worker"),
) -> None:
    """Annotate a corpus with a spaCy pipeline: entities (and the LLM task's record) per document.

    Any further spaCy config override is applied when the pipeline loads, e.g. --llm.model NAME
    --llm.base_url URL for configs/llm_ner.cfg.
    """
    from spacy.cli._util import parse_config_overrides

    if overwrite and resume:
        raise UserError("--overwrite and --resume exclude each other: choose one")
    options = AnnotateOptions(
        engine=engine, output_format=output_format, batch_size=batch_size, n_process=n_process,
        address=address, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor,
        max_retries=max_retries, object_store_mb=object_store_mb, llm_capacity=llm_capacity, llm_cache=llm_cache, docbin=docbin,
        existing="overwrite" if overwrite else "resume" if resume else "refuse", code=code,
        config_overrides=parse_config_overrides(ctx.args),
    )
    spec = InputSpec(
        source, format=input_format, id_field=id_field, text_field=text_field, max_chars=max_chars, encoding_errors=encoding_errors
    )
    with in_flags(FLAGS, VALUE_FLAGS), path_option("--llm-cache", llm_cache):
        if engine == "local":
            with bar(unit=" docs", desc="annotate") as meter:  # quiet when stderr is not a terminal
                summary = annotate(pipeline, spec, output, options=options, on_progress=meter.update)
        else:
            summary = annotate(pipeline, spec, output, options=options)  # Ray Data shows its own progress bars
    report(summary, output)


def report(summary: AnnotateSummary, output: Path) -> None:
    """The run in a few lines: rows, errors, failed LLM requests (and how to ask again)."""
    again = f"; {summary.asked_again:,} asked again after a failed LLM request" if summary.asked_again else ""
    msg.good(
        f"{summary.rows:,} rows ({summary.errors:,} with an error, {summary.entities:,} entities) "
        f"in {summary.seconds:.1f}s → {output}" + (f"; {summary.skipped:,} ids were already there" if summary.skipped else "") + again
    )
    if summary.errors > summary.failed:
        msg.warn(f"{summary.errors - summary.failed:,} records could not be annotated: see the 'error' column")
    if summary.failed:
        msg.warn(f"{summary.failed:,} rows are not finished (their LLM request failed): run again with --resume to ask again for exactly those")
