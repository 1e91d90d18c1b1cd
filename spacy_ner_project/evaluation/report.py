"""Write an :class:`~spacy_ner_project.evaluation.evaluate.Evaluation` as metrics.json, report.md and report.html.

Tables follow the seed notebook's layout: Entity, Precision, Recall, F1, Number (gold support),
one row per type and an "Overall" row; with several pipelines the Markdown table puts their
columns side by side and the HTML page puts one table per pipeline side by side. One table
compares the matching modes (spaCy's exact scorer and each fuzzy mode, rows) of every
pipeline (Precision/Recall/F1 columns). The HTML page is rendered from the autoescaping Jinja
templates in ``spacy_ner_project/evaluation/templates`` and is self-contained: inline CSS, no scripts,
the confusion matrices as PNG data: URIs, and displaCy renderings (gold beside every pipeline)
of the documents where they disagree plus a sample.

Both reports count where each pipeline differs from gold (correct, missed, spurious, wrong type,
wrong boundary, wrong type and boundary: :mod:`spacy_ner_project.scoring.diff`), and the HTML
page shows those documents with gold and predicted entities inline in one text per pipeline,
side by side, each span marked by its category (:mod:`spacy_ner_project.evaluation.diff_view`).

The confusion figures need matplotlib (the ``[report]`` extra); without it the page says so
where they would be, one warning is logged, and everything else is written as usual.

A pipeline with an LLM model also gets a table of its run (requests, cache hits, failures, what
the task could not use) from the metrics' ``llm`` block.

This module reads evaluation results; :mod:`spacy_ner_project.evaluation.evaluate` never imports it.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import jinja2
import srsly
from markupsafe import Markup
from spacy import displacy
from spacy.tokens import Doc

from spacy_ner_project.defaults import DISPLACY_LIMIT
from spacy_ner_project.evaluation import diff_view
from spacy_ner_project.evaluation.evaluate import Evaluation, PipelineResult
from spacy_ner_project.evaluation.formatting import MISSING, percent
from spacy_ner_project.extras import EXTRA_OF_MODULE, install_command
from spacy_ner_project.scoring.matching import COUNT_NAMES, MODES
from spacy_ner_project.scoring.spans import NO_ENTITY, score_key

OVERALL = "Overall"
SPACY_SCHEME = "spacy"
PRF = Tuple[Optional[float], Optional[float], Optional[float]]
# Colour-blind-friendly palette for entity labels in displaCy.
PALETTE = ("#8ecae6", "#ffb703", "#b5e48c", "#f4a3a8", "#cdb4db", "#ffd6a5", "#a8dadc", "#e9c46a")
FIGURE_MODULE = "matplotlib"
logger = logging.getLogger(__name__)


def schemes(evaluation: Evaluation) -> List[Tuple[str, str]]:
    """(scheme key, title) of every table: spaCy's scorer, then each matching mode."""
    s = evaluation.settings
    details = {
        "strict": "same boundaries and label",
        "overlap": "same label, sharing at least one token"
        + (f" and {s.min_overlap:.0%} of the gold entity's tokens" if s.min_overlap > 0 else ""),
        "boundary": "same boundaries, any label",
        "text": f"same label, rapidfuzz {s.text_scorer} ≥ {s.text_threshold:g} on the entity texts",
    }
    return [(SPACY_SCHEME, "spaCy scorer (ents_p/r/f)")] + [(m, f"Fuzzy scorer, {m}: {details[m]}") for m in MODES]


def mode_descriptions(evaluation: Evaluation) -> List[Tuple[str, str, str]]:
    """(scheme key, row label, what counts as a match) of every scheme, spaCy's first."""
    rows = []
    for scheme, title in schemes(evaluation):
        if scheme == SPACY_SCHEME:
            rows.append((scheme, "spaCy (exact)", "same boundaries and label (spaCy's scorer)"))
        else:
            rows.append((scheme, scheme, title.split(": ", 1)[1]))
    return rows


def prf_table(result: PipelineResult, scheme: str) -> Dict[str, PRF]:
    """{label or OVERALL: (p, r, f)} of one pipeline under one scheme."""
    scores = result.scores
    if scheme == SPACY_SCHEME:
        overall: PRF = (scores.get("ents_p"), scores.get("ents_r"), scores.get("ents_f"))
        per_type = scores.get("ents_per_type") or {}
    else:
        overall = tuple(scores.get(score_key(scheme, k)) for k in ("p", "r", "f"))  # type: ignore[assignment]
        per_type = scores.get(score_key(scheme, "per_type")) or {}
    table = {label: (v["p"], v["r"], v["f"]) for label, v in sorted(per_type.items())}
    table[OVERALL] = overall
    return table


