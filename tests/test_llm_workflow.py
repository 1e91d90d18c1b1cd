"""The `llm` workflow as a user runs it: `python -m spacy project run llm` in a copy of the
project, on a tiny CoNLL corpus written here, against the local test server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from chat_server import ChatServer, dictionary_responder
from workflow_project import project_with_corpus

SENTENCES = [
    [("Maria", "B-PER"), ("Lopez", "I-PER"), ("visited", "O"), ("Lisbon", "B-LOC"), (".", "O")],
    [("Globex", "B-ORG"), ("hired", "O"), ("Ravi", "B-PER"), ("Patel", "I-PER"), ("in", "O"), ("Oslo", "B-LOC"), (".", "O")],
    [("The", "O"), ("Brazilian", "B-MISC"), ("team", "O"), ("won", "O"), ("again", "O"), (".", "O")],
]
LEXICON = {"Maria Lopez": "PER", "Ravi Patel": "PER", "Lisbon": "LOC", "Oslo": "LOC", "Globex": "ORG", "Brazilian": "MISC"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return project_with_corpus(tmp_path, SENTENCES)


@pytest.mark.slow  # five Python processes (spacy project run): ~30 s on an idle 2-core machine
def test_llm_workflow_runs_through_spacy_project(project: Path, chat_server: ChatServer) -> None:
    chat_server.responder = dictionary_responder(LEXICON, text_of=lambda prompt: prompt.rsplit("Answer:", 2)[-2])
    command = [
        sys.executable, "-m", "spacy", "project", "run", "llm", str(project),
        "--vars.data_dir", str(project.parent / "data"), "--vars.llm_base_url", chat_server.base_url,
        "--vars.llm_n_docs", "3", "--vars.llm_structured_output", "none", "--vars.llm_n_prompt_examples", "1",
    ]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "llm" / "dev" / "metrics.json").read_text())  # evaluate's schema
    assert metrics["n_docs"] == 3 and metrics["unit"] == "sents" and metrics["pipelines"]["llm"]["ents_f"] == 1.0
    assert metrics["llm"]["llm"]["model_stats"]["answered"] == 3
    assert (project / "metrics" / "llm" / "dev" / "report.html").is_file()
    assert not (project / "reports" / "compare").exists()  # compare needs a trained pipeline: not in `llm`
    requests = chat_server.chat_requests
    assert len(requests) == 3 and all(r.body["max_tokens"] == 256 and "Answer:" in r.prompt for r in requests)
    assert all(r.prompt.count("Answer:") == 2 for r in requests)  # one few-shot example from train
    nlp = spacy.load(project / "training" / "llm")
    assert nlp.pipe_names == ["llm"]
