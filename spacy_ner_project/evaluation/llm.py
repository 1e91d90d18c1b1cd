"""``llm-evaluate``: run an LLM NER pipeline over the first N gold docs and score it.

The pipeline comes from a config (assembled and initialised like ``spacy assemble``, with
few-shot examples from ``paths.train`` when set) or a saved pipeline directory; the model name,
base URL and response cache have their own options, and any other config value is set with
spaCy's ``--section.key value`` overrides (``--llm.max_tokens 64``, ``--paths.train null``).
Predictions are scored with spaCy's NER scorer (``ents_p/r/f``, ``ents_per_type``) and the
project's fuzzy scorer (``fuzzy_ents_<mode>_*``); the metrics JSON also records timing, how
many docs were sent, the model's request counters and what the task could not use.

While it runs, a progress bar shows done / cached / failed prompts (on a terminal only; the
model reports each finished request through its ``on_progress`` hook). The task's per-doc
warnings are collected and summarised in one line per kind ("37 of 100 docs had unparseable
answers (first: ...)"). The command exits 1 when the share of docs whose request failed
exceeds ``--max-failed`` (default 0.1), and always when every request failed; the metrics
are written either way, and a rerun repeats only the failed requests (the others are cached).

Example (Ollama on this machine, cached)::

    python -m spacy_ner_project llm-evaluate configs/llm_ner.cfg corpus/dev.spacy \
        metrics/llm_dev.json --n-docs 100 --unit sents --model llama3.1:8b \
        --base-url http://localhost:11434/v1 --cache .cache/llm_responses.sqlite \
        --paths.train corpus/train.spacy
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import spacy
import srsly
import typer
from spacy.cli._util import parse_config_overrides
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import dict_to_dot, load_config, load_model_from_config
from tqdm import tqdm
from wasabi import msg

from spacy_ner_project.evaluation import evaluate
from spacy_ner_project.llm.record import LLM_RECORD_KEY as USER_DATA_KEY

UNITS = ("docs", "sents")
LLM_LOGGER = "spacy_ner_project.llm"
# The parser's error for a response that is a FailedResponse (components/llm/parser.py).
REQUEST_FAILED = "request failed:"


@dataclass(frozen=True)
class FailurePolicy:
    """When llm-evaluate exits non-zero: the share of docs whose request finally failed exceeds
    ``max_failed`` (0-1), or every doc's request failed (also with ``max_failed = 1``)."""

    max_failed: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_failed <= 1.0:
            raise ValueError(f"--max-failed is a share of docs between 0 and 1, got {self.max_failed}")

    def failed(self, *, n_failed: int, n_docs: int) -> bool:
        return n_docs > 0 and (n_failed == n_docs or n_failed / n_docs > self.max_failed)


