"""The evaluate command and its report, on a tiny DocBin and two entity-ruler pipelines."""

from __future__ import annotations

import ast
import base64
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import spacy
from spacy.tokens import DocBin, Span
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.conll import DOC_ID_KEY
from spacy_ner_project.evaluation.evaluate import evaluate_pipelines, read_gold
from spacy_ner_project.scoring.matching import MODES
from spacy_ner_project.evaluation.report import render_html, write_report
from spacy_ner_project.scoring.spans import score_key

# text, gold entities as (start token, end token, label)
GOLD: List[Tuple[str, List[Tuple[int, int, str]]]] = [
    ("Ann Lee lives in Paris .", [(0, 2, "PER"), (4, 5, "LOC")]),
    ("Acme Corp hired Bob in Berlin .", [(0, 2, "ORG"), (3, 4, "PER"), (5, 6, "LOC")]),
    ("Nothing to see here .", []),
    ("Bob visited Paris and Rome .", [(0, 1, "PER"), (2, 3, "LOC"), (4, 5, "LOC")]),
]
# "good": everything right except "Ann" alone (partial) and Rome missed.
GOOD_PATTERNS = [
    {"label": "PER", "pattern": "Ann"},
    {"label": "LOC", "pattern": "Paris"},
    {"label": "ORG", "pattern": [{"ORTH": "Acme"}, {"ORTH": "Corp"}]},
    {"label": "PER", "pattern": "Bob"},
    {"label": "LOC", "pattern": "Berlin"},
]
# "bad": Berlin as ORG (wrong type), "Nothing" spurious, no Acme Corp.
BAD_PATTERNS = [
    {"label": "PER", "pattern": [{"ORTH": "Ann"}, {"ORTH": "Lee"}]},
    {"label": "LOC", "pattern": "Paris"},
    {"label": "ORG", "pattern": "Berlin"},
    {"label": "MISC", "pattern": "Nothing"},
    {"label": "LOC", "pattern": "Rome"},
]
LABELS = ["LOC", "ORG", "PER"]


def ruler_pipeline(patterns: List[Dict]) -> spacy.language.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(patterns)
    return nlp


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    nlp = spacy.blank("en")
    doc_bin = DocBin(store_user_data=True)
    for i, (text, ents) in enumerate(GOLD):
        doc = nlp.make_doc(text)
        doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
        doc.user_data[DOC_ID_KEY] = f"tiny-{i}"
        doc_bin.add(doc)
    doc_bin.to_disk(root / "gold.spacy")
    ruler_pipeline(GOOD_PATTERNS).to_disk(root / "good")
    ruler_pipeline(BAD_PATTERNS).to_disk(root / "bad")
    return {"data": root / "gold.spacy", "good": root / "good", "bad": root / "bad", "root": root}


def run_cli(*args: str) -> Tuple[int, str]:
    result = CliRunner().invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def two_pipeline_report(corpus: Dict[str, Path]) -> Path:
    out = corpus["root"] / "two"
    code, output = run_cli(
        str(corpus["good"]), str(corpus["bad"]), str(corpus["data"]), "--output", str(out),
        "--name", "trained", "--name", "llm", "--displacy-limit", "3",
    )
    assert code == 0, output
    assert "trained" in output and "llm" in output  # summary table printed
    return out


