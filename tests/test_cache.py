"""The SQLite response cache, alone and behind the models."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from chat_server import ChatServer, http_error
from spacy_llm.registry import registry as llm_registry
from thinc.api import Config

from spacy_ner_project.components.cache import ResponseCache, ResponseCacheError, cache_key, model_identity
from spacy_ner_project.components.models import CachedModel, FailedResponse, OpenAICompatibleModel

PROMPTS = [f"prompt {i}" for i in range(6)]


def make_model(server: ChatServer, cache: ResponseCache, **overrides: Any) -> OpenAICompatibleModel:
    options: Dict[str, Any] = dict(base_url=server.base_url, model="test-model", cache=cache, backoff=0.01, max_retries=0)
    options.update(overrides)
    return OpenAICompatibleModel(**options)


def ask(model: Any, prompts: List[str]) -> List[str]:
    return [responses[0] for responses in (list(r) for r in model([[p] for p in prompts]))]


def test_roundtrip_and_miss(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    assert cache.get("m", "p") is None
    cache.put("m", "p", "answer")
    assert cache.get("m", "p") == "answer" and len(cache) == 1


def test_key_is_model_identity_and_exact_prompt() -> None:
    a = model_identity(base_url="http://x/v1", model="a", params={"temperature": 0})
    b = model_identity(base_url="http://x/v1", model="b", params={"temperature": 0})
    assert cache_key(a, "p") != cache_key(b, "p")
    assert cache_key(a, "Sam met OpenAI") != cache_key(a, "OpenAI met Sam")
    assert cache_key(a, "p") != cache_key(a, "p ")
    assert model_identity(x=1, y=2) == model_identity(y=2, x=1)


def test_survives_a_new_process_object_on_the_same_file(tmp_path: Path) -> None:
    first = ResponseCache(tmp_path / "c.sqlite")
    first.put("m", "p", "kept")
    first.close()
    assert ResponseCache(tmp_path / "c.sqlite").get("m", "p") == "kept"


def test_is_safe_under_concurrent_threads(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    errors: List[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(50):
                cache.put("m", f"{worker}-{i}", str(i))
                assert cache.get("m", f"{worker}-{i}") == str(i)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache) == 400


def test_cache_hit_avoids_the_request(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.responder = lambda prompt: f"answer {prompt}"
    model = make_model(chat_server, ResponseCache(tmp_path / "c.sqlite"))
    first = ask(model, PROMPTS)
    assert len(chat_server.chat_requests) == 6
    assert ask(model, PROMPTS) == first
    assert len(chat_server.chat_requests) == 6 and model.stats.cache_hits == 6


def test_restart_reuses_the_file(chat_server: ChatServer, tmp_path: Path) -> None:
    ask(make_model(chat_server, ResponseCache(tmp_path / "c.sqlite")), PROMPTS)
    restarted = make_model(chat_server, ResponseCache(tmp_path / "c.sqlite"))
    ask(restarted, PROMPTS)
    assert len(chat_server.chat_requests) == 6


def test_cache_is_per_model_identity(chat_server: ChatServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    ask(make_model(chat_server, cache, model="model-a"), PROMPTS[:2])
    ask(make_model(chat_server, cache, model="model-b"), PROMPTS[:2])
    ask(make_model(chat_server, cache, model="model-a", config={"temperature": 0.7}), PROMPTS[:2])
    assert len(chat_server.chat_requests) == 6


def test_failures_are_not_cached(chat_server: ChatServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    chat_server.fail("prompt 1", http_error(500))
    answers = ask(make_model(chat_server, cache), PROMPTS[:3])
    assert isinstance(answers[1], FailedResponse) and len(cache) == 2
    assert ask(make_model(chat_server, cache), PROMPTS[:3])[1] == "{}"
    assert [r.prompt for r in chat_server.chat_requests[3:]] == ["prompt 1"]


def test_each_response_is_committed_as_it_arrives(chat_server: ChatServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    model = make_model(chat_server, ResponseCache(path), concurrency=1)
    observer = ResponseCache(path)  # a second connection, as another process would see the file
    seen_before: List[int] = []

    def respond(prompt: str) -> str:
        seen_before.append(len(observer))
        return "ok"

    chat_server.responder = respond
    ask(model, PROMPTS)
    assert seen_before == [0, 1, 2, 3, 4, 5]


CHILD = """
import sys
from spacy_ner_project.components.cache import ResponseCache
from spacy_ner_project.components.models import OpenAICompatibleModel
model = OpenAICompatibleModel(base_url=sys.argv[1], model="test-model", cache=ResponseCache(sys.argv[2]),
                              concurrency=1, max_retries=0)
