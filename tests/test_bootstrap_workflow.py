"""The `bootstrap` workflow as a user runs it (`python -m spacy project run bootstrap` in a copy
of the project) on a tiny CoNLL corpus written here, against a scripted OpenAI-compatible
server: sample, annotate, silver, train three times, one report with the LLM beside them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from chat_server import ChatServer, dictionary_responder
from workflow_project import project_with_corpus

SENTENCES = [
    [("Maria", "B-PER"), ("Lopez", "I-PER"), ("visited", "O"), ("Lisbon", "B-LOC"), (".", "O")],
    [("Globex", "B-ORG"), ("hired", "O"), ("Ravi", "B-PER"), ("Patel", "I-PER"), ("in", "O"), ("Oslo", "B-LOC"), (".", "O")],
    [("The", "O"), ("Brazilian", "B-MISC"), ("team", "O"), ("won", "O"), ("again", "O"), (".", "O")],
    [("Anna", "B-PER"), ("Kowalski", "I-PER"), ("joined", "O"), ("Helix", "B-ORG"), ("Motors", "I-ORG"), (".", "O")],
]
# the scripted annotator knows all but the MISC entity and "Helix Motors" (it misses them)
LEXICON = {"Maria Lopez": "PER", "Ravi Patel": "PER", "Anna Kowalski": "PER", "Lisbon": "LOC", "Oslo": "LOC", "Globex": "ORG"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return project_with_corpus(tmp_path, SENTENCES * 2)


@pytest.mark.slow  # about a dozen Python processes and three trainings: ~80 s on an idle 2-core machine
def test_bootstrap_workflow_runs_against_any_openai_compatible_server(project: Path, chat_server: ChatServer) -> None:
    found = dictionary_responder(LEXICON, text_of=lambda prompt: prompt.rsplit("</document-", 1)[0])
    # every label in every answer, as a schema-following model answers ({} would be unparseable)
    chat_server.responder = lambda prompt: json.dumps({"PER": [], "ORG": [], "LOC": [], "MISC": [], **json.loads(found(prompt))})
    command = [
        sys.executable, "-m", "spacy", "project", "run", "bootstrap", str(project),
        "--vars.data_dir", str(project.parent / "data"), "--vars.bootstrap_base_url", chat_server.base_url,
        "--vars.bootstrap_model", "scripted", "--vars.bootstrap_structured_output", "none",
        "--vars.bootstrap_llm_config", "llm_ner",  # the scripted server answers JSON entity lists
        "--vars.bootstrap_n_docs", "5", "--vars.max_steps", "20", "--vars.bootstrap_eval_n_docs", "4",
    ]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600)
    output = " ".join((result.stdout + result.stderr).split())  # wasabi wraps long lines
    assert result.returncode == 0, output[-4000:]
    texts = (project / "corpus" / "bootstrap" / "texts.jsonl").read_text().splitlines()
    assert len(texts) == 5 and all("B-" not in line for line in texts)  # texts only: gold labels hidden
    assert "Wrote corpus/bootstrap/silver.spacy: 5 of 5 docs" in output and "Left out: none" in output, output[-3000:]
    report = json.loads((project / "reports" / "bootstrap" / "dev_sents" / "metrics.json").read_text())
    assert list(report["pipelines"]) == ["silver", "gold_n", "gold_all", "llm"] and report["n_docs"] == 4
    assert report["llm"]["llm"]["model_stats"]["answered"] + report["llm"]["llm"]["model_stats"]["cache_hits"] == 4
    for split in ("dev", "test"):
        metrics = json.loads((project / "metrics" / "bootstrap" / split / "metrics.json").read_text())
        assert list(metrics["pipelines"]) == ["silver", "gold_n", "gold_all"]
    assert {r.body["model"] for r in chat_server.chat_requests} == {"scripted"}
    # resumable: a second run asks the server nothing new (annotate resumes, evaluate reads the cache)
    chat_server.reset()
    again = subprocess.run([*command, "--force"], cwd=project, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert chat_server.chat_requests == []
