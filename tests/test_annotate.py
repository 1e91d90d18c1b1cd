"""annotate: INPUT → records → entities rows, local and on Ray Data (2 actors, one Ray session).

The Ray tests share one ``ray.init(num_cpus=2)`` (module fixture: starting Ray costs seconds)
and skip with a reason when Ray is not installed (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import spacy
from chat_server import ChatServer, dictionary_responder, http_error, last_quoted_block
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_ner_project.annotate import AnnotateOptions, InputSpec, annotate, read_output
from spacy_ner_project.annotate.local import run_local
from spacy_ner_project.annotate.output import MANIFEST, PartWriter
from spacy_ner_project.annotate.pipeline import PipelineSpec, llm_overrides, per_worker_concurrency, pipeline_spec
from spacy_ner_project.annotate.records import Record, input_format, read_records
from spacy_ner_project.annotate.settings import InputFormat
from spacy_ner_project.cli import app
from spacy_ner_project.errors import UserError, one_line

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
    spec_keys = {"format", "id_field", "text_field", "max_chars", "encoding_errors"}
    spec = InputSpec(source, **{k: options.pop(k) for k in list(options) if k in spec_keys})
    options.setdefault("progress", False)
    annotate(str(pipeline), spec, output, options=AnnotateOptions(**options))
    return read_output(output)


# -- records ------------------------------------------------------------------------------


def test_bad_records_get_an_error_value_and_never_stop_the_run(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "text": "Anna Kowalski left."}, *BAD_ROWS, {"id": "2", "text": "In Valmora."}])
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
    with pytest.raises(UserError, match="existing='resume' .* or existing='overwrite'"):  # the CLI says --resume, --overwrite
        run(ruler_pipeline, full, out, output_format="jsonl")
    with pytest.raises(UserError, match="resume with output_format='jsonl'"):
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


def llm_pipeline(
    folder: Path, server: ChatServer, cache: Path, *, concurrency: int = 8, max_retries: int = 1, model: str = "test-model"
) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "llm",
        config={
            "task": {"@llm_tasks": "spacy_ner_project.JsonNER.v1", "labels": ["PER", "ORG", "LOC", "MISC"]},
            "model": {
                "@llm_models": "spacy_ner_project.OpenAICompatible.v1",
                "base_url": server.base_url,
                "model": model,
                "context_length": 4096,
                "concurrency": concurrency,
                "max_retries": max_retries,
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


def test_the_llm_config_with_overrides_annotates_from_the_command_line(chat_server: ChatServer, tmp_path: Path) -> None:
    """configs/llm_ner.cfg as PIPELINE, its server and model set by config overrides (as the
    bootstrap workflow runs it); the overrides are part of what made OUTPUT."""
    chat_server.responder = dictionary_responder(LEXICON, text_of=last_quoted_block)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Anna Kowalski joined Helix Motors."}])
    config = Path(__file__).resolve().parents[1] / "configs" / "llm_ner.cfg"
    args = ["annotate", str(config), str(source), str(tmp_path / "out"), "--format", "jsonl", "--llm-cache", str(tmp_path / "c.sqlite"),
            "--llm.base_url", chat_server.base_url, "--llm.model", "test-model", "--llm.n_prompt_examples", "0",
            "--llm.structured_output", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = read_output(tmp_path / "out")
    assert [(e["text"], e["label"]) for e in row["entities"]] == [("Anna Kowalski", "PER"), ("Helix Motors", "ORG")]
    assert len(chat_server.chat_requests) == 1
    other = CliRunner().invoke(app, [*args[:-6], "--llm.model", "other-model", *args[-4:], "--resume"])
    assert other.exit_code == 1 and "model" in other.output  # another model is another pipeline: no silent mix


# -- issue 21: nothing is lost or mixed ------------------------------------------------------

PART = re.compile(r"^part-(\d{4})-\d{8}-\d{6}-(\d{5})\.(jsonl|parquet)$")


def layout(out: Path) -> List[str]:
    """OUTPUT's file names with the run's start time left out."""
    return sorted(re.sub(r"^part-(\d{4})-\d{8}-\d{6}-", r"part-\1-TIME-", p.name) for p in out.iterdir() if p.is_file())


def manifest(out: Path) -> Dict[str, Any]:
    return json.loads((out / MANIFEST).read_text(encoding="utf-8"))


def test_output_is_numbered_part_files_and_a_manifest_of_what_made_them(ruler_pipeline: Path, tmp_path: Path) -> None:
    texts = synthetic_texts(17, seed=6)
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts[:12])])
    full = write_jsonl(tmp_path / "full.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out"
    run(ruler_pipeline, first, out, output_format="jsonl", rows_per_file=5)
    run(ruler_pipeline, full, out, output_format="jsonl", rows_per_file=5, existing="resume")
    assert layout(out) == [
        "_annotate.json", *(f"part-0001-TIME-{n:05d}.jsonl" for n in range(3)), "part-0002-TIME-00000.jsonl"
    ]
    made = manifest(out)
    assert (made["layout"], made["format"], made["id_type"], len(made["runs"])) == (2, "jsonl", "string", 2)
    identity = made["pipeline"]
    assert (identity["kind"], identity["path"], identity["llm"]) == ("folder", str(ruler_pipeline.resolve()), [])
    assert len(identity["config_sha256"]) == len(identity["files_sha256"]) == 64
    assert sorted(by_id(read_output(out))) == sorted(f"d{i}" for i in range(17))


def test_an_output_of_the_old_layout_is_not_resumed(ruler_pipeline: Path, tmp_path: Path) -> None:
    """Before the layout had a number, Ray wrote .json files that the reader of .jsonl parts
    would miss: resuming such an OUTPUT is refused, with what to do."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Valmora"}])
    old = tmp_path / "old"
    old.mkdir()
    (old / MANIFEST).write_text(json.dumps({"pipeline": str(ruler_pipeline), "format": "jsonl"}))
    (old / "8c1f_000000_000000.json").write_text(json.dumps({"id": "a", "text": "Valmora", "entities": [], "llm": None, "error": None}) + "\n")
    with pytest.raises(UserError, match="written by an earlier version of annotate .* existing='overwrite'"):
        run(ruler_pipeline, source, old, output_format="jsonl", existing="resume")
    assert len(run(ruler_pipeline, source, old, output_format="jsonl", existing="overwrite")) == 1


