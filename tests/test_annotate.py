"""annotate: INPUT → records → entities rows, local and on Ray Data (2 actors, one Ray session).

The Ray tests share one ``ray.init(num_cpus=2)`` (module fixture: starting Ray costs seconds)
and skip with a reason when Ray is not installed (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import spacy
from chat_server import ChatServer, dictionary_responder, last_quoted_block
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_ner_project.annotate import AnnotateOptions, InputSpec, annotate, read_output
from spacy_ner_project.annotate.pipeline import llm_overrides, per_worker_concurrency
from spacy_ner_project.annotate.records import input_format, read_records
from spacy_ner_project.annotate.settings import InputFormat
from spacy_ner_project.cli import app
from spacy_ner_project.errors import UserError

PATTERNS = [
    {"label": "PER", "pattern": "Anna Kowalski"},
    {"label": "ORG", "pattern": "Helix Motors"},
    {"label": "LOC", "pattern": "Valmora"},
    {"label": "LOC", "pattern": [{"LOWER": "port"}, {"IS_TITLE": True}]},
]
WORDS = ["Anna Kowalski", "joined", "Helix Motors", "in", "Valmora", "Port Elm", "port", "today", ",", "."]
LEXICON = {"Anna Kowalski": "PER", "Helix Motors": "ORG", "Valmora": "LOC"}


def synthetic_texts(n: int, *, seed: int = 0) -> List[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25))) for _ in range(n)]


def write_jsonl(path: Path, rows: List[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), encoding="utf-8")
    return path


BAD_ROWS: List[Any] = [
    {"id": "no-text"},
    {"id": "number", "text": 5},
    {"id": "empty", "text": "   "},
    {"id": "huge", "text": "Valmora " * 130_000},  # ~1 MB
    {"text": "an id is missing"},
    "not JSON at all",
]
BAD_ERRORS = {
    "no-text": "no 'text' value",
    "number": "'text' must be a string, got int",
    "empty": "empty text",
    "huge": "text has 1,040,000 characters, more than max_chars=100,000",
}


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(PATTERNS)
    path = tmp_path_factory.mktemp("pipelines") / "ruler"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 synthetic documents plus the bad records of BAD_ROWS, as JSONL."""
    rows = [{"id": f"doc-{i}", "text": text} for i, text in enumerate(synthetic_texts(2000))]
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "docs.jsonl", rows + BAD_ROWS)


def by_id(rows: List[Dict[str, Any]]) -> Dict[Optional[str], Dict[str, Any]]:
    found: Dict[Optional[str], Dict[str, Any]] = {}
    for row in rows:
        if row["id"] is not None:
            assert row["id"] not in found, f"id {row['id']} written twice"
        found[row["id"]] = row
    return found


def entity_map(rows: List[Dict[str, Any]]) -> Dict[Optional[str], List[Dict[str, Any]]]:
    return {key: row["entities"] for key, row in by_id(rows).items() if key is not None}


def run(pipeline: Path, source: Path, output: Path, **options: Any) -> List[Dict[str, Any]]:
    spec_keys = {"format", "id_field", "text_field", "max_chars"}
    spec = InputSpec(source, **{k: options.pop(k) for k in list(options) if k in spec_keys})
    options.setdefault("progress", False)
    annotate(str(pipeline), spec, output, options=AnnotateOptions(**options))
    return read_output(output)


# -- records ------------------------------------------------------------------------------


def test_bad_records_get_an_error_value_and_never_stop_the_run(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Anna Kowalski left."}, *BAD_ROWS, {"id": 2, "text": "In Valmora."}])
    rows = run(ruler_pipeline, source, tmp_path / "out")
    assert len(rows) == 2 + len(BAD_ROWS)
    found = by_id(rows)
    assert [e["text"] for e in found["1"]["entities"]] == ["Anna Kowalski"]
    assert [e["label"] for e in found["2"]["entities"]] == ["LOC"] and found["2"]["error"] is None
    for key, error in BAD_ERRORS.items():
        assert found[key]["error"].startswith(error) and found[key]["entities"] == []
    no_id = [row["error"] for row in rows if row["id"] is None]
    assert sorted(no_id)[0] == "line is not JSON (Expecting value: line 1 column 1 (char 0)): 'not JSON at all'"
    assert "no 'id' value" in no_id


def test_field_names_and_max_chars_are_configurable(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"doc": "a", "body": "short"}, {"doc": "b", "body": "longer text"}])
    records = list(read_records(InputSpec(source, id_field="doc", text_field="body", max_chars=6)))
    assert [(r["id"], r["error"]) for r in records] == [("a", None), ("b", records[1]["error"])]
    assert "more than max_chars=6" in records[1]["error"]


