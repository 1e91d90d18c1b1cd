"""``llm-evaluate``: run an LLM NER pipeline over the first N gold docs and score it.

The pipeline comes from a config (assembled and initialised like ``spacy assemble``) or a
saved pipeline directory; the model name, base URL and response cache can be overridden,
so the same config evaluates any OpenAI-compatible server. Predictions are scored with
spaCy's NER scorer (``ents_p/r/f``, ``ents_per_type``) and the project's fuzzy scorer
(``fuzzy_ents_<mode>_*``); the metrics JSON also records timing, how many docs were sent
and the model's request counters (requests, retries, failures, cache hits).

Example (Ollama on this machine, cached)::

    python -m spacy_ner_project llm-evaluate configs/llm_ner.cfg corpus/dev.spacy \
        metrics/llm_dev.json --n-docs 100 --unit sents --model llama3.1:8b \
        --base-url http://localhost:11434/v1 --cache .cache/llm_responses.sqlite
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import spacy
import srsly
import typer
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import dict_to_dot, load_config, load_model_from_config
from wasabi import msg

from spacy_ner_project import evaluate
from spacy_ner_project.components.llm.util import USER_DATA_KEY

UNITS = ("docs", "sents")


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


def load_llm_pipeline(pipeline: Path, *, overrides: Dict[str, Any]) -> Language:
    """A config file is assembled and initialised (as ``spacy assemble`` does); a directory
    is loaded with ``spacy.load``. Either way the overrides apply."""
    if pipeline.is_dir():
        return spacy.load(pipeline, config=overrides)
    if not pipeline.exists():
        raise FileNotFoundError(f"{pipeline} is neither a config file nor a pipeline directory")
    config = load_config(pipeline, overrides=overrides, interpolate=False)
    nlp = load_model_from_config(config, auto_fill=True)
    nlp.initialize()
    return nlp


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


def _model_stats(nlp: Language, component: str) -> Optional[Dict[str, int]]:
    # spacy-llm keeps the model private; our models count their requests in `.stats`.
    stats = getattr(getattr(nlp.get_pipe(component), "_model", None), "stats", None)
    return asdict(stats) if is_dataclass(stats) and not isinstance(stats, type) else None


def task_report_counts(docs: Iterable[Doc]) -> Dict[str, int]:
    """Totals of what the JsonNER task left on the docs (errors, unplaced strings ...)."""
    counts = {"docs_with_errors": 0, "errors": 0, "unplaced": 0, "unknown_labels": 0, "dropped": 0, "fuzzy": 0}
    for doc in docs:
        report = doc.user_data.get(USER_DATA_KEY) or {}
        counts["docs_with_errors"] += bool(report.get("errors"))
        for key in ("errors", "unplaced", "unknown_labels", "dropped", "fuzzy"):
            counts[key] += len(report.get(key) or [])
    return counts


def evaluate_llm(
    nlp: Language, gold: Iterable[Doc], *, component: str = "llm", batch_size: Optional[int] = None
) -> Dict[str, Any]:
    """Predict and score like the ``evaluate`` command (spaCy's scorer and every fuzzy mode),
    plus what the LLM run did: time, task report totals, the model's request counters."""
    if component not in nlp.pipe_names:
        raise ValueError(f"no component {component!r} in the pipeline {nlp.pipe_names}; pass --component")
    gold = list(gold)
    start = time.perf_counter()
    result = evaluate.score_pipeline(nlp, gold, name=component, batch_size=batch_size or nlp.batch_size)
    seconds = time.perf_counter() - start
    return {
        "scores": result.scores,
        "confusion": result.confusion,
        "n_docs": len(gold),
        "n_gold_ents": sum(len(doc.ents) for doc in gold),
        "n_pred_ents": sum(len(doc.ents) for doc in result.predictions),
        "seconds": round(seconds, 3),
        "docs_per_second": round(len(gold) / seconds, 3) if seconds > 0 else None,
        "task_report": task_report_counts(result.predictions),
        "model_stats": _model_stats(nlp, component),
    }


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
    msg.info(", ".join(f"{key} {value}" for key, value in report.items()))
    if report.get("docs_with_errors"):
        msg.warn(
            f"{report['docs_with_errors']} docs had failed requests or unparseable answers "
            f"(see doc.user_data[{USER_DATA_KEY!r}]['errors']); they count as predicting no entities"
        )


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
) -> Dict[str, Any]:
    """Load, predict, score, write the metrics JSON; returns what it wrote."""
    gold = read_gold(data, n=n, unit=unit)  # first: a bad path fails before the cache file is created
    overrides = model_overrides(component=component, model=model, base_url=base_url, cache=cache)
    nlp = load_llm_pipeline(pipeline, overrides=overrides)
    result = evaluate_llm(nlp, gold, component=component, batch_size=batch_size)
    result.update(pipeline=str(pipeline), data=str(data), unit=unit, overrides=overrides)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, result)
    return result


def llm_evaluate_cli(
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
) -> None:
    """Run the LLM NER pipeline over gold data and score it with spaCy's and the fuzzy scorer."""
    try:
        result = llm_evaluate(
            pipeline, data, output, n=n, unit=unit, component=component,
            model=model, base_url=base_url, cache=cache, batch_size=batch_size,
        )
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    print_report(result)
    msg.good(f"Metrics written to {output}")
