"""llm-evaluate end to end: configs/llm_ner.cfg against the local server replaying recorded answers."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
import srsly
from chat_server import ChatServer, load_replay, replay_responder
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.llm_evaluate import llm_evaluate, model_overrides, read_gold

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "llm_ner.cfg"
REPLAY = Path(__file__).parent / "data" / "llm_replay.jsonl"

# Our own sentences; the first four have recorded answers in tests/data/llm_replay.jsonl
# (Markdown fence, prose around JSON, single quotes with PERSON/LOCATION labels, empty).
GOLD: List[Tuple[str, List[Tuple[str, str]]]] = [
    ("Sam Altman met reporters from Reuters in Paris.", [("Sam Altman", "PER"), ("Reuters", "ORG"), ("Paris", "LOC")]),
    ("The Dutch team beat Ajax in Amsterdam.", [("Dutch", "MISC"), ("Ajax", "ORG"), ("Amsterdam", "LOC")]),
    ("Angela Merkel visited the Louvre.", [("Angela Merkel", "PER"), ("Louvre", "LOC")]),
    ("Nobody was there.", []),
    ("An unrecorded sentence about Berlin.", [("Berlin", "LOC")]),
]


def gold_doc(nlp: spacy.Language, text: str, ents: List[Tuple[str, str]]) -> Doc:
    doc = nlp.make_doc(text)
    for token in doc:
        token.is_sent_start = token.i == 0
    doc.set_ents([doc.char_span(text.index(t), text.index(t) + len(t), label=label) for t, label in ents], default="outside")
    return doc


@pytest.fixture
def gold_path(tmp_path: Path) -> Path:
    nlp = spacy.blank("en")
    path = tmp_path / "gold.spacy"
    DocBin(docs=[gold_doc(nlp, text, ents) for text, ents in GOLD]).to_disk(path)
    return path


@pytest.fixture
def replay_server(chat_server: ChatServer) -> ChatServer:
    chat_server.responder = replay_responder(load_replay(REPLAY))
    return chat_server


def test_scores_recorded_answers_and_counts_the_failed_doc(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = llm_evaluate(
        CONFIG, gold_path, out, n=0, model="replayed", base_url=replay_server.base_url, cache=tmp_path / "cache.sqlite"
    )
    written = srsly.read_json(out)
    assert written["task_report"] == result["task_report"] and written["scores"]["ents_f"] == pytest.approx(result["scores"]["ents_f"])
    scores = result["scores"]
    # 8 of 9 gold entities recovered from the wrapped answers; the unrecorded sentence got a 404
    assert scores["ents_p"] == 1.0 and scores["ents_r"] == pytest.approx(8 / 9)
    assert scores["ents_per_type"]["LOC"]["r"] == pytest.approx(3 / 4)
    assert scores["fuzzy_ents_strict_f"] == pytest.approx(scores["ents_f"])
    assert result["task_report"]["docs_with_errors"] == 1
    assert result["model_stats"]["failures"] == 1 and result["n_docs"] == 5
    assert {r.body["model"] for r in replay_server.chat_requests} == {"replayed"}


def test_rerun_is_answered_from_the_cache(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    options = dict(n=4, base_url=replay_server.base_url, cache=tmp_path / "cache.sqlite")
    first = llm_evaluate(CONFIG, gold_path, tmp_path / "a.json", **options)
    replay_server.reset()
    second = llm_evaluate(CONFIG, gold_path, tmp_path / "b.json", **options)
    assert replay_server.requests == [] and second["model_stats"]["cache_hits"] == 4
    drop_speed = lambda scores: {k: v for k, v in scores.items() if k != "speed"}  # noqa: E731
    assert drop_speed(second["scores"]) == drop_speed(first["scores"]) and first["scores"]["ents_f"] == 1.0


def test_cli_prints_table_and_writes_metrics(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    args = ["llm-evaluate", str(CONFIG), str(gold_path), str(out), "--n-docs", "2", "--unit", "sents",
            "--base-url", replay_server.base_url, "--cache", str(tmp_path / "c.sqlite")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "spaCy (exact)" in result.output and "fuzzy strict" in result.output
    assert srsly.read_json(out)["n_docs"] == 2


def test_cli_reports_missing_data(tmp_path: Path) -> None:
    default_cache = ROOT / "cache" / "llm_responses.sqlite"  # the config's cache path
    existed = default_cache.exists()
    result = CliRunner().invoke(app, ["llm-evaluate", str(CONFIG), str(tmp_path / "nope.spacy"), str(tmp_path / "m.json")])
    assert result.exit_code == 1 and "nope.spacy" in result.output and default_cache.exists() == existed


def test_read_gold_splits_sentences(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["Sam", "left", ".", "Kim", "came", "."], sent_starts=[True, False, False, True, False, False])
    doc.set_ents([], default="outside")
    path = tmp_path / "g.spacy"
    DocBin(docs=[doc, doc]).to_disk(path)
    assert [d.text.strip() for d in read_gold(path, n=3, unit="sents")] == ["Sam left .", "Kim came .", "Sam left ."]
    assert len(read_gold(path, n=0, unit="docs")) == 2 and len(read_gold(path, n=1, unit="docs")) == 1


def test_overrides_target_the_component_model() -> None:
    overrides = model_overrides(component="llm", model="m", cache=Path("c.sqlite"))
    assert overrides == {
        "components.llm.model.model": "m",
        "components.llm.model.cache": {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": "c.sqlite"},
    }