def test_the_input_format_is_one_of_the_enum(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.data", [{"id": 1, "text": "Valmora"}])
    assert InputSpec(source, format="jsonl").format is InputFormat.JSONL and input_format(InputSpec(source, format="jsonl")) == "jsonl"
    with pytest.raises(UserError, match="input format must be one of auto, jsonl, parquet, txt, not 'xml'"):
        InputSpec(source, format="xml")
    result = CliRunner().invoke(app, ["annotate", "pipeline", str(source), str(tmp_path / "out"), "--input-format", "xml"])
    assert result.exit_code == 2 and "Invalid value for '--input-format'" in result.output


def test_the_three_input_formats_give_the_same_rows(ruler_pipeline: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    texts = synthetic_texts(30, seed=1)
    jsonl = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}.txt", "text": t} for i, t in enumerate(texts)])
    pq.write_table(pa.table({"id": [f"d{i}.txt" for i in range(30)], "text": texts}), tmp_path / "in.parquet")
    folder = tmp_path / "txt"
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"d{i}.txt").write_text(text, encoding="utf-8")
    results = [
        entity_map(run(ruler_pipeline, source, tmp_path / f"out-{source.name}"))
        for source in (jsonl, tmp_path / "in.parquet", folder)
    ]
    assert len(results[0]) == 30 and sum(map(len, results[0].values())) > 0
    assert results[0] == results[1] == results[2]


# -- output ------------------------------------------------------------------------------


