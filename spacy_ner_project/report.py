"""Write an :class:`~spacy_ner_project.evaluate.Evaluation` as metrics.json, report.md and report.html.

Tables follow the seed notebook's layout: Entity, Precision, Recall, F1, Number (gold support),
one row per type and an "Overall" row; with several pipelines the Markdown table puts their
columns side by side and the HTML page puts one table per pipeline side by side. The HTML page is
self-contained: inline CSS, no scripts, the confusion matrices as PNG data: URIs, and displaCy
renderings (gold beside every pipeline) of the documents where they disagree plus a sample.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import srsly
from matplotlib.figure import Figure
from spacy import displacy
from spacy.tokens import Doc

from spacy_ner_project.evaluate import SUMMARY_HEADER, Evaluation, PipelineResult, summary_rows
from spacy_ner_project.matching import COUNT_NAMES, MODES
from spacy_ner_project.span_scorer import NO_ENTITY, score_key

OVERALL = "Overall"
PRF = Tuple[Optional[float], Optional[float], Optional[float]]
# Colour-blind-friendly palette for entity labels in displaCy.
PALETTE = ("#8ecae6", "#ffb703", "#b5e48c", "#f4a3a8", "#cdb4db", "#ffd6a5", "#a8dadc", "#e9c46a")


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
    return [("spacy", "spaCy scorer (ents_p/r/f)")] + [(m, f"Fuzzy scorer, {m}: {details[m]}") for m in MODES]


def prf_table(result: PipelineResult, scheme: str) -> Dict[str, PRF]:
    """{label or OVERALL: (p, r, f)} of one pipeline under one scheme."""
    scores = result.scores
    if scheme == "spacy":
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


def fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


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


def md_confusion(result: PipelineResult) -> str:
    labels = list(result.confusion)
    rows = [[gold] + [str(result.confusion[gold][pred]) for pred in labels] for gold in labels]
    return md_table(["gold \\ predicted"] + labels, rows)


def render_markdown(evaluation: Evaluation) -> str:
    parts = [
        "# NER evaluation report",
        "",
        f"Gold data: `{evaluation.data}`, {len(evaluation.gold)} documents, "
        f"{sum(evaluation.support.values())} entities.",
        "",
        md_table(["Pipeline", "Source"], [[r.name, f"`{r.source}`"] for r in evaluation.results]),
        "",
        "## Summary (F1, %)",
        "",
        md_table(SUMMARY_HEADER, summary_rows(evaluation)),
    ]
    for scheme, title in schemes(evaluation):
        parts += ["", f"## {title}", "", md_scheme_table(evaluation, scheme)]
    parts += ["", "## Counts per mode", "", md_table(COUNT_HEADER, count_rows(evaluation))]
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

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
tr.overall td { font-weight: bold; background: #fafafa; }
caption { font-weight: bold; padding: 0.3rem; text-align: left; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure { margin: 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: bold; text-align: center; }
.doc-grid { display: grid; gap: 1rem; margin-bottom: 1.5rem; }
.doc-grid > div { border: 1px solid #e3e3e3; border-radius: 4px; padding: 0.5rem; min-width: 0; overflow-wrap: anywhere; }
.doc-grid h4 { margin: 0 0 0.3rem 0; }
.muted { color: #666; }
"""


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "", overall: bool = False) -> str:
    esc = html.escape
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        css = ' class="overall"' if overall and row and row[0] == OVERALL else ""
        out.append(f"<tr{css}>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_scheme_tables(evaluation: Evaluation, scheme: str) -> str:
    labels, tables = table_rows(evaluation, scheme)
    blocks = []
    for r in evaluation.results:
        rows = [
            [label, *map(fmt, tables[r.name].get(label, (None, None, None))), str(support_of(evaluation, label))]
            for label in labels
        ]
        blocks.append(html_table(["Entity", "Precision", "Recall", "F1", "Number"], rows, caption=r.name, overall=True))
    return f'<div class="side-by-side">{"".join(blocks)}</div>'


def confusion_png(result: PipelineResult) -> bytes:
    """The label confusion matrix as PNG; colour marks errors, the diagonal (correct) is grey."""
    labels = list(result.confusion)
    n = len(labels)
    matrix = [[result.confusion[g][p] for p in labels] for g in labels]
    errors = [[0 if (i == j and labels[i] != NO_ENTITY) else matrix[i][j] for j in range(n)] for i in range(n)]
    size = 1.2 + 0.75 * n
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


def label_colors(evaluation: Evaluation) -> Dict[str, str]:
    labels = set(evaluation.support)
    for r in evaluation.results:
        for doc in r.predictions:
            labels.update(ent.label_ for ent in doc.ents)
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(labels))}