def table_rows(evaluation: Evaluation, scheme: str) -> Tuple[List[str], Dict[str, Dict[str, PRF]]]:
    """Row labels (types then OVERALL) and each pipeline's table under ``scheme``."""
    tables = {r.name: prf_table(r, scheme) for r in evaluation.results}
    labels = set(evaluation.support)
    for table in tables.values():
        labels.update(label for label in table if label != OVERALL)
    return sorted(labels) + [OVERALL], tables


def unit_name(evaluation: Evaluation) -> str:
    return "sentences" if evaluation.unit == "sents" else "documents"


def fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


def fmt_cell(value: Any) -> str:
    """A table cell: the value, or MISSING ("-") for none (docs/s when no request got an answer)."""
    return MISSING if value is None else str(value)


def support_of(evaluation: Evaluation, label: str) -> int:
    return sum(evaluation.support.values()) if label == OVERALL else evaluation.support.get(label, 0)


def count_rows(evaluation: Evaluation) -> List[List[str]]:
    rows = []
    for r in evaluation.results:
        for mode in MODES:
            counts = r.scores[score_key(mode, "counts")]
            rows.append([r.name, mode] + [str(counts[k]) for k in ("gold", "pred", *COUNT_NAMES)])
    return rows


COUNT_HEADER = ["Pipeline", "Mode", "Gold", "Predicted", "Correct", "Partial", "Wrong type", "Missed", "Spurious"]


def mode_rows(evaluation: Evaluation) -> List[Tuple[str, List[str], str]]:
    """(mode, [P, R, F of each pipeline in order], what counts as a match) per scheme: the
    overall scores of every matching mode in one table."""
    return [
        (label, [fmt(v) for r in evaluation.results for v in prf_table(r, scheme)[OVERALL]], note)
        for scheme, label, note in mode_descriptions(evaluation)
    ]


def words_per_second(result: PipelineResult) -> str:
    speed = result.scores.get("speed")
    return "-" if speed is None else f"{speed:.0f}"


def summary_rows(evaluation: Evaluation) -> List[Tuple[str, ...]]:
    """Pipeline, spaCy F, each mode's F (%), words/s: the console and Markdown summary."""
    return [
        (r.name, percent(r.scores.get("ents_f")), *(percent(r.scores.get(score_key(m, "f"))) for m in MODES), words_per_second(r))
        for r in evaluation.results
    ]


SUMMARY_HEADER = ("Pipeline", "spaCy F", *(f"{m} F" for m in MODES), "words/s")

# (header, key in the llm block's model_stats / task_report, or the block itself) of the LLM table
LLM_COLUMNS: Tuple[Tuple[str, str, str], ...] = (
    ("Pipeline", "", "name"),
    ("Docs", "", "n_docs"),
    ("Seconds", "", "seconds"),
    ("Docs/s", "", "docs_per_second"),
    ("Prompts", "model_stats", "prompts"),
    ("Cache hits", "model_stats", "cache_hits"),
    ("Answered", "model_stats", "answered"),
    ("Failed", "model_stats", "failures"),
    ("Retries", "model_stats", "retries"),
    ("Docs with failed requests", "task_report", "docs_with_failed_requests"),
    ("Docs with unparseable answers", "task_report", "docs_with_unparseable_answers"),
    ("Unplaced strings", "task_report", "unplaced"),
)


def llm_rows(evaluation: Evaluation) -> List[List[str]]:
    """One row per pipeline with an ``llm`` block (see LLM_COLUMNS); none without."""
    rows = []
    for r in evaluation.results:
        if r.llm is None:
            continue
        block = {**r.llm, "name": r.name}
        rows.append([fmt_cell((block.get(part) if part else block).get(key)) for _, part, key in LLM_COLUMNS])
    return rows


def differences(evaluation: Evaluation) -> List[diff_view.PipelineDifferences]:
    """Every pipeline's differences from gold, per document (character offsets)."""
    return diff_view.pipeline_differences(evaluation.gold, {r.name: r.predictions for r in evaluation.results})


def llm_notes(evaluation: Evaluation) -> List[str]:
    """The problem and warning lines of every LLM run, each prefixed with its pipeline."""
    return [
        f"{r.name}: {line}" for r in evaluation.results if r.llm for line in [*r.llm["problems"], *r.llm["warnings"]]
    ]


# --- Markdown --------------------------------------------------------------------------------


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def md_scheme_table(evaluation: Evaluation, scheme: str) -> str:
    labels, tables = table_rows(evaluation, scheme)
    names = [r.name for r in evaluation.results]
    prefix = (lambda name: "") if len(names) == 1 else (lambda name: f"{name} ")
    header = ["Entity"] + [f"{prefix(n)}{m}" for n in names for m in ("Precision", "Recall", "F1")] + ["Number"]
    rows = [
        [label] + [fmt(v) for n in names for v in tables[n].get(label, (None, None, None))] + [str(support_of(evaluation, label))]
        for label in labels
    ]
    return md_table(header, rows)