def test_metrics_json_has_spacy_and_fuzzy_keys(two_pipeline_report: Path) -> None:
    metrics = json.loads((two_pipeline_report / "metrics.json").read_text())
    assert metrics["n_docs"] == 4 and metrics["support"] == {"LOC": 4, "ORG": 1, "PER": 3}
    assert set(metrics["pipelines"]) == {"trained", "llm"}
    for scores in metrics["pipelines"].values():
        for key in ("token_acc", "ents_p", "ents_r", "ents_f", "ents_per_type", "speed"):
            assert key in scores
        for mode in MODES:
            for suffix in ("p", "r", "f", "per_type", "counts"):
                assert score_key(mode, suffix) in scores
        assert scores[score_key("strict", "f")] == scores["ents_f"]
    trained = metrics["pipelines"]["trained"]
    assert trained["ents_r"] == pytest.approx(6 / 8)  # Ann (partial) and Rome missed
    assert trained[score_key("overlap", "counts")]["partial"] == 1
    llm = metrics["pipelines"]["llm"]
    assert llm[score_key("boundary", "counts")]["wrong_type"] == 1  # Berlin LOC -> ORG
    assert metrics["confusion"]["llm"]["LOC"]["ORG"] == 1
    assert metrics["confusion"]["llm"]["(none)"]["MISC"] == 1
    assert metrics["confusion"]["trained"]["LOC"]["(none)"] == 1  # Rome
    # every doc with entities differs from gold somewhere; the empty one only in "llm"
    assert [d["doc_id"] for d in metrics["disagreements"]] == ["tiny-0", "tiny-1", "tiny-2", "tiny-3"]


def test_markdown_tables_in_the_notebook_layout(two_pipeline_report: Path) -> None:
    md = (two_pipeline_report / "report.md").read_text()
    header = (
        "| Entity | trained Precision | trained Recall | trained F1 | llm Precision | llm Recall | llm F1 | Number |"
    )
    assert md.count(header) == 1 + len(MODES)  # spaCy's table and one per mode
    spacy_table = md.split("## spaCy scorer")[1].split("## ")[0]
    rows = [line for line in spacy_table.splitlines() if line.startswith("| ") and not line.startswith("| Entity")]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["LOC", "MISC", "ORG", "PER", "Overall"]
    assert rows[-1].endswith("| 8 |") and rows[0].endswith("| 4 |")
    overall = rows[-1].split(" | ")
    assert overall[1:4] == ["0.857", "0.750", "0.800"]  # trained: 6 of 7 predictions right, 6 of 8 found
    assert "| MISC | – | – | – |" in spacy_table  # trained never predicted MISC


def test_html_is_self_contained_with_tables_images_and_renderings(two_pipeline_report: Path) -> None:
    page = (two_pipeline_report / "report.html").read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*(?!["']?(?:data:|#))""", page), "external resource"
    assert "<script" not in page and "url(" not in page and "@import" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert page.count("<caption>trained</caption>") == 1 + len(MODES)
    assert page.count('class="side-by-side"') >= 1 + len(MODES)
    assert page.count('class="entities"') == 3 * 3 * 2  # (gold + 2 pipelines) x 3 docs x (disagreements + sample)
    assert "<h3>Document tiny-0</h3>" in page and "Berlin" in page


def html_rows(fragment: str) -> List[List[str]]:
    """The cells (th and td texts) of each table row in ``fragment``."""
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in fragment.split("<tr")[1:]]


def test_html_compares_the_modes_of_every_pipeline_in_one_table(two_pipeline_report: Path) -> None:
    page = (two_pipeline_report / "report.html").read_text()
    metrics = json.loads((two_pipeline_report / "metrics.json").read_text())["pipelines"]
    table = page.split("<h2>Overall scores by matching mode</h2>")[1].split("</table>")[0]
    assert table.count("<table>") == 1
    header, columns, *rows = html_rows(table)
    assert header == ["Mode", "trained", "llm", "counts as a match"] and 'colspan="3">trained<' in table
    assert columns == ["Precision", "Recall", "F1"] * 2
    assert [row[0] for row in rows] == ["spaCy (exact)", *MODES]
    for row, keys in zip(rows, [("ents_p", "ents_r", "ents_f")] + [tuple(score_key(m, k) for k in "prf") for m in MODES]):
        assert row[1:7] == [f"{metrics[name][key]:.3f}" for name in ("trained", "llm") for key in keys]
    overlap = rows[1 + MODES.index("overlap")]
    assert overlap[1:4] == ["1.000", "0.875", "0.933"]  # "Ann" for "Ann Lee" counts: 7 of 7 right, 7 of 8 found