LLM_TEXTS = [f"Doc {i}: Anna Kowalski joined Helix Motors in Valmora." for i in range(6)]


def failing_run(chat_server: ChatServer, tmp_path: Path, *, failing: List[int]) -> Path:
    """An LLM run over LLM_TEXTS (ids "0".."5") whose requests for ``failing`` get HTTP 500
    (no retries); returns the pipeline. OUTPUT is tmp_path / "out", in JSONL."""
    chat_server.responder = dictionary_responder(LEXICON, text_of=last_quoted_block)
    for i in failing:
        chat_server.fail(f"Doc {i}:", http_error(500))
    pipeline = llm_pipeline(tmp_path / "llm", chat_server, tmp_path / "cache.sqlite", concurrency=2, max_retries=0)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(LLM_TEXTS)])
    summary = annotate(str(pipeline), InputSpec(source), tmp_path / "out", options=AnnotateOptions(output_format="jsonl", progress=False))
    assert (summary.rows, summary.errors, summary.failed) == (6, len(failing), len(failing))
    return pipeline


def llm_status(row: Dict[str, Any]) -> str:
    return str(json.loads(row["llm"])["status"])


def test_a_failed_llm_request_is_not_a_finished_row_and_resume_asks_again_for_exactly_those(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    pipeline = failing_run(chat_server, tmp_path, failing=[1, 4])
    rows = by_id(read_output(tmp_path / "out"))
    for key in ("1", "4"):
        assert llm_status(rows[key]) == "failed" and rows[key]["entities"] == []
        assert rows[key]["error"].startswith("the LLM request failed, so this row is not finished") and "HTTP 500" in rows[key]["error"]
    assert all(rows[key]["error"] is None and llm_status(rows[key]) == "ok" for key in ("0", "2", "3", "5"))
    chat_server.reset()  # the server answers now
    args = ["annotate", str(pipeline), str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--format", "jsonl", "--resume"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    said = one_line(result.output)  # wasabi wraps long lines
    assert "2 rows (0 with an error, 6 entities)" in said and "4 ids were already there; 2 asked again" in said
    asked = [i for r in chat_server.chat_requests for i in range(6) if f"Doc {i}:" in r.prompt]
    assert sorted(asked) == [1, 4]
    rows = by_id(read_output(tmp_path / "out"))  # one row per id: the earlier failed rows are gone
    assert sorted(rows) == [str(i) for i in range(6)]
    assert all(row["error"] is None and llm_status(row) == "ok" and len(row["entities"]) == 3 for row in rows.values())


def test_the_summary_counts_failed_requests_and_the_cli_says_how_to_ask_again(chat_server: ChatServer, tmp_path: Path) -> None:
    pipeline = failing_run(chat_server, tmp_path, failing=[2])
    chat_server.fail("Doc 2:", http_error(500))  # fails again on the resumed run
    args = ["annotate", str(pipeline), str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--format", "jsonl", "--resume"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 rows are not finished (their LLM request failed): run again with --resume" in one_line(result.output)
    (row,) = [row for row in read_output(tmp_path / "out") if row["id"] == "2"]  # still one row, the latest
    assert llm_status(row) == "failed"


def test_rows_asked_again_replace_the_earlier_ones_even_after_a_stopped_run(
    chat_server: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = failing_run(chat_server, tmp_path, failing=[0, 3])
    chat_server.reset()
    spec, out = InputSpec(tmp_path / "in.jsonl"), tmp_path / "out"
    options = AnnotateOptions(output_format="jsonl", existing="resume", progress=False)
    with monkeypatch.context() as patch:  # the run stops after writing its rows, before removing the earlier ones
        patch.setattr(PartWriter, "replace_earlier_rows", lambda self: None)
        assert annotate(str(pipeline), spec, out, options=options).asked_again == 2
    assert len(read_output(out)) == 8
    summary = annotate(str(pipeline), spec, out, options=options)
    assert (summary.rows, summary.skipped, len(chat_server.chat_requests)) == (0, 6, 2)  # the later rows won
    assert sorted(by_id(read_output(out))) == [str(i) for i in range(6)]
    assert all(llm_status(row) == "ok" for row in read_output(out))


def test_duplicate_ids_are_refused_before_any_work_naming_the_first_two_lines(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "a", "text": "x"}, "", {"id": "b", "text": "y"}, "not JSON", {"id": "c", "text": "z"}, {"id": "b", "text": "w"}, {"id": "a", "text": "v"}],
    )
    with pytest.raises(UserError, match=re.escape(f'{source}: lines 3 and 6 share the id "b": give each record its own id')):
        run(ruler_pipeline, source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"id": [7, 8, 7], "text": ["x", "y", "z"]}), tmp_path / "in.parquet")
    with pytest.raises(UserError, match="rows 1 and 3 share the id 7"):
        run(ruler_pipeline, tmp_path / "in.parquet", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_ids_of_two_json_types_are_never_merged(ruler_pipeline: Path, tmp_path: Path) -> None:
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"id": 1, "text": "Valmora"}, {"id": "1", "text": "Valmora"}])
    with pytest.raises(UserError, match='line 1 has the integer id 1 but line 2 the string id "1": give every record a string id'):
        run(ruler_pipeline, mixed, tmp_path / "out")
    integers = write_jsonl(tmp_path / "integers.jsonl", [{"id": i, "text": "Valmora"} for i in range(3)])
    strings = write_jsonl(tmp_path / "strings.jsonl", [{"id": str(i), "text": "Port Elm"} for i in range(5)])
    run(ruler_pipeline, integers, tmp_path / "out", output_format="jsonl")
    assert manifest(tmp_path / "out")["id_type"] == "integer"
    with pytest.raises(UserError, match="holds the rows of integer ids, this INPUT has string ids"):
        run(ruler_pipeline, strings, tmp_path / "out", output_format="jsonl", existing="resume")
    assert len(read_output(tmp_path / "out")) == 3