def md_mode_table(evaluation: Evaluation) -> str:
    names = [r.name for r in evaluation.results]
    prefix = (lambda name: "") if len(names) == 1 else (lambda name: f"{name} ")
    header = ["Mode"] + [f"{prefix(n)}{m}" for n in names for m in ("Precision", "Recall", "F1")]
    return md_table(header, [[mode, *cells] for mode, cells, _ in mode_rows(evaluation)])


def md_confusion(result: PipelineResult) -> str:
    labels = list(result.confusion)
    rows = [[gold] + [str(result.confusion[gold][pred]) for pred in labels] for gold in labels]
    return md_table(["gold \\ predicted"] + labels, rows)


def render_markdown(evaluation: Evaluation) -> str:
    parts = [
        "# NER evaluation report",
        "",
        f"Gold data: `{evaluation.data}`, {len(evaluation.gold)} {unit_name(evaluation)}, "
        f"{sum(evaluation.support.values())} entities.",
        "",
        md_table(["Pipeline", "Source"], [[r.name, f"`{r.source}`"] for r in evaluation.results]),
        "",
        "## Summary (F1, %)",
        "",
        md_table(SUMMARY_HEADER, summary_rows(evaluation)),
        "",
        "## Overall scores by matching mode",
        "",
        md_mode_table(evaluation),
    ]
    for scheme, title in schemes(evaluation):
        parts += ["", f"## {title}", "", md_scheme_table(evaluation, scheme)]
    parts += ["", "## Counts per mode", "", md_table(COUNT_HEADER, count_rows(evaluation))]
    parts += [
        "",
        "## Differences from gold (every entity once; the documents are marked in report.html)",
        "",
        md_table(diff_view.COUNT_HEADER, diff_view.count_rows(evaluation.gold, differences(evaluation))),
    ]
    if llm_rows(evaluation):
        parts += ["", "## LLM runs", "", md_table([h for h, _, _ in LLM_COLUMNS], llm_rows(evaluation))]
        notes = llm_notes(evaluation)
        parts += ([""] if notes else []) + [f"- {line}" for line in notes]
    parts += ["", "## Label confusion (boundary-matched entities)"]
    for r in evaluation.results:
        parts += ["", f"### {r.name}", "", md_confusion(r)]
    disagreements = evaluation.disagreements()
    parts += [
        "",
        f"Documents where a pipeline differs from gold: {len(disagreements)} of {len(evaluation.gold)} "
        "(rendered in report.html).",
        "",
    ]
    return "\n".join(parts)


# --- HTML ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    """The report's Jinja templates (package data), HTML-escaping every value not marked Markup."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("spacy_ner_project.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["OVERALL"] = OVERALL
    return environment


def html_scheme_tables(evaluation: Evaluation, scheme: str) -> List[Tuple[str, List[List[str]]]]:
    """(pipeline name, per-type rows with OVERALL last) of every pipeline under ``scheme``."""
    labels, tables = table_rows(evaluation, scheme)
    return [
        (
            r.name,
            [
                [label, *map(fmt, tables[r.name].get(label, (None, None, None))), str(support_of(evaluation, label))]
                for label in labels
            ],
        )
        for r in evaluation.results
    ]


def confusion_png(result: PipelineResult) -> bytes:
    """The label confusion matrix as PNG; colour marks errors, the diagonal (correct) is grey."""
    labels = list(result.confusion)
    n = len(labels)
    matrix = [[result.confusion[g][p] for p in labels] for g in labels]
    errors = [[0 if (i == j and labels[i] != NO_ENTITY) else matrix[i][j] for j in range(n)] for i in range(n)]
    size = 1.2 + 0.75 * n
    from matplotlib.figure import Figure  # the [report] extra; only the HTML report draws figures

    figure = Figure(figsize=(size + 0.8, size), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(errors, cmap="Reds", vmin=0, vmax=max(1, max(max(row) for row in errors)))
    for i in range(n):
        for j in range(n):
            diagonal = i == j and labels[i] != NO_ENTITY
            dark = not diagonal and errors[i][j] > 0.6 * max(1, max(max(row) for row in errors))
            axes.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=9,
                      color="white" if dark else ("#555" if diagonal else "black"),
                      fontweight="bold" if diagonal else "normal")
    axes.set_xticks(range(n), labels=labels, rotation=45, ha="right")
    axes.set_yticks(range(n), labels=labels)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("gold label")
    axes.set_title(f"{result.name}: label errors")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def confusion_figures(evaluation: Evaluation) -> Tuple[List[Tuple[str, str]], Optional[str]]:
    """(pipeline name, PNG data: URI) of every confusion figure and None; without matplotlib, no
    figures and the one line that says why (also logged as a warning)."""
    try:
        return [(r.name, data_uri(confusion_png(r))) for r in evaluation.results], None
    except ImportError as error:
        if (error.name or "").split(".")[0] != FIGURE_MODULE:
            raise
    note = (
        f"label-confusion figures skipped: {FIGURE_MODULE} is not installed "
        f"({install_command([EXTRA_OF_MODULE[FIGURE_MODULE]])}); the tables in report.md hold the same counts"
    )
    logger.warning(note)
    return [], note


