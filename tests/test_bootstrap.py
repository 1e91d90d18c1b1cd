"""LLM-bootstrapped training data (spacy_ner_project/bootstrap.py, the sample and silver
commands): units drawn with a seed, annotate output rows turned into training docs, with every
row left out counted by why. Small corpora written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from typer.testing import CliRunner

from spacy_ner_project.bootstrap import sample_units, silver_docs, write_texts
from spacy_ner_project.cli import app
from spacy_ner_project.errors import UserError
from spacy_ner_project.llm.record import LLMOutcome, LLMStatus

SENTENCES = [
    (["Anna", "Kowalski", "joined", "Helix", "Motors", "."], [(0, 2, "PER"), (3, 5, "ORG")]),
    (["Rain", "fell", "in", "Valmora", "."], [(3, 4, "LOC")]),
    (["Shares", "of", "Northwind", "Bank", "rose", "."], [(2, 4, "ORG")]),
    (["Ravi", "Patel", "flew", "to", "Osaka", "."], [(0, 2, "PER"), (4, 5, "LOC")]),
    (["Nothing", "happened", "."], []),
]


@pytest.fixture
def gold(tmp_path: Path) -> Path:
    """Two documents of sentences, as convert writes them (sentence starts set)."""
    vocab = spacy.blank("en").vocab
    docs = []
    for part in (SENTENCES[:3], SENTENCES[3:]):
        words = [w for ws, _ in part for w in ws]
        starts = [i == 0 for ws, _ in part for i in range(len(ws))]
        doc = Doc(vocab, words=words, sent_starts=starts)
        offset, ents = 0, []
        for ws, spans in part:
            ents += [Span(doc, offset + s, offset + e, label) for s, e, label in spans]
            offset += len(ws)
        doc.ents = ents
        docs.append(doc)
    path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(path)
    return path


def row(id_: str, text: str, entities: List[tuple], *, status: str = "ok", error: Any = None) -> Dict[str, Any]:
    outcome = LLMOutcome.from_dict({"status": status, "errors": [] if status == "ok" else ["shard 0: x"], "n_shards": 1})
    return {"id": id_, "text": text, "error": error, "llm": json.dumps(outcome.to_dict()),
            "entities": [{"start_char": s, "end_char": e, "label": label, "text": text[s:e]} for s, e, label in entities]}


def test_sample_is_seeded_in_corpus_order_and_capped(gold: Path) -> None:
    first = [d.text for d in sample_units(gold, n=3, seed=1)]
    assert first == [d.text for d in sample_units(gold, n=3, seed=1)] and len(set(first)) == 3
    everything = [d.text for d in sample_units(gold, n=99)]
    assert len(everything) == 5 and [t for t in everything if t in first] == first  # corpus order kept
    assert [len(d.ents) for d in sample_units(gold, n=99)] == [2, 1, 1, 2, 0]  # gold labels come along
    with pytest.raises(UserError, match="1 or more"):
        sample_units(gold, n=0)


def test_write_texts_is_annotates_input(gold: Path, tmp_path: Path) -> None:
    assert write_texts(sample_units(gold, n=2, seed=0), tmp_path / "t.jsonl") == 2
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["0", "1"] and all(line["text"] for line in lines)


def test_silver_keeps_answered_rows_and_counts_what_it_leaves_out() -> None:
    text = "Anna Kowalski joined Helix Motors ."
    rows = [
        row("10", text, [(0, 13, "PER"), (21, 33, "ORG")]),
        row("2", "Rain fell in Valmora .", [(13, 20, "LOC"), (0, 2, "MISC")]),  # 'Ra' cuts a token
        row("3", "Failed here .", [], status="failed", error="the LLM request failed ..."),
        row("4", "Unparsed here .", [], status="unparseable"),
        {"id": "5", "text": None, "error": "empty text", "llm": None, "entities": []},
        {"id": "6", "text": "A trained pipeline's row .", "error": None, "llm": None, "entities": []},
    ]
    docs, counts = silver_docs(rows)
    assert [doc.text for doc in docs] == ["Rain fell in Valmora .", "A trained pipeline's row .", text]  # by id: 2, 6, 10
    assert [(e.text, e.label_) for e in docs[2].ents] == [("Anna Kowalski", "PER"), ("Helix Motors", "ORG")]
    assert counts.kept == 3 and counts.rows == 6 and counts.misaligned == 1
    assert dict(counts.left_out) == {"request_failed": 1, "unparseable": 1, "refused": 1}
    assert counts.labels == ["LOC", "ORG", "PER"]
    assert all(doc.has_annotation("ENT_IOB") for doc in docs)  # no entity means "outside", not "unknown"


def test_commands_from_gold_to_silver_through_annotate(gold: Path, tmp_path: Path) -> None:
    """sample -> annotate (a rule-based pipeline standing in for the annotator) -> silver."""
    runner = CliRunner()
    result = runner.invoke(app, ["sample", str(gold), str(tmp_path / "texts.jsonl"), "--n", "4", "--seed", "0", "--gold", str(tmp_path / "gold4.spacy")])
    assert result.exit_code == 0, result.output
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PER", "pattern": "Anna Kowalski"}, {"label": "LOC", "pattern": "Osaka"}])
    nlp.to_disk(tmp_path / "ruler")
    result = runner.invoke(app, ["annotate", str(tmp_path / "ruler"), str(tmp_path / "texts.jsonl"), str(tmp_path / "ann"), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["silver", str(tmp_path / "ann"), str(tmp_path / "silver.spacy")])
    assert result.exit_code == 0, result.output
    assert "Left out: none" in result.output and "Labels:" in result.output
    silver = list(DocBin().from_disk(tmp_path / "silver.spacy").get_docs(nlp.vocab))
    gold4 = list(DocBin().from_disk(tmp_path / "gold4.spacy").get_docs(nlp.vocab))
    assert sorted(d.text for d in silver) == sorted(d.text for d in gold4)
    assert {e.text for d in silver for e in d.ents} <= {"Anna Kowalski", "Osaka"}


def test_silver_of_a_folder_without_rows_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["silver", str(tmp_path / "nope"), str(tmp_path / "s.spacy")])
    assert result.exit_code == 1 and "is not a folder" in result.output