def model_overrides(
    *,
    component: str,
    model: Optional[str] = None,
    base_url: Optional[str] = None,
    cache: Optional[Path] = None,
) -> Dict[str, Any]:
    """spaCy config overrides (dot notation) for the LLM component's model settings.

    ``model`` and ``base_url`` are keys of spacy_ner_project.OpenAICompatible.v1; ``cache``
    sets its ``cache`` to spacy_ner_project.SQLiteCache.v1 at that path.
    """
    settings: Dict[str, Any] = {}
    if model is not None:
        settings["model"] = model
    if base_url is not None:
        settings["base_url"] = base_url
    if cache is not None:
        settings["cache"] = {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": str(cache)}
    if not settings:
        return {}
    return dict_to_dot({"components": {component: {"model": settings}}}, for_overrides=True)


def read_gold(path: Path, *, n: int, unit: str) -> List[Doc]:
    """The first ``n`` docs, or sentences (each as its own doc), of a gold DocBin; n <= 0: all."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
    docs = evaluate.read_gold(path, n_docs=n if unit == "docs" and n > 0 else None)
    if unit == "docs":
        return docs
    if not all(doc.has_annotation("SENT_START") for doc in docs):
        raise ValueError(f"{path}: docs have no sentence boundaries; use --unit docs")
    sentences = [sent.as_doc() for doc in docs for sent in doc.sents]
    return sentences[:n] if n > 0 else sentences


def training_examples(path: Path, *, unit: str) -> Callable[[], List[Example]]:
    """get_examples for nlp.initialize: the gold docs (or sentences) of ``path``, for the task's
    few-shot examples (``n_prompt_examples`` in [initialize.components.llm])."""
    if not path.is_file():
        raise FileNotFoundError(
            f"few-shot examples come from paths.train = {path}, which does not exist: run the convert "
            "command first, or pass --paths.train null for zero-shot prompts"
        )
    docs = read_gold(path, n=0, unit=unit)
    return lambda: [Example(doc.copy(), doc) for doc in docs]


def load_llm_pipeline(pipeline: Path, *, overrides: Dict[str, Any], unit: str = "sents") -> Language:
    """A config file is assembled and initialised (as ``spacy assemble`` does, plus few-shot
    examples from ``paths.train`` split by ``unit`` when it is set); a directory is loaded with
    ``spacy.load``. Either way the overrides apply."""
    if pipeline.is_dir():
        return spacy.load(pipeline, config=overrides)
    if not pipeline.exists():
        raise FileNotFoundError(f"{pipeline} is neither a config file nor a pipeline directory")
    config = load_config(pipeline, overrides=overrides, interpolate=False)
    train = config.get("paths", {}).get("train")
    get_examples = training_examples(Path(train), unit=unit) if train else None
    nlp = load_model_from_config(config, auto_fill=True)
    nlp.initialize(get_examples)
    return nlp


def _llm_model(nlp: Language, component: str) -> Any:
    # spacy-llm keeps the model private; our models count their requests in `.stats`.
    return getattr(nlp.get_pipe(component), "_model", None)


def _model_stats(nlp: Language, component: str) -> Optional[Dict[str, int]]:
    stats = getattr(_llm_model(nlp, component), "stats", None)
    return asdict(stats) if is_dataclass(stats) and not isinstance(stats, type) else None


def task_report_counts(docs: Iterable[Doc]) -> Dict[str, int]:
    """Totals of what the JsonNER task left on the docs (errors, unplaced strings ...);
    ``docs_with_failed_requests`` and ``docs_with_unparseable_answers`` split ``docs_with_errors``
    (a doc with both counts in both)."""
    counts: Counter = Counter()
    for key in ("docs_with_errors", "docs_with_failed_requests", "docs_with_unparseable_answers", "errors"):
        counts[key] = 0
    for key in ("unplaced", "unknown_labels", "dropped", "fuzzy"):
        counts[key] = 0
    for doc in docs:
        report = doc.user_data.get(USER_DATA_KEY) or {}
        errors = report.get("errors") or []
        counts["docs_with_errors"] += bool(errors)
        counts["docs_with_failed_requests"] += any(REQUEST_FAILED in error for error in errors)
        counts["docs_with_unparseable_answers"] += any(REQUEST_FAILED not in error for error in errors)
        counts["errors"] += len(errors)
        for key, value in report.items():
            if isinstance(value, list) and key != "errors":
                counts[key] += len(value)
        for item in report.get("unplaced") or []:  # by reason, e.g. unplaced_not_found
            if isinstance(item, dict) and item.get("reason"):
                counts[f"unplaced_{item['reason']}"] += 1
    return dict(counts)


def problem_summary(docs: List[Doc]) -> List[str]:
    """One line per kind of per-doc problem: how many docs, and the first message."""
    kinds: Dict[str, List[str]] = {"failed requests": [], "unparseable answers": []}
    for doc in docs:
        errors = (doc.user_data.get(USER_DATA_KEY) or {}).get("errors") or []
        failed = [error for error in errors if REQUEST_FAILED in error]
        unparseable = [error for error in errors if REQUEST_FAILED not in error]
        if failed:
            kinds["failed requests"].append(failed[0])
        if unparseable:
            kinds["unparseable answers"].append(unparseable[0])
    return [
        f"{len(first)} of {len(docs)} docs had {kind} (first: {first[0][:160]})"
        for kind, first in kinds.items()
        if first
    ]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def collected_warnings(name: str = LLM_LOGGER) -> Iterator[List[logging.LogRecord]]:
    """Hold back the warnings of logger ``name`` (one per doc) for a summary; yields them."""
    logger = logging.getLogger(name)
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def warning_summary(records: List[logging.LogRecord]) -> List[str]:
    """Collected warnings grouped by their message template: "N x <first message>"."""
    groups: Dict[str, List[logging.LogRecord]] = {}
    for record in records:
        groups.setdefault(str(record.msg), []).append(record)
    return [
        (f"{len(group)} x " if len(group) > 1 else "") + group[0].getMessage()[:240] for group in groups.values()
    ]


def _is_doc_error(record: logging.LogRecord, docs: List[Doc]) -> bool:
    """Whether a warning repeats an error kept on a doc (those are in the problem summary)."""
    message = record.getMessage()
    return any(
        message.endswith(error) for doc in docs for error in (doc.user_data.get(USER_DATA_KEY) or {}).get("errors") or []
    )


class Progress:
    """Done / cached / failed prompts as a progress bar, fed by the model's ``on_progress``
    hook from its request threads; silent (no bar) when ``enabled`` is false."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar = tqdm(total=total, unit="prompt", desc="LLM", disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    def update(self, stats: Any) -> None:
        done = getattr(stats, "done", None)
        if done is None:  # a model without the `done` counter
            done = stats.cache_hits + stats.requests - stats.retries
        with self._lock:
            if done > self._bar.total:
                self._bar.total = done  # long docs are sharded: more prompts than docs
            self._bar.n = done
            self._bar.set_postfix(cached=stats.cache_hits, failed=stats.failures, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


@contextmanager
def progress(nlp: Language, component: str, *, total: int, enabled: bool) -> Iterator[Progress]:
    """Attach a Progress to the component's model while the block runs (if the model has an
    ``on_progress`` hook; otherwise the bar just stays at 0 until the end)."""
    model = _llm_model(nlp, component)
    bar = Progress(total, enabled=enabled)
    hooked = model is not None and hasattr(model, "on_progress")
    previous = model.on_progress if hooked else None
    if hooked:
        model.on_progress = bar.update
    try:
        yield bar
    finally:
        if hooked:
            model.on_progress = previous
        bar.close()


def evaluate_llm(
    nlp: Language,
    gold: Iterable[Doc],
    *,
    component: str = "llm",
    batch_size: Optional[int] = None,
    show_progress: bool = False,
) -> Tuple[Dict[str, Any], evaluate.PipelineResult]:
    """Predict and score like the ``evaluate`` command (spaCy's scorer and every fuzzy mode),
    plus what the LLM run did: time, task report totals, the model's request counters and the
    summarised per-doc problems. Returns the metrics and the scored PipelineResult."""
    if component not in nlp.pipe_names:
        raise ValueError(f"no component {component!r} in the pipeline {nlp.pipe_names}; pass --component")
    gold = list(gold)
    start = time.perf_counter()
    with collected_warnings() as records, progress(nlp, component, total=len(gold), enabled=show_progress):
        result = evaluate.score_pipeline(nlp, gold, name=component, batch_size=batch_size or nlp.batch_size)
    seconds = time.perf_counter() - start
    report = task_report_counts(result.predictions)
    metrics = {
        "scores": result.scores,
        "confusion": result.confusion,
        "n_docs": len(gold),
        "n_gold_ents": sum(len(doc.ents) for doc in gold),
        "n_pred_ents": sum(len(doc.ents) for doc in result.predictions),
        "seconds": round(seconds, 3),
        "docs_per_second": round(len(gold) / seconds, 3) if seconds > 0 else None,
        "task_report": report,
        "model_stats": _model_stats(nlp, component),
        "problems": problem_summary(result.predictions),
        "warnings": warning_summary([r for r in records if not _is_doc_error(r, result.predictions)]),
    }
    return metrics, result


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_report(result: Dict[str, Any]) -> None:
    scores = result["scores"]
    rows = [("spaCy (exact)", scores.get("ents_p"), scores.get("ents_r"), scores.get("ents_f"))]
    for mode in scores.get("fuzzy_ents_settings", {}).get("modes", []):
        prefix = f"fuzzy_ents_{mode}"
        rows.append((f"fuzzy {mode}", scores[f"{prefix}_p"], scores[f"{prefix}_r"], scores[f"{prefix}_f"]))
    msg.table([(name, _pct(p), _pct(r), _pct(f)) for name, p, r, f in rows], header=("Scorer", "P", "R", "F"), divider=True)
    per_type = scores.get("ents_per_type") or {}
    msg.table(
        [(label, _pct(s["p"]), _pct(s["r"]), _pct(s["f"])) for label, s in sorted(per_type.items())],
        header=("Type (exact)", "P", "R", "F"),
        divider=True,
    )
    stats = result.get("model_stats") or {}
    msg.info(
        f"{result['n_docs']} docs in {result['seconds']}s ({result['docs_per_second']} docs/s); "
        + ", ".join(f"{key} {value}" for key, value in stats.items())
    )
    report = result.get("task_report") or {}
    msg.info("task: " + ", ".join(f"{key} {value}" for key, value in report.items()))
    for line in result.get("problems") or []:
        msg.warn(f"{line}; see doc.user_data[{USER_DATA_KEY!r}]['errors']; they count as predicting no entities")
    for line in result.get("warnings") or []:
        msg.warn(line)


def llm_evaluate(
    pipeline: Path,
    data: Path,
    output: Path,
    *,
    n: int = 100,
    unit: str = "docs",
    component: str = "llm",
    model: Optional[str] = None,
    base_url: Optional[str] = None,
    cache: Optional[Path] = None,
    batch_size: Optional[int] = None,
    config_overrides: Optional[Dict[str, Any]] = None,
    report_dir: Optional[Path] = None,
    show_progress: bool = False,
) -> Dict[str, Any]:
    """Load, predict, score, write the metrics JSON (and, with ``report_dir``, the project's
    Markdown/HTML report of this one pipeline); returns what it wrote. ``config_overrides``:
    more dot-notation overrides (``{"llm.max_tokens": 64}``); the named options win."""
    gold = read_gold(data, n=n, unit=unit)  # first: a bad path fails before the cache file is created
    overrides = {**(config_overrides or {}), **model_overrides(component=component, model=model, base_url=base_url, cache=cache)}
    nlp = load_llm_pipeline(pipeline, overrides=overrides, unit=unit)
    result, scored = evaluate_llm(nlp, gold, component=component, batch_size=batch_size, show_progress=show_progress)
    result.update(pipeline=str(pipeline), data=str(data), unit=unit, overrides=overrides)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, result)
    if report_dir is not None:
        from spacy_ner_project.evaluation.report import write_report

        write_report(evaluate.Evaluation(data=str(data), gold=gold, results=[scored]), report_dir)
    return result


DEFAULT_POLICY = FailurePolicy()


def llm_evaluate_cli(
    ctx: typer.Context,
    pipeline: Path = typer.Argument(..., help="LLM pipeline config (e.g. configs/llm_ner.cfg) or saved pipeline directory"),
    data: Path = typer.Argument(..., help="Gold DocBin (.spacy), e.g. corpus/dev.spacy"),
    output: Path = typer.Argument(..., help="Metrics JSON to write"),
    n: int = typer.Option(100, "--n-docs", "-n", help="Evaluate the first N docs/sentences (0 = all)"),
    unit: str = typer.Option("docs", "--unit", help="What N counts: 'docs' or 'sents' (each sentence its own doc)"),
    component: str = typer.Option("llm", "--component", help="Name of the spacy-llm component"),
    model: Optional[str] = typer.Option(None, "--model", help="Override the model name"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Override the API base URL"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite response cache file (created if missing)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Docs per nlp.pipe batch, >= model concurrency (default: the config's nlp.batch_size)"),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write report.md / report.html / metrics.json of this pipeline to this folder"),
    max_failed: float = typer.Option(DEFAULT_POLICY.max_failed, "--max-failed", help="Exit 1 when the share of docs whose request failed exceeds this (0-1); all failed always exits 1"),
) -> None:
    """Run the LLM NER pipeline over gold data and score it with spaCy's and the fuzzy scorer.
    Other config values: spaCy overrides after the arguments, e.g. --llm.max_tokens 64."""
    try:
        policy = FailurePolicy(max_failed=max_failed)
        result = llm_evaluate(
            pipeline, data, output, n=n, unit=unit, component=component,
            model=model, base_url=base_url, cache=cache, batch_size=batch_size,
            config_overrides=parse_config_overrides(list(ctx.args)), report_dir=report,
            show_progress=sys.stdout.isatty(),
        )
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    print_report(result)
    msg.good(f"Metrics written to {output}" + (f", report to {report}" if report else ""))
    n_failed = result["task_report"]["docs_with_failed_requests"]
    if policy.failed(n_failed=n_failed, n_docs=result["n_docs"]):
        msg.fail(
            f"{n_failed} of {result['n_docs']} docs got no answer (failed requests; --max-failed {policy.max_failed:g}): "
            "check the server, then rerun (answered requests are cached)",
            exits=1,
        )


def llm_assemble_cli(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="LLM pipeline config, e.g. configs/llm_ner.cfg"),
    output: Path = typer.Argument(..., help="Folder to save the pipeline to"),
    unit: str = typer.Option("sents", "--unit", help="Few-shot examples from paths.train as 'sents' or whole 'docs'"),
) -> None:
    """`spacy assemble` for the LLM pipeline, with few-shot examples from paths.train: assemble,
    initialise and save it. Config values: spaCy overrides, e.g. --llm.model llama3.1:8b."""
    try:
        nlp = load_llm_pipeline(config, overrides=parse_config_overrides(list(ctx.args)), unit=unit)
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(output)
    msg.good(f"Saved the LLM pipeline to {output}")