def label_colors(evaluation: Evaluation) -> Dict[str, str]:
    labels = set(evaluation.support)
    for r in evaluation.results:
        for doc in r.predictions:
            labels.update(ent.label_ for ent in doc.ents)
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(labels))}


def render_doc(doc: Doc, colors: Dict[str, str]) -> Markup:
    """displaCy's entity rendering of ``doc`` (displaCy escapes the text itself)."""
    with warnings.catch_warnings():  # W006 "no entities to visualize": an empty doc is fine here
        warnings.filterwarnings("ignore", message=r"\[W006\]")
        return Markup(displacy.render(doc, style="ent", page=False, jupyter=False, options={"colors": colors}))


def doc_grids(evaluation: Evaluation, indices: Iterable[int], colors: Dict[str, str]) -> List[Dict[str, Any]]:
    """The ``doc_grids`` macro's data: per document, gold then every pipeline's rendering."""
    return [
        {
            "doc_id": evaluation.doc_id(index),
            "cells": [("Gold", render_doc(evaluation.gold[index], colors))]
            + [(r.name, render_doc(r.predictions[index], colors)) for r in evaluation.results],
        }
        for index in indices
    ]


def html_doc_grids(evaluation: Evaluation, indices: Iterable[int], colors: Dict[str, str]) -> str:
    """HTML of the documents ``indices``: gold beside every pipeline (for pages built elsewhere)."""
    macros = templates().get_template("macros.html.jinja").module
    return str(macros.doc_grids(doc_grids(evaluation, indices, colors)))  # type: ignore[attr-defined]


def render_html(evaluation: Evaluation, *, displacy_limit: int = DISPLACY_LIMIT) -> str:
    colors = label_colors(evaluation)
    disagreements = evaluation.disagreements()
    limit = max(displacy_limit, 0)
    found = differences(evaluation)
    figures, figure_note = confusion_figures(evaluation)
    return templates().get_template("report.html.jinja").render(
        title="NER evaluation report",
        data=evaluation.data,
        n_docs=len(evaluation.gold),
        unit_name=unit_name(evaluation),
        n_entities=sum(evaluation.support.values()),
        pipelines=[[r.name, r.source, words_per_second(r)] for r in evaluation.results],
        names=[r.name for r in evaluation.results],
        modes=mode_rows(evaluation),
        schemes=[
            {"title": title, "tables": html_scheme_tables(evaluation, scheme)} for scheme, title in schemes(evaluation)
        ],
        count_header=COUNT_HEADER,
        count_rows=count_rows(evaluation),
        llm_header=[h for h, _, _ in LLM_COLUMNS],
        llm_rows=llm_rows(evaluation),
        llm_notes=llm_notes(evaluation),
        no_entity=NO_ENTITY,
        confusion_images=figures,
        confusion_note=figure_note,
        diff_header=diff_view.COUNT_HEADER,
        diff_rows=diff_view.count_rows(evaluation.gold, found),
        legend_rows=diff_view.legend(),
        diff_sides=diff_view.SIDES,
        diff_docs=diff_view.diff_grids(evaluation.gold, found, disagreements[:limit], evaluation.doc_id),
        n_disagreements=len(disagreements),
        disagreements=doc_grids(evaluation, disagreements[:limit], colors),
        sample=doc_grids(evaluation, range(min(limit, len(evaluation.gold))), colors),
    )


def html_page(title: str, body: str) -> str:
    """A self-contained page (inline CSS, no scripts, no external resources) around ``body``,
    which must be HTML with every value already escaped; ``title`` is escaped here."""
    return templates().get_template("page.html.jinja").render(title=title, body=Markup(body))


def write_report(evaluation: Evaluation, output_dir: Path, *, displacy_limit: int = DISPLACY_LIMIT) -> Dict[str, Path]:
    """Write metrics.json, report.md and report.html into ``output_dir``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in ("metrics.json", "report.md", "report.html")}
    srsly.write_json(paths["metrics.json"], evaluation.metrics())
    paths["report.md"].write_text(render_markdown(evaluation), encoding="utf-8")
    paths["report.html"].write_text(render_html(evaluation, displacy_limit=displacy_limit), encoding="utf-8")
    return paths