def test_resume_with_another_pipeline_is_refused_naming_what_differs(ruler_pipeline: Path, tmp_path: Path) -> None:
    mine, copy = tmp_path / "mine", tmp_path / "copy"
    shutil.copytree(ruler_pipeline, mine)
    shutil.copytree(ruler_pipeline, copy)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(synthetic_texts(5, seed=7))])
    out = tmp_path / "out"
    before = run(mine, source, out, output_format="jsonl")

    def refused(pipeline: Any) -> str:
        with pytest.raises(UserError) as caught:
            run(pipeline, source, out, output_format="jsonl", existing="resume")
        return str(caught.value)

    assert f"was made by another pipeline: it was made by the pipeline at {mine}, this run's is at {copy}; resume with the pipeline" in refused(copy)
    assert f"it was made by {mine} (a folder), this run's pipeline is blank:en (a blank)" in refused("blank:en")
    retrained = spacy.blank("en")
    retrained.add_pipe("entity_ruler").add_patterns(PATTERNS[:1])
    shutil.rmtree(mine)
    retrained.to_disk(mine)  # same path, same config, other patterns
    assert "the pipeline's files have changed since it was made (retrained or replaced" in refused(mine)
    result = CliRunner().invoke(app, ["annotate", str(mine), str(source), str(out), "--format", "jsonl", "--resume"])
    assert result.exit_code == 1 and "or pass --overwrite to annotate it all again" in one_line(result.output)
    assert len(result.output.strip().splitlines()) == 1
    assert read_output(out) == before