def test_html_escapes_names_and_paths(corpus: Dict[str, Path]) -> None:
    gold = read_gold(corpus["data"])
    name = "<script>alert(1)</script>"
    evaluation = evaluate_pipelines({name: ruler_pipeline(GOOD_PATTERNS)}, gold, data="<b>gold</b>.spacy", batch_size=2)
    page = render_html(evaluation, displacy_limit=1)
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;gold&lt;/b&gt;.spacy" in page
    assert page.count('class="entities"') == 2 * 2  # displaCy's HTML itself is not escaped


def diff_section(page: str) -> str:
    return page.split("<h2>Where predictions differ from gold</h2>")[1].split("<h2>")[0]


def test_html_marks_where_each_prediction_differs_from_gold(two_pipeline_report: Path) -> None:
    section = diff_section((two_pipeline_report / "report.html").read_text())
    header, *counts = html_rows(section.split("</table>")[0])
    assert header[:3] == ["Pipeline", "Gold", "Predicted"] and header[3:] == [
        "✓ correct", "− missed", "+ spurious", "≠ wrong type", "↔ wrong boundary", "≠↔ wrong type and boundary"
    ]
    assert counts == [
        ["trained", "8", "7", "6", "1", "0", "0", "1", "0"],  # "Ann" for "Ann Lee"; Rome missed
        ["llm", "8", "6", "4", "3", "1", "1", "0", "0"],  # Acme Corp and both Bobs missed, Berlin ORG, "Nothing"
    ]
    assert "<caption>Legend</caption>" in section
    doc = section.split("<h3>Document tiny-1</h3>")[1].split("<h3>")[0]
    trained, llm = doc.split("<h4>")[1:]
    assert trained.startswith("trained</h4>") and llm.startswith("llm</h4>")
    assert 'title="wrong type — gold: LOC “Berlin” / predicted: ORG “Berlin”"' in llm
    assert '<span class="seg-both">Berlin</span><span class="diff-tag tag-wrong_type">≠ wrong type LOC → ORG</span>' in llm
    assert '<span class="diff diff-missed" title="missed — gold: ORG “Acme Corp” / predicted: none">' in llm
    assert '<span class="seg-gold">Acme Corp</span>' in llm
    assert "2 missed, 1 wrong type<" in llm and "3 correct<" in trained
    first = section.split("<h3>Document tiny-0</h3>")[1].split("<h3>")[0]
    assert '<span class="seg-both">Ann</span><span class="seg-gold"> Lee</span>' in first  # trained: " Lee" missing
    nothing = section.split("<h3>Document tiny-2</h3>")[1].split("<h3>")[0]
    assert '<span class="seg-pred">Nothing</span><span class="diff-tag tag-spurious">+ spurious MISC</span>' in nothing
    md = (two_pipeline_report / "report.md").read_text()
    assert "| trained | 8 | 7 | 6 | 1 | 0 | 0 | 1 | 0 |" in md and "| llm | 8 | 6 | 4 | 3 | 1 | 1 | 0 | 0 |" in md


def test_the_differences_escape_entity_texts_and_labels() -> None:
    nlp = spacy.blank("en")
    gold = nlp.make_doc('<b> Tom & "Jerry" .')  # tokens: < b > Tom & " Jerry " .
    gold.ents = [Span(gold, 3, 4, label="PER"), Span(gold, 5, 8, label="PER")]
    pipeline = ruler_pipeline([{"label": "<i>", "pattern": "Tom"}, {"label": "PER", "pattern": "Jerry"}])
    section = diff_section(render_html(evaluate_pipelines({"x": pipeline}, [gold]), displacy_limit=1))
    assert "<b>" not in section and "<i>" not in section and "&lt;b&gt;" in section
    assert 'title="wrong type — gold: PER “Tom” / predicted: &lt;i&gt; “Tom”"' in section
    assert 'title="wrong boundary — gold: PER “&#34;Jerry&#34;” / predicted: PER “Jerry”"' in section
    assert "≠ wrong type PER → &lt;i&gt;" in section


