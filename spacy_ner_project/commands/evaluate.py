"""``evaluate``, ``llm-evaluate`` and ``llm-assemble``: the command layer over
:mod:`spacy_ner_project.evaluation` (the options, the console output, the exit code).

``evaluate PIPELINE... DATA --output DIR [--section.key value ...]`` scores every pipeline (a
saved directory, an installed package, or a config file that is assembled and initialised,
few-shot examples from ``paths.train``) on the same gold data and writes ``metrics.json``,
``report.md`` and ``report.html`` to DIR. spaCy config overrides come after the arguments
(``--llm.max_tokens 64``, ``--paths.train null``) and apply to every pipeline. For a pipeline
with an LLM model the progress bar counts done / cached / failed prompts, the metrics get an
``llm`` block, and the command exits 1 when the share of docs whose request finally failed
exceeds ``--max-failed`` (the metrics are written first; a rerun repeats only the failed
requests).

``llm-evaluate`` is the same command with the LLM case's defaults (``--unit sents``,
``--n-docs 100``). Example (Ollama on this machine, cached)::

    python -m spacy_ner_project llm-evaluate configs/llm_ner.cfg corpus/conll2003/dev.spacy \\
        --output metrics/llm/dev --model llama3.1:8b --base-url http://localhost:11434/v1 \\
        --cache cache/llm_responses.sqlite --paths.train corpus/conll2003/train.spacy
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Tuple

import typer
from wasabi import msg

from spacy_ner_project.commands import in_flags, path_option
from spacy_ner_project.commands.bounds import at_least
from spacy_ner_project.defaults import CPU, DISPLACY_LIMIT
from spacy_ner_project.errors import UserError
from spacy_ner_project.evaluation.llm import FailurePolicy
from spacy_ner_project.extras import require_plugin
from spacy_ner_project.scoring.matching import MatchSettings

if TYPE_CHECKING:  # spaCy and the evaluation modules are imported when a command runs, not for --help
    from spacy_ner_project.evaluation.evaluate import Evaluation

DEFAULT_POLICY = FailurePolicy()
DEFAULT_LLM_COMPONENT = "llm"
LLM_DEFAULTS = {"unit": "sents", "n_docs": 100}
EVALUATE_DEFAULTS = {"unit": "docs", "n_docs": None}


def split_overrides(paths: List[str], extra: List[str]) -> Tuple[List[str], dict]:
    """The positional arguments and the spaCy config overrides after them (click hands the
    ``--section.key value`` pairs to a variadic argument)."""
    from spacy.cli._util import parse_config_overrides

    tokens = list(paths) + list(extra)
    first = next((i for i, token in enumerate(tokens) if token.startswith("--")), len(tokens))
    return tokens[:first], parse_config_overrides(tokens[first:])


def print_evaluation(evaluation: Evaluation) -> None:
    """The console summary: F1 per pipeline and mode, every mode's P/R/F, and each LLM run."""
    from spacy_ner_project.evaluation.report import SUMMARY_HEADER, llm_notes, md_mode_table, summary_rows

    msg.table(summary_rows(evaluation), header=SUMMARY_HEADER, divider=True)
    print(md_mode_table(evaluation))
    for result in evaluation.results:
        if result.llm is None:
            continue
        block = result.llm
        stats = ", ".join(f"{key} {value}" for key, value in block["model_stats"].items())
        rate = "n/a" if block["docs_per_second"] is None else block["docs_per_second"]  # None: no answer came
        msg.info(f"{result.name}: {block['n_docs']} docs in {block['seconds']}s ({rate} docs/s); {stats}")
        msg.info(f"{result.name} task: " + ", ".join(f"{key} {value}" for key, value in block["task_report"].items()))
    for line in llm_notes(evaluation):
        msg.warn(line)


@contextmanager
def gpu_option() -> Iterator[None]:
    """The core's DeviceError in the words of the ``--gpu-id`` option."""
    from spacy_ner_project.pipelines import DeviceError

    try:
        yield
    except DeviceError as err:
        raise UserError(f"--gpu-id {err.gpu_id}: {err.reason}; use --gpu-id {CPU} for the CPU") from err