def test_jsonl_and_parquet_output_hold_the_same_rows(ruler_pipeline: Path, corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    parquet = run(ruler_pipeline, corpus, tmp_path / "pq", rows_per_file=700)
    jsonl = run(ruler_pipeline, corpus, tmp_path / "js", output_format="jsonl")
    assert len(list((tmp_path / "pq").glob("*.parquet"))) == 3
    assert len(list((tmp_path / "js").glob("*.jsonl"))) == 1
    key = lambda row: (row["id"] or "", row["error"] or "")  # noqa: E731
    assert sorted(parquet, key=key) == sorted(jsonl, key=key)
    assert set(parquet[0]) == {"id", "text", "entities", "llm", "error"}


def test_existing_output_is_refused_then_overwritten_or_resumed(ruler_pipeline: Path, tmp_path: Path) -> None:
    texts = synthetic_texts(20, seed=2)
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts[:12])])
    full = write_jsonl(tmp_path / "full.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out"
    run(ruler_pipeline, first, out, output_format="jsonl")
    with pytest.raises(UserError, match="--resume .* or --overwrite"):
        run(ruler_pipeline, full, out, output_format="jsonl")
    with pytest.raises(UserError, match="resume with --format jsonl"):
        run(ruler_pipeline, full, out, existing="resume")
    summary = annotate(str(ruler_pipeline), InputSpec(full), out, options=AnnotateOptions(output_format="jsonl", existing="resume", progress=False))
    assert (summary.skipped, summary.rows) == (12, 8)
    assert sorted(by_id(read_output(out)), key=int) == [str(i) for i in range(20)]
    assert len(run(ruler_pipeline, first, out, output_format="jsonl", existing="overwrite")) == 12


def test_a_folder_that_is_not_an_annotate_output_is_never_touched(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Valmora"}])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an annotate output"):
        run(ruler_pipeline, source, mine, existing="overwrite", output_format="jsonl")
    assert (mine / "notes.txt").read_text() == "keep me"


def test_docbin_shards_hold_the_annotated_docs(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Anna Kowalski in Valmora."}, {"id": 2, "text": ""}])
    run(ruler_pipeline, source, tmp_path / "out", output_format="jsonl", docbin=True)
    (shard,) = (tmp_path / "out" / "docbin").glob("*.spacy")
    docs = list(DocBin().from_disk(shard).get_docs(spacy.blank("en").vocab))
    assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == [[("Anna Kowalski", "PER"), ("Valmora", "LOC")]]


def test_cli_annotates_and_refuses_an_existing_output(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Helix Motors"}, {"id": 2, "text": 3}])
    args = ["annotate", str(ruler_pipeline), str(source), str(tmp_path / "out"), "--format", "jsonl"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 rows (1 with an error, 1 entities)" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.output


# -- LLM pipelines: each worker's share of the server's capacity ----------------------------


def test_each_worker_gets_its_share_of_the_capacity() -> None:
    assert [per_worker_concurrency(8, w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    config = {"components": {"llm": {"factory": "llm", "model": {"concurrency": 8, "cache": {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": "cache/c.sqlite"}}}}}
    overrides = llm_overrides(config, workers=2, capacity=None, cache=None, cwd=Path("/work/here"))
    assert overrides == {"components.llm.model.concurrency": 4, "components.llm.model.cache.path": "/work/here/cache/c.sqlite"}
    assert llm_overrides(config, workers=3, capacity=12, cache=None, cwd=Path("/x"))["components.llm.model.concurrency"] == 4


def llm_pipeline(folder: Path, server: ChatServer, cache: Path, *, concurrency: int = 8) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "llm",
        config={
            "task": {"@llm_tasks": "spacy_ner_project.JsonNER.v1", "labels": ["PER", "ORG", "LOC", "MISC"]},
            "model": {
                "@llm_models": "spacy_ner_project.OpenAICompatible.v1",
                "base_url": server.base_url,
                "model": "test-model",
                "context_length": 4096,
                "concurrency": concurrency,
                "max_retries": 1,
                "cache": {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": str(cache)},
            },
        },
    )
    nlp.to_disk(folder)
    return folder


def test_llm_rows_carry_the_task_record(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.responder = dictionary_responder({**LEXICON, "Nowhere Land": "LOC"}, text_of=last_quoted_block)
    pipeline = llm_pipeline(tmp_path / "llm", chat_server, tmp_path / "cache.sqlite")
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Anna Kowalski joined Helix Motors."}])
    (row,) = run(pipeline, source, tmp_path / "out", output_format="jsonl")
    assert [(e["text"], e["label"]) for e in row["entities"]] == [("Anna Kowalski", "PER"), ("Helix Motors", "ORG")]
    outcome = json.loads(row["llm"])
    assert outcome["errors"] == [] and (outcome["status"], outcome["error"], outcome["n_shards"]) == ("ok", None, 1)
    assert json.loads(outcome["answers"][0]) == {"PER": ["Anna Kowalski"], "ORG": ["Helix Motors"]}
    assert isinstance(outcome["elapsed_s"], float)  # asked the server (a cached answer has none)


# -- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_same_rows_as_local(ray_session: None, ruler_pipeline: Path, corpus: Path, tmp_path: Path) -> None:
    local = run(ruler_pipeline, corpus, tmp_path / "local")
    remote = run(ruler_pipeline, corpus, tmp_path / "ray", engine="ray", actors=2, batch_size=100)
    assert len(remote) == len(local) == 2000 + len(BAD_ROWS)
    assert by_id(remote) .keys() == by_id(local).keys()
    assert entity_map(remote) == entity_map(local)
    assert {r["id"]: r["error"] for r in remote if r["id"]} == {r["id"]: r["error"] for r in local if r["id"]}
    assert sorted(r["error"] for r in remote if r["id"] is None) == sorted(r["error"] for r in local if r["id"] is None)


CRASH_CODE = '''
import os
from pathlib import Path
from spacy.language import Language

@Language.factory("crash_once", default_config={"marker": ""})
def make_crash_once(nlp, name, marker):
    """Kills its process the first time it sees CRASH-HERE (and leaves a marker file)."""
    def crash_once(doc):
        if "CRASH-HERE" in doc.text and not Path(marker).exists():
            Path(marker).touch()
            os._exit(1)
        return doc
    return crash_once
'''


def test_a_killed_actor_loses_and_doubles_nothing(ray_session: None, tmp_path: Path) -> None:
    code = tmp_path / "crash.py"
    code.write_text(textwrap.dedent(CRASH_CODE))
    spacy.util.import_file("annotate_test_crash", code)
    marker = tmp_path / "crashed"
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(PATTERNS)
    nlp.add_pipe("crash_once", config={"marker": str(marker)})
    nlp.to_disk(tmp_path / "crashing")
    texts = synthetic_texts(300, seed=3)
    texts[150] += " CRASH-HERE"
    folder = tmp_path / "txt"
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    rows = run(tmp_path / "crashing", folder, tmp_path / "out", engine="ray", actors=2, batch_size=25, output_format="jsonl", code=code)
    assert marker.exists(), "no actor was killed"
    assert sorted(by_id(rows)) == [f"{i:03d}.txt" for i in range(300)]
    expected = {f"{i:03d}.txt": [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents] for i, text in enumerate(texts)}
    assert {k: [(e["start_char"], e["end_char"], e["label"]) for e in v] for k, v in entity_map(rows).items()} == expected


def test_ray_resume_annotates_only_the_missing_ids(ray_session: None, ruler_pipeline: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    texts = synthetic_texts(60, seed=4)
    pq.write_table(pa.table({"id": list(range(40)), "text": texts[:40]}), tmp_path / "first.parquet")
    pq.write_table(pa.table({"id": list(range(60)), "text": texts}), tmp_path / "all.parquet")
    out = tmp_path / "out"
    run(ruler_pipeline, tmp_path / "first.parquet", out)
    rows = run(ruler_pipeline, tmp_path / "all.parquet", out, engine="ray", existing="resume", batch_size=10)
    assert sorted(map(int, by_id(rows))) == list(range(60))


def test_llm_requests_in_flight_stay_within_the_capacity_and_actors_share_the_cache(
    ray_session: None, chat_server: ChatServer, tmp_path: Path
) -> None:
    chat_server.responder = dictionary_responder(LEXICON, text_of=last_quoted_block)
    chat_server.latency = 0.1
    cache = tmp_path / "cache.sqlite"
    pipeline = llm_pipeline(tmp_path / "llm", chat_server, cache, concurrency=8)
    texts = synthetic_texts(48, seed=5)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    first = run(pipeline, source, tmp_path / "out", engine="ray", actors=2, batch_size=16, llm_capacity=2)
    assert len(chat_server.chat_requests) == len(set(texts))
    assert 1 <= chat_server.max_in_flight <= 2  # 2 actors x 8 would allow 16
    chat_server.reset()
    again = run(pipeline, source, tmp_path / "out", engine="ray", actors=2, batch_size=16, existing="overwrite")
    assert chat_server.chat_requests == []  # every answer came from the one cache file both actors wrote
    assert entity_map(again) == entity_map(first) and sum(map(len, entity_map(first).values())) > 0