model([[f"prompt {i}"] for i in range(6)])
"""


def test_rerun_after_a_crash_repeats_no_finished_request(chat_server: ChatServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    child: List[subprocess.Popen] = []

    def respond_then_crash(prompt: str) -> str:
        if prompt == "prompt 3":  # the process dies while this request is in flight
            os.kill(child[0].pid, signal.SIGKILL)
        return f"answer {prompt}"

    chat_server.responder = respond_then_crash
    child.append(subprocess.Popen([sys.executable, "-c", CHILD, chat_server.base_url, str(path)]))
    assert child[0].wait(timeout=60) == -signal.SIGKILL
    assert [r.prompt for r in chat_server.chat_requests] == PROMPTS[:4]

    chat_server.reset()
    chat_server.responder = lambda prompt: f"answer {prompt}"
    answers = ask(make_model(chat_server, ResponseCache(path)), PROMPTS)
    assert sorted(r.prompt for r in chat_server.chat_requests) == PROMPTS[3:]
    assert answers == [f"answer {p}" for p in PROMPTS]


def test_configured_from_a_spacy_config(chat_server: ChatServer, tmp_path: Path) -> None:
    config = Config().from_str(
        f"""
        [model]
        @llm_models = "spacy_ner_project.OpenAICompatible.v1"
        base_url = "{chat_server.base_url}"
        model = "test-model"
        concurrency = 2

        [model.config]
        temperature = 0.0

        [model.cache]
        @llm_misc = "spacy_ner_project.SQLiteCache.v1"
        path = "{tmp_path / 'cfg.sqlite'}"
        """
    )
    model = llm_registry.resolve(config)["model"]
    ask(model, PROMPTS[:2])
    ask(model, PROMPTS[:2])
    assert isinstance(model.cache, ResponseCache) and len(model.cache) == 2
    assert len(chat_server.chat_requests) == 2


class CountingModel:
    """A stand-in for any spacy-llm model: answers upper-cased prompts, fails on "bad"."""

    def __init__(self) -> None:
        self.calls: List[List[List[str]]] = []

    def __call__(self, prompts: Any) -> Any:
        batch = [list(p) for p in prompts]
        self.calls.append(batch)
        return [[FailedResponse("nope") if p == "bad" else p.upper() for p in doc] for doc in batch]


def test_cached_model_wraps_any_model(tmp_path: Path) -> None:
    inner = CountingModel()
    make = llm_registry.llm_models.get("spacy_ner_project.CachedModel.v1")
    model = make(model=inner, cache=ResponseCache(tmp_path / "c.sqlite"), model_id="counting")
    assert [list(r) for r in model([["a", "b"], ["a"], ["bad"]])] == [["A", "B"], ["A"], [""]]
    assert inner.calls == [[["a"]], [["b"]], [["bad"]]]  # one prompt per call: committed one by one
    assert [list(r) for r in model([["b"], ["a"], ["bad"]])] == [["B"], ["A"], [""]]
    assert inner.calls[3:] == [[["bad"]]]  # only the failed one is asked again
    other = make(model=inner, cache=model.cache, model_id="another")
    other([["a"]])
    assert inner.calls[-1] == [["a"]]


def test_cached_model_identity_includes_wrapped_rest_model_settings(tmp_path: Path) -> None:
    class FakeRest(CountingModel):
        def __init__(self, name: str) -> None:
            super().__init__()
            self._name, self._endpoint, self._config = name, "http://127.0.0.1:1/v1/chat/completions", {"temperature": 0}

    cache = ResponseCache(tmp_path / "c.sqlite")
    a = CachedModel(model=FakeRest("gpt-a"), cache=cache, model_id="same")
    b = CachedModel(model=FakeRest("gpt-b"), cache=cache, model_id="same")
    assert a.model_id != b.model_id and "gpt-a" in a.model_id


def test_closed_cache_says_so(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.close()
    with pytest.raises(RuntimeError, match="closed"):
        cache.get("m", "p")


# -- what identifies the served model -------------------------------------------------------


def test_the_served_model_is_part_of_the_cache_key(chat_server: ChatServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    chat_server.models = [{"id": "gemma-3-270m.gguf", "object": "model", "owned_by": "llamacpp", "meta": {"n_params": 1}}]
    ask(make_model(chat_server, cache), PROMPTS[:2])
    ask(make_model(chat_server, cache), PROMPTS[:2])  # same server, same model: hits
    assert len(chat_server.chat_requests) == 2
    # restarted with another GGUF, same base_url and model name: misses
    chat_server.models = [{"id": "smollm2-135m.gguf", "object": "model", "owned_by": "llamacpp", "meta": {"n_params": 2}}]
    ask(make_model(chat_server, cache), PROMPTS[:2])
    assert len(chat_server.chat_requests) == 4
    # the same id with other file metadata (llama.cpp's meta) is another model too
    chat_server.models[0]["meta"] = {"n_params": 3}
    ask(make_model(chat_server, cache), PROMPTS[:2])
    assert len(chat_server.chat_requests) == 6


def test_the_same_model_served_on_another_port_hits_the_cache(tmp_path: Path) -> None:
    """serve-llm picks a free port each run: where the server listens is no part of the key."""
    cache = ResponseCache(tmp_path / "c.sqlite")
    served = [{"id": "gemma3-270m@sha256:0123456789abcdef+passthrough", "object": "model", "owned_by": "me"}]
    with ChatServer(models=served) as first, ChatServer(models=served) as second:
        assert first.base_url != second.base_url
        first.responder = second.responder = lambda prompt: f"answer {prompt}"
        assert ask(make_model(first, cache), PROMPTS) == [f"answer {p}" for p in PROMPTS]
        rerun = make_model(second, cache)
        assert ask(rerun, PROMPTS) == [f"answer {p}" for p in PROMPTS]
        assert second.chat_requests == [] and rerun.stats.cache_hits == len(PROMPTS)
        second.models = [{**served[0], "id": "gemma3-270m@sha256:fedcba9876543210+passthrough"}]  # other weights
        ask(make_model(second, cache), PROMPTS[:1])
        assert len(second.chat_requests) == 1


def test_only_the_configured_models_entry_counts_when_listed(chat_server: ChatServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    chat_server.models = [{"id": "test-model", "created": 1}, {"id": "other", "created": 1}]
    ask(make_model(chat_server, cache), PROMPTS[:2])
    # OpenAI adds a model to the list, vLLM stamps "created" with the request time: still hits
    chat_server.models = [{"id": "test-model", "created": 2}, {"id": "other"}, {"id": "new"}]
    ask(make_model(chat_server, cache), PROMPTS[:2])
    assert len(chat_server.chat_requests) == 2


def test_identity_is_asked_once_on_first_use_never_at_construction(chat_server: ChatServer, tmp_path: Path) -> None:
    model = make_model(chat_server, ResponseCache(tmp_path / "c.sqlite"))
    assert chat_server.requests == []
    ask(model, PROMPTS[:2])
    ask(model, PROMPTS[2:4])
    assert [r.path for r in chat_server.requests if r.method == "GET"] == ["/v1/models"]


def test_without_a_models_route_the_configured_identity_is_used_and_said_once(
    chat_server: ChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chat_server.models = None
    cache = ResponseCache(tmp_path / "c.sqlite")
    model = make_model(chat_server, cache)
    with caplog.at_level(logging.WARNING, logger="spacy_ner_project.llm"):
        ask(model, PROMPTS[:2])
        ask(model, PROMPTS[:2])
    assert len(chat_server.chat_requests) == 2 and model.model_id == model.configured_id
    (record,) = [r for r in caplog.records if r.name == "spacy_ner_project.llm"]
    assert "/v1/models" in record.getMessage() and "cache_namespace" in record.getMessage()


@pytest.mark.parametrize(
    "change",
    [{"cache_namespace": "chat-template-b"}, {"structured_output": {"format": {"type": "object"}}}],
    ids=["namespace", "structured-output"],
)
def test_namespace_and_structured_output_are_part_of_the_key(
    chat_server: ChatServer, tmp_path: Path, change: Dict[str, Any]
) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    ask(make_model(chat_server, cache), PROMPTS[:2])
    ask(make_model(chat_server, cache, **change), PROMPTS[:2])
    ask(make_model(chat_server, cache, **change), PROMPTS[:2])
    assert len(chat_server.chat_requests) == 4


# -- answers the caller cannot use are not cached ---------------------------------------------


def is_json_object(answer: str) -> bool:
    return answer.strip().startswith("{")


def test_answers_that_fail_cache_check_are_returned_but_not_cached(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.responder = lambda prompt: "Sorry, I cannot help." if prompt == "prompt 1" else "{}"
    cache = ResponseCache(tmp_path / "c.sqlite")
    model = make_model(chat_server, cache, cache_check=is_json_object)
    assert ask(model, PROMPTS[:3]) == ["{}", "Sorry, I cannot help.", "{}"]
    assert len(cache) == 2 and model.stats.uncached_unusable == 1 and model.stats.answered == 3
    ask(make_model(chat_server, cache, cache_check=is_json_object), PROMPTS[:3])
    assert [r.prompt for r in chat_server.chat_requests[3:]] == ["prompt 1"]  # asked again


def test_an_unusable_answer_cached_before_is_asked_again(chat_server: ChatServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    model = make_model(chat_server, cache, cache_check=is_json_object)
    cache.put(model.model_id, "prompt 0", "prose from an older run")
    assert ask(model, PROMPTS[:1]) == ["{}"] and [r.prompt for r in chat_server.chat_requests] == ["prompt 0"]
    assert cache.get(model.model_id, "prompt 0") == "{}"


def test_cached_model_honours_cache_check(tmp_path: Path) -> None:
    inner = CountingModel()
    model = CachedModel(model=inner, cache=ResponseCache(tmp_path / "c.sqlite"), model_id="m", cache_check=lambda a: a != "JUNK")
    model([["junk"], ["fine"]])
    model([["junk"], ["fine"]])
    assert inner.calls == [[["junk"]], [["fine"]], [["junk"]]]
    assert model.stats.uncached_unusable == 2 and model.stats.cache_hits == 1


# -- cache paths that cannot hold the cache ---------------------------------------------------


def test_a_directory_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResponseCacheError, match=f"{tmp_path}.* is a directory.*paths.llm_cache"):
        ResponseCache(tmp_path)


def test_a_file_that_is_not_sqlite_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some text that is long enough to be a header" * 20)
    with pytest.raises(ResponseCacheError, match=r"notes\.txt is not an SQLite response cache.*delete it or point paths\.llm_cache"):
        ResponseCache(path)
    assert path.read_text().startswith("not a database")


def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(ResponseCacheError, match=r"other\.sqlite is not an SQLite response cache"):
        ResponseCache(path)
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_a_folder_that_cannot_be_created_is_refused_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "cache.sqlite"
    with pytest.raises(ResponseCacheError, match=r"a-file/cache\.sqlite.*point paths\.llm_cache"):
        ResponseCache(path)


def open_cache_unprivileged(path: Path, *, cwd: Path) -> "subprocess.CompletedProcess[str]":
    """Open the response cache at ``path`` in a child that mode bits bind (conftest's
    run_unprivileged): exit 3 with the ResponseCacheError's line on stdout when it is refused."""
    from conftest import run_unprivileged

    code = (
        "import sys\n"
        "from spacy_ner_project.components.cache import ResponseCache, ResponseCacheError\n"
        "try:\n"
        f"    ResponseCache({str(path)!r})\n"
        "except ResponseCacheError as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    return run_unprivileged([sys.executable, "-c", code], cwd=str(cwd))


def test_a_folder_that_is_not_writable_is_refused_naming_the_path(tmp_path: Path) -> None:
    """As an ordinary user would meet it (root runs it without the capabilities that override mode bits)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = open_cache_unprivileged(folder / "cache.sqlite", cwd=tmp_path)
        assert result.returncode == 3, result.stdout + result.stderr
        assert re.search(r"read-only/cache\.sqlite.*not writable", result.stdout), result.stdout
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_no_one_can_write_is_refused_naming_the_path() -> None:
    with pytest.raises(ResponseCacheError, match=r"/proc/snp-cache\.sqlite: its folder is not writable.*paths\.llm_cache"):
        ResponseCache(Path("/proc") / "snp-cache.sqlite")


# -- cache files that cannot be used, from the library and from the command line --------------

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "llm_ner.cfg"


def write_damaged(path: Path) -> None:
    """A cache whose first page (the schema) is overwritten: a valid header, then garbage."""
    cache = ResponseCache(path)
    for i in range(30):
        cache.put("m", f"prompt {i}", "answer " * 80)
    cache.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=DELETE")  # everything in the one file
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    path.write_bytes(bytes(data))


def write_read_only(path: Path) -> None:
    """A good cache with one answer, mode 0444 (its folder stays writable)."""
    cache = ResponseCache(path)
    cache.put("m", "p", "kept")
    cache.close()
    path.chmod(0o444)


UNUSABLE: Dict[str, Tuple[Callable[[Path], Any], str]] = {
    "damaged": (write_damaged, r"the response cache .*cache\.sqlite is damaged \(.*\): delete it or "),
    "not-sqlite": (lambda path: path.write_text("notes, not a database\n" * 100), r"cache\.sqlite is not an SQLite response cache \(.*\): delete it or "),
    "read-only": (write_read_only, r"cannot write the response cache .*cache\.sqlite: it is read-only: make it writable or "),
}


def test_a_read_only_cache_file_is_refused_when_opened_not_at_the_first_answer(tmp_path: Path) -> None:
    """As an ordinary user would meet it (root runs it without the capabilities that override mode bits)."""
    path = tmp_path / "cache.sqlite"
    write_read_only(path)
    try:
        result = open_cache_unprivileged(path, cwd=tmp_path)
    finally:
        path.chmod(0o644)
    assert result.returncode == 3, result.stdout + result.stderr
    assert re.search(UNUSABLE["read-only"][1] + "point paths.llm_cache elsewhere", result.stdout), result.stdout
    assert ResponseCache(path).get("m", "p") == "kept"


def test_a_damaged_cache_file_is_refused_naming_it_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    write_damaged(path)
    before = path.read_bytes()
    with pytest.raises(ResponseCacheError, match=UNUSABLE["damaged"][1] + r"point paths\.llm_cache elsewhere"):
        ResponseCache(path)
    assert path.read_bytes() == before


def command_output(args: List[str], *, unprivileged: bool, cwd: Path) -> Tuple[int, str]:
    """Exit code and output of ``python -m spacy_ner_project ARGS``: in a process of its own where
    mode bits must bind (run_unprivileged), else in this one (typer's CliRunner)."""
    if unprivileged:
        from conftest import run_unprivileged

        result = run_unprivileged([sys.executable, "-m", "spacy_ner_project", *args], cwd=str(cwd))
        return result.returncode, result.stdout + result.stderr
    from typer.testing import CliRunner

    from spacy_ner_project.cli import app

    invoked = CliRunner().invoke(app, args)
    return invoked.exit_code, invoked.output


@pytest.mark.parametrize("kind", sorted(UNUSABLE))
@pytest.mark.parametrize("command, option", [("llm-evaluate", "--cache"), ("annotate", "--llm-cache")])
def test_the_command_line_says_in_one_line_what_to_do_with_an_unusable_cache(
    tmp_path: Path, kind: str, command: str, option: str
) -> None:
    """One ✘ line naming the file and the option, no traceback (a read-only file as an ordinary
    user meets it: root runs it without the capabilities that override mode bits)."""
    import spacy
    from spacy.tokens import DocBin

    write, problem = UNUSABLE[kind]
    path = tmp_path / "cache.sqlite"
    write(path)
    before = path.read_bytes()
    if command == "llm-evaluate":
        gold = spacy.blank("en")("Sam went to Paris.")
        gold.ents = [gold.char_span(12, 17, label="LOC")]
        DocBin(docs=[gold]).to_disk(tmp_path / "gold.spacy")
        args = [str(tmp_path / "gold.spacy"), "--output", str(tmp_path / "report"), "--unit", "docs",
                "--base-url", "http://127.0.0.1:9/v1"]
    else:
        (tmp_path / "in.jsonl").write_text(json.dumps({"id": "1", "text": "Sam went to Paris."}) + "\n")
        args = [str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--format", "jsonl"]
    try:
        code, output = command_output(
            [command, str(CONFIG), *args, option, str(path)], unprivileged=kind == "read-only", cwd=tmp_path
        )
    finally:
        path.chmod(0o644)
    assert code == 1 and "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("✘")]
    assert re.search(problem + f"give {option} another file$", line), line
    assert path.read_bytes() == before