def test_evaluate_without_matplotlib_writes_everything_but_the_figures(
    corpus: Dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """matplotlib made unimportable here, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path))
    assert code == 0, output
    assert all((tmp_path / name).is_file() for name in ("metrics.json", "report.md", "report.html"))
    skipped = [line for line in output.splitlines() if "figures skipped" in line]
    assert skipped == [
        '⚠ label-confusion figures skipped: matplotlib is not installed (pip install "spacy-ner-project[report]"); '
        "the tables in report.md hold the same counts"
    ]
    page = (tmp_path / "report.html").read_text()
    assert "<img" not in page and "figures skipped: matplotlib is not installed" in page
    assert "<h2>Where predictions differ from gold</h2>" in page and 'class="entities"' in page
    assert json.loads((tmp_path / "metrics.json").read_text())["pipelines"]["good"]["ents_f"] > 0


def test_evaluate_core_does_not_import_the_report() -> None:
    """report.py reads evaluate's results; evaluate.py never imports it (the command does)."""
    source = Path(__file__).resolve().parents[1] / "spacy_ner_project" / "evaluation" / "evaluate.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "spacy_ner_project.evaluation.report" not in imported and "typer" not in imported


def test_single_pipeline_report(corpus: Dict[str, Path], tmp_path: Path) -> None:
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path), "--n-docs", "2")
    assert code == 0, output
    md = (tmp_path / "report.md").read_text()
    assert "| Entity | Precision | Recall | F1 | Number |" in md
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["pipelines"]) == ["good"] and metrics["n_docs"] == 2
    # (gold + pipeline) x (1 disagreeing doc: "Ann" + 2 sampled docs)
    assert (tmp_path / "report.html").read_text().count('class="entities"') == 2 * (1 + 2)


def test_worker_threads_score_as_nlp_pipe_does(corpus: Dict[str, Path], tmp_path: Path) -> None:
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path / "threads"),
                           "--threads", "2", "--batch-size", "1")
    assert code == 0, output
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path / "pipe"))
    assert code == 0, output
    threaded, piped = (json.loads((tmp_path / name / "metrics.json").read_text())["pipelines"]["good"]
                       for name in ("threads", "pipe"))
    assert {key: value for key, value in threaded.items() if key != "speed"} == {
        key: value for key, value in piped.items() if key != "speed"}
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path / "x"), "--threads", "0")
    assert code == 1 and "--threads" in output
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path / "x"), "--threads", "2",
                           "--gpu-id", "0")
    assert code == 1 and "run pipelines on the CPU" in " ".join(output.split())


def test_ctrl_c_stops_with_one_line_and_exit_130(corpus: Dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from spacy_ner_project.evaluation import evaluate

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "run_evaluation", interrupted)
    code, output = run_cli(str(corpus["good"]), str(corpus["data"]), "--output", str(tmp_path / "stopped"))
    assert code == 130
    assert "Stopped: no report written" in " ".join(output.split())
    assert not (tmp_path / "stopped" / "metrics.json").exists()


def test_importable_api_scores_in_memory_pipelines(corpus: Dict[str, Path], tmp_path: Path) -> None:
    gold = read_gold(corpus["data"])
    evaluation = evaluate_pipelines({"a": ruler_pipeline(GOOD_PATTERNS)}, gold, batch_size=2)
    assert evaluation.results[0].scores["ents_p"] == pytest.approx(6 / 7)
    paths = write_report(evaluation, tmp_path / "report", displacy_limit=0)
    assert all(path.is_file() for path in paths.values())
    assert 'class="entities"' not in paths["report.html"].read_text()


@pytest.mark.parametrize(
    "args,message",
    [
        (["{good}", "{data}", "--name", "a", "--name", "b"], "2 --name for 1 pipelines"),
        (["{good}", "{root}/missing.spacy"], "not found"),
        (["{data}"], "at least one pipeline"),
        (["{good}", "{data}", "--n-docs", "-1"], "0 (all) or more"),
        (["{good}", "{data}", "--text-scorer", "nope"], "unknown text_scorer"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(
    corpus: Dict[str, Path], tmp_path: Path, args: List[str], message: str
) -> None:
    filled = [a.format(**{k: str(v) for k, v in corpus.items()}) for a in args]
    code, output = run_cli(*filled, "--output", str(tmp_path / "out"))
    assert code == 1
    assert message in " ".join(output.split())
