"""evaluate / llm-evaluate of an LLM config end to end: configs/llm_ner.cfg against the local
server replaying recorded answers; one metrics schema with the trained pipelines'."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
import srsly
from chat_server import ChatServer, fixed_responder, http_error, load_replay, replay_responder
from conftest import LONG_RETRY_AFTER
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.commands.evaluate import evaluate_cli, llm_evaluate_cli
from spacy_ner_project.evaluation.evaluate import run_evaluation
from spacy_ner_project.evaluation.gold import read_gold
from spacy_ner_project.evaluation.llm import FailurePolicy, Progress, problem_summary, task_report_counts, warning_summary
from spacy_ner_project.evaluation.report import write_report
from spacy_ner_project.llm.record import LLM_RECORD_KEY, LLMOutcome, LLMStatus
from spacy_ner_project.pipelines import model_overrides
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


def evaluate_config(server: ChatServer, gold_path: Path, tmp_path: Path, *, n_docs: int = 0, **options: Any) -> Dict[str, Any]:
    """The core path of `llm-evaluate`: metrics.json as written, of CONFIG (named llm_ner)."""
    overrides = model_overrides(component="llm", base_url=server.base_url, cache=tmp_path / "cache.sqlite", **options)
    evaluation = run_evaluation([str(CONFIG)], gold_path, n_docs=n_docs, unit="sents", overrides=overrides)
    return srsly.read_json(write_report(evaluation, tmp_path / "report", displacy_limit=0)["metrics.json"])


def test_scores_recorded_answers_and_counts_the_failed_doc(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    metrics = evaluate_config(replay_server, gold_path, tmp_path, model="replayed")
    scores, llm = metrics["pipelines"]["llm_ner"], metrics["llm"]["llm_ner"]
    # 8 of 9 gold entities recovered from the wrapped answers; the unrecorded sentence got a 404
    assert scores["ents_p"] == 1.0 and scores["ents_r"] == pytest.approx(8 / 9)
    assert scores["ents_per_type"]["LOC"]["r"] == pytest.approx(3 / 4)
    assert scores["fuzzy_ents_strict_f"] == pytest.approx(scores["ents_f"])
    assert llm["task_report"]["docs_with_errors"] == 1
    assert llm["model_stats"]["failures"] == 1 and llm["n_docs"] == 5 and metrics["n_docs"] == 5
    assert metrics["unit"] == "sents" and llm["docs_per_second"] > 0
    assert {r.body["model"] for r in replay_server.chat_requests} == {"replayed"}


def test_rerun_is_answered_from_the_cache(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    first = evaluate_config(replay_server, gold_path, tmp_path, n_docs=4)
    replay_server.reset()
    second = evaluate_config(replay_server, gold_path, tmp_path, n_docs=4)
    assert replay_server.chat_requests == [] and second["llm"]["llm_ner"]["model_stats"]["cache_hits"] == 4  # (GET /models: the cache identity)
    drop_speed = lambda metrics: {k: v for k, v in metrics["pipelines"]["llm_ner"].items() if k != "speed"}  # noqa: E731
    assert drop_speed(second) == drop_speed(first) and first["pipelines"]["llm_ner"]["ents_f"] == 1.0


def run_cli(server: ChatServer, gold_path: Path, out: Path, *extra: str, command: str = "llm-evaluate") -> "Result":  # noqa: F821
    args = [command, str(CONFIG), str(gold_path), "--output", str(out), "--n-docs", "0",
            "--base-url", server.base_url, "--cache", str(out.with_name(f"{out.name}.sqlite")), *extra]
    return CliRunner().invoke(app, args)


def test_cli_prints_table_and_writes_the_report(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    result = run_cli(replay_server, gold_path, tmp_path / "r", "--n-docs", "2")
    assert result.exit_code == 0, result.output
    assert "spaCy (exact)" in result.output and "strict" in result.output and "cache_hits" in result.output
    metrics = srsly.read_json(tmp_path / "r" / "metrics.json")
    assert metrics["n_docs"] == 2 and metrics["unit"] == "sents" and list(metrics["llm"]) == ["llm_ner"]
    assert "## LLM runs" in (tmp_path / "r" / "report.md").read_text()
    assert "<h2>LLM runs</h2>" in (tmp_path / "r" / "report.html").read_text()


def test_an_llm_and_a_trained_pipeline_in_one_report(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    """--model/--base-url/--cache set the LLM's model only: a pipeline without the component is
    loaded as it is (before: 'not a section value that can be overridden')."""
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "Paris"}])
    nlp.to_disk(tmp_path / "ruler")
    args = ["evaluate", str(tmp_path / "ruler"), str(CONFIG), str(gold_path), "--name", "ruler", "--name", "llm",
            "--output", str(tmp_path / "r"), "--unit", "sents", "--base-url", replay_server.base_url, "--model", "replayed",
            "--cache", str(tmp_path / "c.sqlite"), "--n-docs", "4", "--llm.n_prompt_examples", "0"]  # [llm]: the LLM config's only
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    typo = CliRunner().invoke(app, [*args[:-2], "--lmm.n_prompt_examples", "0"])
    assert typo.exit_code == 1 and "no pipeline's config has a [lmm] section" in typo.output
    metrics = srsly.read_json(tmp_path / "r" / "metrics.json")
    assert set(metrics["pipelines"]) == {"ruler", "llm"} and list(metrics["llm"]) == ["llm"]
    assert metrics["pipelines"]["llm"]["ents_p"] == 1.0 and metrics["pipelines"]["ruler"]["ents_r"] < 0.5
    assert {r.body["model"] for r in replay_server.chat_requests} == {"replayed"}


def test_worker_threads_are_refused_for_an_llm_pipeline(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    result = run_cli(replay_server, gold_path, tmp_path / "r", "--n-docs", "2", "--threads", "2")
    assert result.exit_code == 1
    assert "an LLM pipeline has its own request concurrency" in " ".join(result.output.split())
    assert not replay_server.chat_requests  # refused before any request


def test_cli_reports_missing_data(tmp_path: Path) -> None:
    default_cache = ROOT / "cache" / "llm_responses.sqlite"  # the config's cache path
    existed = default_cache.exists()
    result = CliRunner().invoke(app, ["llm-evaluate", str(CONFIG), str(tmp_path / "nope.spacy"), "--output", str(tmp_path / "r")])
    assert result.exit_code == 1 and "nope.spacy" in result.output and default_cache.exists() == existed


def test_old_metrics_file_argument_is_refused_with_a_hint(tmp_path: Path, gold_path: Path) -> None:
    result = CliRunner().invoke(app, ["llm-evaluate", str(CONFIG), str(gold_path), str(tmp_path / "m.json"), "--output", str(tmp_path / "r")])
    assert result.exit_code == 1 and "m.json" in result.output and "--output" in result.output


def test_read_gold_splits_sentences(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["Sam", "left", ".", "Kim", "came", "."], sent_starts=[True, False, False, True, False, False])
    doc.set_ents([], default="outside")
    path = tmp_path / "g.spacy"
    DocBin(docs=[doc, doc]).to_disk(path)
    assert [d.text.strip() for d in read_gold(path, n_docs=3, unit="sents")] == ["Sam left .", "Kim came .", "Sam left ."]
    assert len(read_gold(path, n_docs=0, unit="docs")) == 2 and len(read_gold(path, n_docs=1, unit="docs")) == 1


def test_overrides_target_the_component_model() -> None:
    overrides = model_overrides(component="llm", model="m", cache=Path("c.sqlite"))
    assert overrides == {
        "components.llm.model.model": "m",
        "components.llm.model.cache": {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": "c.sqlite"},
    }


def test_config_defaults_suit_a_real_server(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    # a capped answer length, a stop sequence, the answer schema, and the model options from [llm]
    result = run_cli(replay_server, gold_path, tmp_path, "--n-docs", "1", "--llm.max_tokens", "7", "--llm.cache_namespace", "x")
    assert result.exit_code == 0, result.output
    (request,) = replay_server.chat_requests
    assert request.body["max_tokens"] == 7 and request.body["stop"] == ["\n\n"] and request.body["temperature"] == 0.0
    assert request.body["format"]["required"] == ["PER", "ORG", "LOC", "MISC"]  # Ollama's structured output
    off = run_cli(replay_server, gold_path, tmp_path / "off", "--n-docs", "1", "--llm.structured_output", "none")
    assert off.exit_code == 0 and "format" not in replay_server.chat_requests[-1].body


def test_every_request_failed_exits_1_with_one_summary_line(chat_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    chat_server.fail("", *[http_error(404)] * 5)  # not retried
    result = run_cli(chat_server, gold_path, tmp_path, "--max-failed", "1")
    assert result.exit_code == 1, result.output
    assert result.output.count("5 of 5 docs had failed requests") == 1
    assert result.output.count("HTTP 404") == 1  # not one warning per doc
    metrics = srsly.read_json(tmp_path / "metrics.json")
    assert metrics["llm"]["llm_ner"]["task_report"]["docs_with_failed_requests"] == 5
    # no answer came, so the run's time is no speed: none in the metrics, "n/a" or "-" where shown
    assert metrics["llm"]["llm_ner"]["docs_per_second"] is None and metrics["pipelines"]["llm_ner"]["speed"] is None
    assert "(n/a docs/s)" in result.output and "None" not in (tmp_path / "report.md").read_text()


@pytest.fixture
def hundred_sentences(tmp_path: Path) -> Path:
    """A gold file of 100 sentences, each with one entity."""
    nlp = spacy.blank("en")
    path = tmp_path / "hundred.spacy"
    DocBin(docs=[gold_doc(nlp, f"Report {i} came from Paris.", [("Paris", "LOC")]) for i in range(100)]).to_disk(path)
    return path


def test_a_long_retry_after_fails_the_run_within_one_retry_budget(
    rate_limited_server: ChatServer, hundred_sentences: Path, tmp_path: Path
) -> None:
    max_retries, max_retry_wait = 2, 1
    start = time.monotonic()
    result = run_cli(
        rate_limited_server, hundred_sentences, tmp_path / "r",
        "--llm.max_retries", str(max_retries), "--llm.max_retry_wait", str(max_retry_wait),
    )
    elapsed = time.monotonic() - start
    # the bound (the pipeline's assembly included): each doc waiting for itself took minutes
    assert elapsed < max_retries * max_retry_wait + 60, result.output
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())  # the console wraps long lines
    problem = output[output.index("100 of 100 docs had failed requests (first: ") :]
    assert f"Retry-After {LONG_RETRY_AFTER}" in problem[: problem.index("; see doc.user_data")]
    (line,) = [line for line in result.output.splitlines() if line.startswith("✘")]
    assert line.startswith("✘ 100 of 100 docs got no answer")
    llm = srsly.read_json(tmp_path / "r" / "metrics.json")["llm"]["llm_ner"]
    assert llm["task_report"]["docs_with_failed_requests"] == 100
    assert llm["model_stats"]["requests"] <= (1 + max_retries) * 2  # the config's concurrency: the rest unsent


LONG_ERROR = "request failed: POST http://127.0.0.1:1/v1/chat/completions failed after 3 attempts: HTTP 503\n" + " ".join(
    f"detail{i}" for i in range(60)
)


def doc_with_record(record: Dict[str, Any]) -> Doc:
    doc = spacy.blank("en")("Sam is here.")
    doc.user_data[LLM_RECORD_KEY] = record
    return doc


def test_docs_count_by_their_status_and_problem_lines_give_the_first_error_in_full() -> None:
    failed = LLMOutcome(status=LLMStatus.FAILED, error=LONG_ERROR, errors=[f"shard 0: {LONG_ERROR}"], answers=[None])
    unparseable = LLMOutcome(
        status=LLMStatus.UNPARSEABLE, error="empty response", errors=["shard 0: empty response"], answers=[""],
        unplaced=[{"label": "PER", "text": "Zed", "reason": "not_found"}],
    )
    old = {"n_shards": 1, "errors": ["shard 0: request failed: HTTP 404"], "unplaced": [], "unknown_labels": [], "dropped": [], "fuzzy": []}
    docs = [doc_with_record(failed.to_dict()), doc_with_record(unparseable.to_dict()), doc_with_record(old), doc_with_record(LLMOutcome().to_dict())]
    counts = task_report_counts(docs)
    assert {k: counts[k] for k in ("docs_with_errors", "docs_with_failed_requests", "docs_with_unparseable_answers", "errors")} == {
        "docs_with_errors": 3, "docs_with_failed_requests": 2, "docs_with_unparseable_answers": 1, "errors": 3,
    }
    assert counts["unplaced"] == counts["unplaced_not_found"] == 1
    in_full = " ".join(LONG_ERROR.split())
    assert problem_summary(docs) == [
        f"2 of 4 docs had failed requests (first: {in_full}); see doc.user_data['spacy_ner_project.llm']['errors']; "
        "they count as predicting no entities",
        "1 of 4 docs had unparseable answers (first: empty response); see doc.user_data['spacy_ner_project.llm']['errors']; "
        "they count as predicting no entities",
    ]


def test_warnings_are_one_line_each_with_the_count_and_the_first_message_in_full() -> None:
    template = "GET %s failed (%s): the response cache is keyed by the configured model only"
    records = [
        logging.LogRecord("spacy_ner_project.llm", logging.WARNING, __file__, 1, template, (f"http://host{i}/v1/models", LONG_ERROR), None)
        for i in range(3)
    ]
    (line,) = warning_summary(records, [])
    assert line == "3 x " + " ".join((template % ("http://host0/v1/models", LONG_ERROR)).split())
    assert len(line) > 240 and "\n" not in line


def test_max_failed_is_a_share_of_docs(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    # one of the five sentences has no recorded answer: 404, a share of 0.2
    assert run_cli(replay_server, gold_path, tmp_path / "a").exit_code == 1  # default 0.1
    assert run_cli(replay_server, gold_path, tmp_path / "b", "--max-failed", "0.25").exit_code == 0
    assert FailurePolicy(max_failed=1.0).failed(n_failed=3, n_docs=3) and not FailurePolicy(max_failed=1.0).failed(n_failed=2, n_docs=3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        FailurePolicy(max_failed=5)


def test_every_answer_unparseable_exits_1_with_one_line_saying_so(chat_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    chat_server.responder = fixed_responder("I cannot help with that.")
    result = run_cli(chat_server, gold_path, tmp_path)
    assert result.exit_code == 1, result.output
    assert result.output.count("5 of 5 docs had unparseable answers") == 1
    assert result.output.count("I cannot help with that") == 1  # the summary's first error, not repeated
    (line,) = [line for line in result.output.splitlines() if line.startswith("✘")]
    assert "no doc got a usable answer: 5 of 5 docs got answers without an entity list (unparseable)" in line
    assert srsly.read_json(tmp_path / "metrics.json")["llm"]["llm_ner"]["task_report"]["docs_with_unparseable_answers"] == 5


def test_some_unparseable_answers_are_summarised_not_failed(chat_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    empty = '{"PER": [], "ORG": [], "LOC": [], "MISC": []}'
    chat_server.responder = lambda prompt: "I cannot help with that." if "Ajax" in prompt else empty
    result = run_cli(chat_server, gold_path, tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.count("1 of 5 docs had unparseable answers") == 1


def block(**counts: int) -> Dict[str, Any]:
    """An ``llm`` metrics block of 10 docs with these task counts."""
    report = {"docs_with_failed_requests": 0, "docs_with_unparseable_answers": 0, **counts}
    return {"n_docs": 10, "task_report": report}


def test_the_failure_policy_reads_the_docs_statuses() -> None:
    policy = FailurePolicy(max_failed=0.1)
    assert policy.check(block()) is None and policy.check(block(docs_with_unparseable_answers=9)) is None
    assert "10 of 10 docs got no answer" in str(policy.check(block(docs_with_failed_requests=10)))
    assert "no doc got a usable answer: 10 of 10" in str(policy.check(block(docs_with_unparseable_answers=10)))
    mixed = FailurePolicy(max_failed=0.5).check(block(docs_with_unparseable_answers=8, docs_with_failed_requests=2))
    assert mixed is not None and "8 of 10 docs got answers without an entity list (unparseable) and 2 got none" in str(mixed)


def test_few_shot_examples_come_from_paths_train(replay_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    result = run_cli(replay_server, gold_path, tmp_path, "--n-docs", "1", "--paths.train", str(gold_path), "--llm.n_prompt_examples", "2")
    assert result.exit_code == 0, result.output
    prompt = replay_server.chat_requests[0].prompt
    assert prompt.count("Answer:") == 3  # two examples and the text
    assert sum(prompt.count(text) for text, ents in GOLD[1:] if ents) >= 1  # examples from the gold file
    missing = run_cli(replay_server, gold_path, tmp_path, "--paths.train", str(tmp_path / "none.spacy"))
    assert missing.exit_code == 1 and "paths.train" in missing.output and "none.spacy" in missing.output


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Draw progress bars as on a terminal (stderr is captured here)."""
    monkeypatch.setattr("spacy_ner_project.progress.shown", lambda *, enabled=True: enabled)