def render_doc(doc: Doc, colors: Dict[str, str]) -> str:
    with warnings.catch_warnings():  # W006 "no entities to visualize": an empty doc is fine here
        warnings.filterwarnings("ignore", message=r"\[W006\]")
        return displacy.render(doc, style="ent", page=False, jupyter=False, options={"colors": colors})


def html_doc_grids(evaluation: Evaluation, indices: Sequence[int], colors: Dict[str, str]) -> str:
    columns = 1 + len(evaluation.results)
    blocks = []
    for index in indices:
        cells = [("Gold", evaluation.gold[index])] + [(r.name, r.predictions[index]) for r in evaluation.results]
        inner = "".join(f"<div><h4>{html.escape(name)}</h4>{render_doc(doc, colors)}</div>" for name, doc in cells)
        blocks.append(
            f"<h3>Document {html.escape(evaluation.doc_id(index))}</h3>"
            f'<div class="doc-grid" style="grid-template-columns: repeat({columns}, minmax(0, 1fr))">{inner}</div>'
        )
    return "".join(blocks) or '<p class="muted">None.</p>'


def render_html(evaluation: Evaluation, *, displacy_limit: int = 10) -> str:
    esc = html.escape
    colors = label_colors(evaluation)
    body = [
        "<h1>NER evaluation report</h1>",
        f'<p class="muted">Gold data <code>{esc(evaluation.data)}</code>: {len(evaluation.gold)} documents, '
        f"{sum(evaluation.support.values())} entities.</p>",
        html_table(["Pipeline", "Source"], [[r.name, r.source] for r in evaluation.results]),
        "<h2>Summary (F1, %)</h2>",
        html_table(SUMMARY_HEADER, summary_rows(evaluation)),
    ]
    for scheme, title in schemes(evaluation):
        body += [f"<h2>{esc(title)}</h2>", html_scheme_tables(evaluation, scheme)]
    body += ["<h2>Counts per mode</h2>", html_table(COUNT_HEADER, count_rows(evaluation))]
    figures = "".join(
        f'<figure><img alt="label confusion of {esc(r.name)}" src="{data_uri(confusion_png(r))}">'
        f"<figcaption>{esc(r.name)}</figcaption></figure>"
        for r in evaluation.results
    )
    body += [
        "<h2>Label confusion (boundary-matched entities)</h2>",
        f'<p class="muted">Rows: gold label; columns: predicted label; {esc(NO_ENTITY)}: missed (column) '
        "or spurious (row). Diagonal counts are correct labels.</p>",
        f'<div class="side-by-side">{figures}</div>',
    ]
    disagreements = evaluation.disagreements()
    shown = disagreements[: max(displacy_limit, 0)]
    body += [
        "<h2>Documents where pipelines disagree with gold or each other</h2>",
        f'<p class="muted">{len(disagreements)} of {len(evaluation.gold)} documents; showing {len(shown)}.</p>',
        html_doc_grids(evaluation, shown, colors),
        "<h2>Sample of predictions</h2>",
        html_doc_grids(evaluation, range(min(displacy_limit, len(evaluation.gold))), colors),
    ]
    return html_page("NER evaluation report", "".join(body))


def html_page(title: str, body: str) -> str:
    """A self-contained page (inline CSS, no scripts, no external resources)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_report(evaluation: Evaluation, output_dir: Path, *, displacy_limit: int = 10) -> Dict[str, Path]:
    """Write metrics.json, report.md and report.html into ``output_dir``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in ("metrics.json", "report.md", "report.html")}
    srsly.write_json(paths["metrics.json"], evaluation.metrics())
    paths["report.md"].write_text(render_markdown(evaluation), encoding="utf-8")
    paths["report.html"].write_text(render_html(evaluation, displacy_limit=displacy_limit), encoding="utf-8")
    return paths