def test_resume_with_another_llm_model_is_refused(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.responder = dictionary_responder(LEXICON, text_of=last_quoted_block)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Anna Kowalski left."}])
    pipeline = llm_pipeline(tmp_path / "llm", chat_server, tmp_path / "cache.sqlite")
    run(pipeline, source, tmp_path / "out", output_format="jsonl")
    llm_pipeline(tmp_path / "llm", chat_server, tmp_path / "cache.sqlite", model="other-model")
    with pytest.raises(UserError, match="its LLM model was 'test-model' \\(component 'llm'\\), this run's is 'other-model'"):
        run(pipeline, source, tmp_path / "out", output_format="jsonl", existing="resume")


def test_bytes_that_are_not_utf8_are_refused_naming_file_and_line_unless_replaced(ruler_pipeline: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a", "text": "Valmora"}\n\n{"id": "b", "text": "Caf\xe9 in Valmora"}\n')
    with pytest.raises(UserError, match=re.escape(f"{source} line 3 is not UTF-8 (invalid continuation byte at byte 24): save INPUT as UTF-8, or pass encoding_errors='replace'")):
        run(ruler_pipeline, source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["annotate", str(ruler_pipeline), str(source), str(tmp_path / "out"), "--format", "jsonl"])
    assert result.exit_code == 1 and "or pass --encoding-errors replace to read such bytes as U+FFFD" in one_line(result.output)
    rows = by_id(run(ruler_pipeline, source, tmp_path / "out", output_format="jsonl", encoding_errors="replace"))
    assert rows["b"]["text"] == "Caf\ufffd in Valmora" and [e["text"] for e in rows["b"]["entities"]] == ["Valmora"]
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "good.txt").write_text("Valmora", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"\xff in Valmora")
    with pytest.raises(UserError, match=re.escape(f"{folder.resolve() / 'bad.txt'} is not UTF-8 (invalid start byte at byte 0)")):
        run(ruler_pipeline, folder, tmp_path / "out-txt")
    rows = by_id(run(ruler_pipeline, folder, tmp_path / "out-txt", output_format="jsonl", encoding_errors="replace"))
    assert rows["bad.txt"]["text"] == "\ufffd in Valmora" and rows["bad.txt"]["error"] is None


def test_max_chars_above_the_pipelines_max_length_raises_it_for_the_run(ruler_pipeline: Path, tmp_path: Path) -> None:
    long_text = "Valmora is far. " * 70_000  # 1,120,000 characters; spaCy's nlp.max_length is 1,000,000
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "long", "text": long_text}, {"id": "short", "text": "Valmora"}])
    rows = by_id(run(ruler_pipeline, source, tmp_path / "out", output_format="jsonl", max_chars=2_000_000))
    assert rows["long"]["error"] is None and len(rows["long"]["entities"]) == 70_000
    assert pipeline_spec(str(ruler_pipeline), workers=1, capacity=None, cache=None, code=None, use_gpu=False, max_length=2_000_000).load().max_length == 2_000_000