@contextmanager
def stopped_by_ctrl_c(cache: Optional[Path]) -> Iterator[None]:
    """Ctrl-C inside: one line saying what was kept, then exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        kept = f"; the LLM answers so far are in {cache}, which a rerun reads" if cache else ""
        msg.warn(f"Stopped: no report written (it is written once every pipeline is scored){kept}. "
                 "Run the same command again.")
        raise typer.Exit(130) from None


def run_command(
    ctx: typer.Context,
    paths: List[str],
    *,
    output: Path,
    names: Optional[List[str]],
    n_docs: Optional[int],
    unit: str,
    displacy_limit: int,
    gpu_id: int,
    batch_size: Optional[int],
    threads: int,
    settings: Any,
    component: str,
    model: Optional[str],
    base_url: Optional[str],
    cache: Optional[Path],
    max_failed: float,
) -> None:
    """The body of ``evaluate`` and ``llm-evaluate``."""
    from spacy_ner_project import pipelines
    from spacy_ner_project.evaluation import evaluate, report

    positional, overrides = split_overrides(paths, list(ctx.args))
    if len(positional) < 2:
        raise UserError("give at least one pipeline and then the gold .spacy file")
    if positional[-1].endswith(".json"):
        raise UserError(f"{positional[-1]}: the metrics go to a report folder now; give --output DIR instead")
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} is a file; --output names the report directory, give a new or existing folder")
    try:
        policy = FailurePolicy(max_failed=max_failed)
    except ValueError as err:
        raise UserError(str(err)) from err
    llm_overrides = pipelines.model_overrides(component=component, model=model, base_url=base_url, cache=cache)
    with in_flags(), gpu_option(), path_option("--cache", cache), stopped_by_ctrl_c(cache):
        evaluation = evaluate.run_evaluation(
            positional[:-1],
            Path(positional[-1]),
            names=names,
            n_docs=n_docs,
            unit=unit,
            overrides=overrides,
            llm_overrides=llm_overrides,
            llm_component=component,
            gpu_id=gpu_id,
            batch_size=batch_size,
            threads=threads,
            settings=settings,
            show_progress=True,
        )
    report.write_report(evaluation, output, displacy_limit=displacy_limit)
    print_evaluation(evaluation)
    msg.good(f"Report written to {output} (metrics.json, report.md, report.html)")
    failures = [error for r in evaluation.results if r.llm for error in [policy.check(r.llm)] if error]
    if failures:
        with in_flags():
            raise failures[0]


def make_evaluate_command(*, unit: str, n_docs: Optional[int], doc: str) -> Callable[..., None]:
    """A typer function for ``run_command`` with these defaults (``evaluate`` and ``llm-evaluate``
    differ only there)."""
    settings = MatchSettings()  # the fuzzy matcher's defaults, as in evaluate.DEFAULT_SETTINGS

    def command(
        ctx: typer.Context,
        paths: List[str] = typer.Argument(
            ..., metavar="PIPELINE... DATA [--section.key VALUE ...]",
            help="One or more pipelines (directories, package names or config files), then the gold .spacy file; "
            "then spaCy config overrides, e.g. --llm.max_tokens 64",
        ),
        output: Path = typer.Option(..., "--output", "-o", help="Report directory: metrics.json, report.md, report.html"),
        names: Optional[List[str]] = typer.Option(None, "--name", "-n", help="Name of each pipeline in the report, in order"),
        n_docs_: Optional[int] = typer.Option(n_docs, "--n-docs", help="Score only the first N docs or sentences (0: all)", callback=at_least(0, meaning="all")),
        unit_: str = typer.Option(unit, "--unit", help="What is scored (and counted by --n-docs): 'docs' or 'sents' (each sentence its own doc)"),
        displacy_limit: int = typer.Option(DISPLACY_LIMIT, "--displacy-limit", help="Documents rendered per displaCy section (0: none)", callback=at_least(0, meaning="none")),
        gpu_id: int = typer.Option(CPU, "--gpu-id", "-g", help=f"GPU id, {CPU} for CPU", callback=at_least(CPU, meaning="the CPU")),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="nlp.pipe batch size (default: the pipeline's nlp.batch_size; for an LLM >= its concurrency)", callback=at_least(1)),
        threads: int = typer.Option(1, "--threads", help="Worker threads, each running the whole pipeline at one intra-op thread (a trained pipeline on the CPU, many texts: 2 on 2 cores was 1.1-1.2x the words/s, docs/speed.md); 1: nlp.pipe", callback=at_least(1)),
        min_overlap: float = typer.Option(settings.min_overlap, help="overlap mode: least share of gold tokens covered (0-1)"),
        text_threshold: float = typer.Option(settings.text_threshold, help="text mode: least rapidfuzz similarity (0-100)"),
        text_scorer: str = typer.Option(settings.text_scorer, help="text mode: rapidfuzz.fuzz scorer"),
        component: str = typer.Option(DEFAULT_LLM_COMPONENT, "--component", help="LLM component that --model, --base-url and --cache set (in the pipelines that have it; the others are loaded as they are)"),
        model: Optional[str] = typer.Option(None, "--model", help="LLM: override the model name"),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="LLM: override the API base URL"),
        cache: Optional[Path] = typer.Option(None, "--cache", help="LLM: SQLite response cache file (created if missing)"),
        max_failed: float = typer.Option(DEFAULT_POLICY.max_failed, "--max-failed", help="LLM: exit 1 when the share of docs whose request finally failed exceeds this (0-1); all failed always exits 1"),
    ) -> None:
        from spacy_ner_project.evaluation.evaluate import match_settings

        run_command(
            ctx, paths, output=output, names=names, n_docs=n_docs_, unit=unit_, displacy_limit=displacy_limit,
            gpu_id=gpu_id, batch_size=batch_size, threads=threads,
            settings=match_settings(min_overlap=min_overlap, text_threshold=text_threshold, text_scorer=text_scorer),
            component=component, model=model, base_url=base_url, cache=cache, max_failed=max_failed,
        )

    command.__doc__ = doc
    return command


evaluate_cli = make_evaluate_command(
    **EVALUATE_DEFAULTS,
    doc="Score pipelines (directories, packages or config files) on the same gold data with spaCy's and the "
    "fuzzy scorer; write one report. Config overrides after the arguments, e.g. --llm.max_tokens 64.",
)
llm_evaluate_cli = make_evaluate_command(
    **LLM_DEFAULTS,
    doc="`evaluate` with the LLM defaults (--unit sents, --n-docs 100): run an LLM pipeline (config or directory) "
    "over gold data and score it. Config overrides after the arguments, e.g. --llm.max_tokens 64.",
)


def llm_assemble_cli(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="LLM pipeline config, e.g. configs/llm_ner.cfg"),
    output: Path = typer.Argument(..., help="Folder to save the pipeline to"),
    unit: str = typer.Option(LLM_DEFAULTS["unit"], "--unit", help="Few-shot examples from paths.train as 'sents' or whole 'docs'"),
) -> None:
    """`spacy assemble` for the LLM pipeline, with few-shot examples from paths.train: assemble,
    initialise and save it. Config values: spaCy overrides, e.g. --llm.model llama3.1:8b."""
    from spacy.cli._util import parse_config_overrides

    from spacy_ner_project import pipelines

    if not config.is_file():
        raise UserError(f"{config}: no such config file; give the LLM pipeline config, e.g. configs/llm_ner.cfg")
    nlp = pipelines.assemble(config, overrides=parse_config_overrides(list(ctx.args)), unit=unit)
    extras = require_plugin(nlp)  # `spacy package` of the saved pipeline then requires spacy-ner-project[llm]
    nlp.to_disk(output)
    msg.good(f"Saved the LLM pipeline to {output}" + (f" (its package requires the [{','.join(extras)}] extra)" if extras else ""))