def test_progress_shows_done_cached_failed(capsys: pytest.CaptureFixture, terminal: None) -> None:
    class Stats:
        done, cache_hits, failures, requests, retries = 7, 3, 1, 5, 1

    bar = Progress(5, enabled=True)
    bar.update(Stats())
    bar.close()
    err = capsys.readouterr().err
    assert "7/7" in err and "cached=3" in err and "failed=1" in err
    quiet = Progress(5, enabled=False)
    quiet.update(Stats())
    quiet.close()
    assert capsys.readouterr().err == ""


def test_progress_bar_follows_the_model_during_a_run(
    replay_server: ChatServer, gold_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture, terminal: None
) -> None:
    overrides = model_overrides(component="llm", base_url=replay_server.base_url, cache=tmp_path / "c.sqlite")
    run_evaluation([str(CONFIG)], gold_path, unit="sents", overrides=overrides, show_progress=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "failed=1" in err and "docs" not in err  # fed by the model's on_progress hook, not per doc


def test_progress_is_quiet_off_a_terminal(replay_server: ChatServer, gold_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    overrides = model_overrides(component="llm", base_url=replay_server.base_url, cache=tmp_path / "c.sqlite")
    run_evaluation([str(CONFIG)], gold_path, unit="sents", overrides=overrides, show_progress=True)
    assert capsys.readouterr().err == ""


def test_unusable_answers_are_not_cached(chat_server: ChatServer, gold_path: Path, tmp_path: Path) -> None:
    chat_server.responder = fixed_responder("I cannot help with that.")
    run_cli(chat_server, gold_path, tmp_path, "--n-docs", "2")
    chat_server.reset()
    run_cli(chat_server, gold_path, tmp_path, "--n-docs", "2")  # the config's cache_check: asked again
    assert len(chat_server.chat_requests) == 2


def without_timing(metrics: Dict[str, Any]) -> Dict[str, Any]:
    for scores in metrics["pipelines"].values():
        scores.pop("speed")
    for block in metrics["llm"].values():
        block.pop("seconds"), block.pop("docs_per_second")
    return metrics


def test_one_schema_for_llm_configs_and_saved_pipelines_and_one_path(
    replay_server: ChatServer, gold_path: Path, tmp_path: Path
) -> None:
    ruler = spacy.blank("en")
    ruler.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "Paris"}])
    ruler.to_disk(tmp_path / "ruler")
    trained = CliRunner().invoke(app, ["evaluate", str(tmp_path / "ruler"), str(gold_path), "--output", str(tmp_path / "t")])
    llm = run_cli(replay_server, gold_path, tmp_path / "l", "--unit", "sents", "--max-failed", "1", command="evaluate")
    alias = run_cli(replay_server, gold_path, tmp_path / "a", "--max-failed", "1", "--n-docs", "100")
    assert trained.exit_code == llm.exit_code == alias.exit_code == 0, trained.output + llm.output + alias.output
    t, l, a = (srsly.read_json(tmp_path / name / "metrics.json") for name in "tla")
    assert set(t) == set(l) and set(t["pipelines"]["ruler"]) <= set(l["pipelines"]["llm_ner"])
    assert t["llm"] == {} and set(l["llm"]["llm_ner"]) >= {"model_stats", "task_report", "docs_per_second"}
    assert (t["unit"], l["unit"], a["unit"]) == ("docs", "sents", "sents")
    # llm-evaluate is evaluate with the LLM defaults: the same metrics (answers cached apart)
    l["llm"]["llm_ner"]["model_stats"] = a["llm"]["llm_ner"]["model_stats"] = None
    assert without_timing(l) == without_timing(a)
    assert evaluate_cli.__code__ is llm_evaluate_cli.__code__