def test_the_local_engine_writes_parts_while_it_reads(ruler_pipeline: Path, tmp_path: Path) -> None:
    """Streaming: part files appear while INPUT is still being read, also in a long run of bad
    records (held back to keep input order, they once waited for the next good one)."""
    out = tmp_path / "out"
    out.mkdir()
    parts_seen: List[int] = []

    def records() -> Iterator[Record]:
        for i in range(3000):
            parts_seen.append(len(list(out.glob("part-*"))))
            yield Record(id=str(i), text=None, error="no 'text' value") if i < 2999 else Record(id=str(i), text="Valmora", error=None)

    writer = PartWriter(out, output_format="jsonl", run="0001-test", rows_per_file=100)
    spec = pipeline_spec(str(ruler_pipeline), workers=1, capacity=None, cache=None, code=None, use_gpu=False)
    run_local(spec, records(), writer, batch_size=64, n_process=1)
    assert parts_seen[-1] >= 25 and writer.counts.rows == 3000
    assert sorted(by_id(read_output(out)), key=int) == [str(i) for i in range(3000)]



def test_the_local_engine_forgets_the_words_of_each_part(ruler_pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """spaCy's vocabulary keeps every new word it sees: memory would grow with the input's
    vocabulary. Each part's window runs in nlp.memory_zone(), which frees them."""
    loaded = []
    load = PipelineSpec.load
    monkeypatch.setattr(PipelineSpec, "load", lambda self: loaded.append(load(self)) or loaded[-1])
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": f"Valmora saw word{i}."} for i in range(250)])
    rows = run(ruler_pipeline, source, tmp_path / "out", output_format="jsonl", rows_per_file=100, docbin=True)
    assert [e["text"] for e in by_id(rows)["249"]["entities"]] == ["Valmora"] and len(rows) == 250
    assert not any(f"word{i}" in loaded[0].vocab.strings for i in range(250))
    docs = [doc for shard in (tmp_path / "out" / "docbin").glob("*.spacy") for doc in DocBin().from_disk(shard).get_docs(spacy.blank("en").vocab)]
    assert len(docs) == 250 and sorted(doc.text for doc in docs)[:2] == ["Valmora saw word0.", "Valmora saw word1."]

def test_a_jsonl_file_is_split_into_ranges_of_whole_lines_numbered_as_in_the_file(tmp_path: Path) -> None:
    """The Ray engine's read tasks take a range each: together they hold every line once, and
    the records (line numbers in messages included) are those of the local engine's reader."""
    from spacy_ner_project.annotate.ray_engine import line_ranges
    from spacy_ner_project.annotate.records import records_from_jsonl

    rows = [{"id": f"d{i}", "text": "Valmora " * (i % 7)} for i in range(300)] + ["not JSON", {"id": "long", "text": "x" * 5000}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    data = source.read_bytes()
    ranges = line_ranges(source, size=1000)
    assert len(ranges) > 10 and ranges[0].start == 0 and ranges[-1].end == len(data)
    assert all(a.end == b.start and data[a.end - 1 : a.end] == b"\n" for a, b in zip(ranges, ranges[1:]))
    assert [r.first_line for r in ranges] == [data[: r.start].count(b"\n") + 1 for r in ranges]
    spec = InputSpec(source, encoding_errors="replace")
    parts = [records_from_jsonl(data[r.start : r.end].split(b"\n"), path=str(source), spec=spec, first_line=r.first_line) for r in ranges]
    assert [record for part in parts for record in part] == list(read_records(spec))
    broken = data[: ranges[3].start] + b'{"id": "bad", "text": "Caf\xe9"}\n'
    with pytest.raises(UserError, match=f"line {ranges[3].first_line} is not UTF-8"):
        list(records_from_jsonl(broken[ranges[3].start :].split(b"\n"), path=str(source), spec=InputSpec(source), first_line=ranges[3].first_line))


def test_the_object_store_size_is_checked_before_any_work(ruler_pipeline: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="object store MB must be at least 75 .Ray's minimum., not 10"):
        AnnotateOptions(engine="ray", object_store_mb=10)
    with pytest.raises(UserError, match="object store MB sizes the local Ray that annotate starts; a cluster's object store"):
        AnnotateOptions(engine="ray", object_store_mb=256, address="auto")
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Valmora"}])
    base = ["annotate", str(ruler_pipeline), str(source), str(tmp_path / "out"), "--engine", "ray"]
    result = CliRunner().invoke(app, [*base, "--object-store-mb", "10"])
    assert result.exit_code == 1 and "--object-store-mb 10: must be 75 or more" in result.output
    result = CliRunner().invoke(app, [*base, "--object-store-mb", "256", "--address", "auto"])
    assert result.exit_code == 1 and "ray start --object-store-memory" in one_line(result.output) and not (tmp_path / "out").exists()


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


def test_both_engines_write_the_same_layout(ray_session: None, ruler_pipeline: Path, corpus: Path, tmp_path: Path) -> None:
    """One naming, one manifest, one reader (issue 20, item 7): Ray once wrote Ray Data's
    ``<uuid>_<n>.json`` files where the local engine wrote ``part-*.jsonl``."""
    for output_format in ("jsonl", "parquet"):
        local, remote = tmp_path / f"local-{output_format}", tmp_path / f"ray-{output_format}"
        run(ruler_pipeline, corpus, local, output_format=output_format, rows_per_file=700)
        run(ruler_pipeline, corpus, remote, engine="ray", output_format=output_format, rows_per_file=700, batch_size=100)
        suffix = ".jsonl" if output_format == "jsonl" else ".parquet"
        assert layout(local) == layout(remote) == ["_annotate.json", *(f"part-0001-TIME-{n:05d}{suffix}" for n in range(3))]
        made = (manifest(local), manifest(remote))
        assert made[0].keys() == made[1].keys() and made[0]["pipeline"] == made[1]["pipeline"]
        assert [r["engine"] for m in made for r in m["runs"]] == ["local", "ray"]
        key = lambda row: (row["id"] or "", row["error"] or "")  # noqa: E731
        assert sorted(read_output(local), key=key) == sorted(read_output(remote), key=key)


def test_ray_resume_asks_again_for_failed_llm_requests(ray_session: None, chat_server: ChatServer, tmp_path: Path) -> None:
    pipeline = failing_run(chat_server, tmp_path, failing=[2, 5])
    chat_server.reset()
    rows = run(pipeline, tmp_path / "in.jsonl", tmp_path / "out", engine="ray", output_format="jsonl", existing="resume", batch_size=2)
    assert sorted(i for r in chat_server.chat_requests for i in range(6) if f"Doc {i}:" in r.prompt) == [2, 5]
    assert sorted(by_id(rows)) == [str(i) for i in range(6)] and all(llm_status(row) == "ok" for row in rows)


def test_an_object_store_size_for_a_ray_already_running_is_refused(ray_session: None, ruler_pipeline: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "Valmora"}])
    with pytest.raises(UserError, match="object_store_mb sizes the Ray that annotate starts, but this process runs Ray already"):
        run(ruler_pipeline, source, tmp_path / "out", engine="ray", object_store_mb=256)


def test_the_ray_engine_streams_a_jsonl_file_in_ranges_and_materialises_nothing(
    ray_session: None, ruler_pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21, item 15: the engine once read the whole file as one block and materialised
    the parsed records (twice) before the actors started; the object store held all of INPUT."""
    import ray.data

    from spacy_ner_project.annotate import ray_engine

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Ray engine materialised a dataset")

    monkeypatch.setattr(ray.data.Dataset, "materialize", refuse)
    monkeypatch.setattr(ray_engine, "JSONL_BYTES_PER_READ", 2000)
    ranges: List[int] = []
    split = ray_engine.line_ranges
    monkeypatch.setattr(ray_engine, "line_ranges", lambda path, *, size: ranges.append(len(split(path, size=size))) or split(path, size=size))
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"doc-{i}", "text": t} for i, t in enumerate(synthetic_texts(300, seed=8))])
    remote = run(ruler_pipeline, source, tmp_path / "ray", engine="ray", batch_size=20)
    assert ranges and ranges[0] >= 10, f"the file was read in {ranges} ranges"
    assert by_id(remote) == by_id(run(ruler_pipeline, source, tmp_path / "local"))
