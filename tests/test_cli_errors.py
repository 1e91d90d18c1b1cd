"""Every command error is one line naming the path (or value) and what to do, exit code 1,
no traceback: bad paths, foreign or damaged .spacy files, unknown languages, unwritable outputs."""

from __future__ import annotations

import errno
import os
import zlib
from pathlib import Path
from typing import List

import pytest
import spacy
import srsly
from spacy.tokens import DocBin, Span
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.docbin import DocBinError, read_docbin

CONLL = "Anna NNP B-NP B-PER\nsaw VBD O O\nOslo NNP B-NP B-LOC\n. . O O\n"


def run(*args: str | Path) -> str:
    """Run a command that must fail; returns its one line of output after checking the contract."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught error
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("✘ ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture
def conll(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_text(CONLL, encoding="utf-8")
    return path


@pytest.fixture
def gold(tmp_path: Path) -> Path:
    nlp = spacy.blank("en")
    doc = nlp("Anna saw Oslo .")
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 2, 3, "LOC")]
    path = tmp_path / "gold.spacy"
    DocBin(docs=[doc]).to_disk(path)
    return path


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "blank"
    spacy.blank("en").to_disk(path)
    return path


FOREIGN = {  # name: (bytes, what the message says)
    "no_attrs.spacy": (zlib.compress(srsly.msgpack_dumps({"strings": []})), "without the DocBin fields attrs"),
    "not_msgpack.spacy": (zlib.compress(b"plain text, compressed"), "not msgpack"),
    "msgpack_int.spacy": (zlib.compress(srsly.msgpack_dumps(5)), "msgpack of a int"),
    "text.spacy": (b"Anna saw Oslo.\n", "not zlib-compressed"),
    "empty.spacy": (b"", "empty"),
}


# ------------------------------------------------------------------------------ reader


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_read_docbin_names_what_is_wrong(tmp_path: Path, name: str) -> None:
    data, fragment = FOREIGN[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DocBinError) as err:
        read_docbin(path, vocab=spacy.blank("en").vocab)
    assert str(err.value).startswith(f"{path}: ") and fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_read_docbin_missing_and_directory(tmp_path: Path, gold: Path) -> None:
    with pytest.raises(DocBinError, match="not found"):
        read_docbin(tmp_path / "none.spacy", vocab=spacy.blank("en").vocab)
    with pytest.raises(DocBinError, match="is a directory"):
        read_docbin(tmp_path, vocab=spacy.blank("en").vocab)
    assert [d.text for d in read_docbin(gold, vocab=spacy.blank("en").vocab)] == ["Anna saw Oslo ."]


# ----------------------------------------------------------------------------- convert


def test_convert_refuses_output_that_is_the_input(conll: Path) -> None:
    line = run("convert", conll, conll)
    assert str(conll) in line and "is the input file" in line
    assert conll.read_text(encoding="utf-8") == CONLL


def test_convert_refuses_a_link_to_the_input(tmp_path: Path, conll: Path) -> None:
    for link, make in ((tmp_path / "sym.spacy", os.symlink), (tmp_path / "hard.spacy", os.link)):
        make(conll, link)
        assert "is the input file" in run("convert", conll, link)
    assert conll.read_text(encoding="utf-8") == CONLL


def test_convert_unknown_language(tmp_path: Path, conll: Path) -> None:
    line = run("convert", conll, tmp_path / "out.spacy", "--lang", "xx_nope")
    assert line == "✘ unknown language code 'xx_nope': use a spaCy language code such as en, de"
    assert not (tmp_path / "out.spacy").exists()


@pytest.mark.parametrize(
    "make_input,fragment",
    [(lambda tmp: tmp / "none.txt", "not found"), (lambda tmp: tmp, "is a directory")],
)
def test_convert_missing_or_directory_input(tmp_path: Path, make_input, fragment: str) -> None:
    source = make_input(tmp_path)
    line = run("convert", source, tmp_path / "out.spacy")
    assert f"{source}: {fragment}" in line


def test_convert_output_that_is_a_directory(tmp_path: Path, conll: Path) -> None:
    (tmp_path / "out").mkdir()
    line = run("convert", conll, tmp_path / "out")
    assert f"{tmp_path / 'out'} is a directory" in line


def test_convert_output_below_a_file(tmp_path: Path, conll: Path) -> None:
    target = conll / "out.spacy"  # the "folder" is the CoNLL file
    line = run("convert", conll, target)
    assert f"cannot write {target}" in line


def test_convert_to_a_read_only_file_system(tmp_path: Path, conll: Path, monkeypatch) -> None:
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / ".out.spacy.x.tmp"))

    monkeypatch.setattr("spacy_ner_project.files.tempfile.mkstemp", read_only)
    line = run("convert", conll, tmp_path / "out.spacy")
    assert f"cannot write {tmp_path / 'out.spacy'}: Read-only file system" in line


def test_convert_into_a_read_only_folder(tmp_path: Path) -> None:
    """As an ordinary user would meet it (root runs it without the capabilities that override mode bits)."""
    import sys

    from conftest import run_unprivileged

    source = tmp_path / "data.txt"
    source.write_text(CONLL, encoding="utf-8")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = run_unprivileged([sys.executable, "-m", "spacy_ner_project", "convert", str(source), str(folder / "out.spacy")],
                                  cwd=str(tmp_path))
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
        assert f"cannot write {folder / 'out.spacy'}" in lines[0] and "Permission denied" in lines[0]
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_convert_bad_scheme(tmp_path: Path, conll: Path) -> None:
    assert "scheme must be 'auto', 'iob1' or 'iob2', not 'bio'" in run("convert", conll, tmp_path / "o.spacy", "--scheme", "bio")


def test_convert_a_chunk_column_where_the_ner_column_should_be(tmp_path: Path) -> None:
    """Before: B-NP, I-VP ... were converted into NP and VP "entities" (exit 0)."""
    source = tmp_path / "chunks.txt"
    source.write_text("Mira NNP B-NP\nsang VBD B-VP\nat IN B-PP\nthe DT B-NP\nmill NN I-NP\n. . O\n", encoding="utf-8")
    line = run("convert", source, tmp_path / "out.spacy")
    assert line.startswith(f"✘ {source}:1:10: 'B-NP' is a chunk tag (NP: noun phrase), not an entity")
    assert line.endswith("(--labels with every entity type of the file, NP among them)")
    assert not (tmp_path / "out.spacy").exists()
    result = CliRunner().invoke(app, ["convert", str(source), str(tmp_path / "out.spacy"), "--labels", "NP,VP,PP"])
    assert result.exit_code == 0 and "| chunks.txt | 1 | 1 | 6 | 4 | 2 | 1 | 1 |" in result.output, result.output


def test_convert_language_whose_tokenizer_package_is_missing(tmp_path: Path, conll: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: 'unknown language code 'ja'', which spaCy knows (it needs SudachiPy)."""
    import sys

    monkeypatch.setitem(sys.modules, "sudachipy", None)  # not installed, whether or not it is here
    line = run("convert", conll, tmp_path / "out.spacy", "--lang", "ja")
    assert line.startswith("✘ language 'ja' needs a package that is not installed: Japanese support requires SudachiPy")


# ---------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_evaluate_on_a_foreign_file(tmp_path: Path, pipeline: Path, name: str) -> None:
    data, fragment = FOREIGN[name]
    path = tmp_path / name
    path.write_bytes(data)
    line = run("evaluate", pipeline, path, "--output", tmp_path / "report")
    assert line.startswith(f"✘ {path}: ") and fragment in line
    assert not (tmp_path / "report").exists()


def test_evaluate_missing_gold(tmp_path: Path, pipeline: Path) -> None:
    line = run("evaluate", pipeline, tmp_path / "none.spacy", "--output", tmp_path / "report")
    assert f"{tmp_path / 'none.spacy'}: not found" in line


@pytest.mark.parametrize("kind", ["empty_dir", "file", "missing"])
def test_evaluate_a_pipeline_that_is_not_one(tmp_path: Path, gold: Path, kind: str) -> None:
    source = {"empty_dir": tmp_path / "empty", "file": gold, "missing": tmp_path / "nowhere"}[kind]
    if kind == "empty_dir":
        source.mkdir()
    line = run("evaluate", source, gold, "--output", tmp_path / "report")
    assert str(source) in line and "pipeline" in line and "nlp.to_disk" in line


def test_evaluate_output_that_is_a_file(tmp_path: Path, gold: Path, pipeline: Path) -> None:
    (tmp_path / "report").write_text("x")
    line = run("evaluate", pipeline, gold, "--output", tmp_path / "report")
    assert f"{tmp_path / 'report'} is a file" in line


def test_evaluate_bad_option_value(tmp_path: Path, gold: Path, pipeline: Path) -> None:
    assert "min_overlap" in run("evaluate", pipeline, gold, "--output", tmp_path / "r", "--min-overlap", "2")


def test_evaluate_config_override_that_spacy_refuses(tmp_path: Path, gold: Path, pipeline: Path) -> None:
    line = run("evaluate", pipeline, gold, "--output", tmp_path / "r",
               "--nlp.after_pipeline_creation.@misc", "spacy_ner_project.onnx_backbone.v1")
    assert f"{pipeline}: Error parsing config overrides: nlp.after_pipeline_creation.@misc:" in line
    assert "one JSON object" in line  # a registered function given key by key: how to give it
    line = run("evaluate", pipeline, gold, "--output", tmp_path / "r", "--nlp.batch_size", '"many"')
    assert "nlp.batch_size" in line and "JSON object" not in line


@pytest.mark.parametrize("lang,module", [("ja", "sudachipy"), ("th", "pythainlp")])
def test_evaluate_blank_language_whose_tokenizer_package_is_missing(
    tmp_path: Path, gold: Path, monkeypatch: pytest.MonkeyPatch, lang: str, module: str
) -> None:
    """blank:zz (a code spaCy does not know) is one line (tests/test_pipelines.py); a code it
    knows whose tokenizer needs a package that is not there was spaCy's ImportError traceback."""
    import sys

    monkeypatch.setitem(sys.modules, module, None)
    line = run("evaluate", f"blank:{lang}", gold, "--output", tmp_path / "report")
    assert line.startswith(f"✘ blank:{lang}: language '{lang}' needs a package that is not installed: ")
    assert "install" in line.lower() and not (tmp_path / "report").exists()
    assert run("evaluate", "blank:zz", gold, "--output", tmp_path / "report") == (
        "✘ blank:zz: unknown language code 'zz': use a spaCy language code such as en, de"
    )


def test_evaluate_gpu_that_is_not_there(tmp_path: Path, gold: Path, pipeline: Path, monkeypatch) -> None:
    def no_gpu(gpu_id: int) -> None:
        raise ValueError("GPU is not accessible. Was the library installed correctly?")

    monkeypatch.setattr("spacy.require_gpu", no_gpu)
    assert "--gpu-id 0: GPU is not accessible" in run("evaluate", pipeline, gold, "--output", tmp_path / "r", "--gpu-id", "0")


def test_the_core_names_no_command_line_option_for_a_gpu_it_cannot_use(monkeypatch) -> None:
    """The library says which GPU and why; only the command adds its --gpu-id."""
    from spacy_ner_project.pipelines import DeviceError, use_device

    def no_gpu(gpu_id: int) -> None:
        raise ValueError("GPU is not accessible")

    monkeypatch.setattr("spacy.require_gpu", no_gpu)
    with pytest.raises(DeviceError) as err:
        use_device(1)
    assert (err.value.gpu_id, err.value.reason) == (1, "GPU is not accessible")
    assert "--" not in str(err.value) and "GPU 1" in str(err.value)
    use_device(-1)  # the CPU: nothing to require


def test_an_os_error_anywhere_is_one_line(tmp_path: Path, gold: Path, pipeline: Path, monkeypatch) -> None:
    target = tmp_path / "r" / "metrics.json"

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))

    monkeypatch.setattr("spacy_ner_project.evaluation.report.write_report", denied)
    line = run("evaluate", pipeline, gold, "--output", tmp_path / "r")
    assert line.startswith(f"✘ cannot access {target}: Permission denied")


# --------------------------------------------------------------------------- visualize


def test_visualize_foreign_gold_bad_pipeline_and_directory_output(tmp_path: Path, gold: Path, pipeline: Path) -> None:
    foreign = tmp_path / "no_attrs.spacy"
    foreign.write_bytes(FOREIGN["no_attrs.spacy"][0])
    assert f"{foreign}: not a spaCy DocBin" in run("visualize", pipeline, foreign, "-o", tmp_path / "v.html")
    assert "is not a spaCy pipeline" in run("visualize", tmp_path, gold, "-o", tmp_path / "v.html")
    (tmp_path / "v").mkdir()
    assert f"{tmp_path / 'v'} is a directory" in run("visualize", pipeline, gold, "-o", tmp_path / "v")


# ------------------------------------------------------------------------------- train


def train_args(tmp_path: Path, config: Path, train: Path, dev: Path, output: Path | None = None) -> List[str | Path]:
    return ["train", config, output or tmp_path / "training", "--train", train, "--dev", dev]


def test_train_missing_config(tmp_path: Path, gold: Path) -> None:
    line = run(*train_args(tmp_path, tmp_path / "none.cfg", gold, gold))
    assert f"{tmp_path / 'none.cfg'}: not found" in line and "configs/" in line


def test_train_corpus_that_is_not_a_docbin(tmp_path: Path, gold: Path, conll: Path) -> None:
    config = tmp_path / "x.cfg"
    config.write_text("[nlp]\nlang = \"en\"\n")
    assert f"{conll}: not a spaCy DocBin" in run(*train_args(tmp_path, config, conll, gold))
    assert f"{tmp_path / 'dev.spacy'}: not found" in run(*train_args(tmp_path, config, gold, tmp_path / "dev.spacy"))


def test_train_output_that_is_a_file_and_broken_config(tmp_path: Path, gold: Path) -> None:
    config = tmp_path / "x.cfg"
    config.write_text("[nlp]\nlang = \"en\"\n")
    assert f"{config} is a file" in run(*train_args(tmp_path, config, gold, gold, output=config))
    config.write_text("[nlp\nlang = en\n")
    assert f"{config} is not a valid spaCy config" in run(*train_args(tmp_path, config, gold, gold))


def test_serve_llm_unknown_model_and_missing_command(tmp_path: Path) -> None:
    line = run("serve-llm", "--model", str(tmp_path / "nope.gguf"), "--", "echo", "hi")
    assert "nope.gguf" in line and "neither a known name" in line
    # the launcher's own errors and a command after -- that is not on PATH both go through cli.py
    from spacy_ner_project.commands import serve_llm
    from spacy_ner_project.errors import UserError
    from spacy_ner_project.llm.server import LocalServerError

    assert issubclass(LocalServerError, UserError)
    assert "msg.fail" not in Path(serve_llm.__file__).read_text()


def test_serve_llm_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-cpp-python missing (imports made to fail here, whether or not it is installed)."""
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setitem(sys.modules, "llama_cpp.server", None)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    line = run("serve-llm", "--model", str(gguf), "--", "echo", "hi")
    assert "llama-cpp-python's server is not installed" in line and '".[local-llm]"' in line


def test_serve_llm_port_in_use(tmp_path: Path) -> None:
    """Before: no --port option; the library, given a port in use, reported success and talked
    to whatever held it. Checked before the server (or llama-cpp-python) is needed."""
    import socket

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = run("serve-llm", "--model", str(gguf), "--port", str(port), "--", "echo", "hi")
    assert line == (
        f"✘ --port {port}: 127.0.0.1:{port} is in use by another program; give another port, or leave --port out for a free one"
    )


def test_sentence_docbin_places_entities_and_refuses_a_split_token(tmp_path: Path) -> None:
    from spacy_ner_project.docbin import read_docbin, sentence_docbin
    from spacy_ner_project.errors import UserError

    path = sentence_docbin([("Ada Lovelace met Babbage in London .", [("Ada Lovelace", "PER"), ("London", "LOC")])],
                           tmp_path / "s.spacy")
    (doc,) = read_docbin(path, vocab=spacy.blank("en").vocab)
    assert [(e.text, e.label_) for e in doc.ents] == [("Ada Lovelace", "PER"), ("London", "LOC")]
    with pytest.raises(UserError, match="token boundaries"):
        sentence_docbin([("Londoners cheered .", [("London", "LOC")])], tmp_path / "bad.spacy")


# ------------------------------------------------------------------------ option bounds

EVALUATE_ARGS = ["PIPELINE", "gold.spacy", "--output", "report"]
TRAIN_ARGS = ["x.cfg", "training", "--train", "t.spacy", "--dev", "d.spacy"]
SERVE_ARGS = ["--model", "model.gguf"]
ANNOTATE_ARGS = ["PIPELINE", "texts.jsonl", "out"]
# command: (its arguments, [(option, a value out of bounds, what the line says it must be)])
OUT_OF_BOUNDS = {
    "convert": (["in.txt", "out.spacy"], [("--n-sents", "-1", "0 (group by -DOCSTART-) or more")]),
    "train": (TRAIN_ARGS, [("--max-steps", "-1", "0 (no limit) or more"), ("--eval-frequency", "0", "1 or more"),
                           ("--gpu-id", "-2", "-1 (the CPU) or more")]),
    "evaluate": (EVALUATE_ARGS, [("--n-docs", "-1", "0 (all) or more"), ("--displacy-limit", "-1", "0 (none) or more"),
                                 ("--gpu-id", "-2", "-1 (the CPU) or more"), ("--batch-size", "0", "1 or more"),
                                 ("--threads", "0", "1 or more")]),
    "llm-evaluate": (EVALUATE_ARGS, [("--n-docs", "-5", "0 (all) or more"), ("--displacy-limit", "-1", "0 (none) or more"),
                                     ("--gpu-id", "-3", "-1 (the CPU) or more"), ("--batch-size", "-1", "1 or more"),
                                     ("--threads", "-1", "1 or more")]),
    "visualize": (["PIPELINE", "gold.spacy", "-o", "v.html"], [("--limit", "0", "1 or more")]),
    "serve-llm": (SERVE_ARGS, [("--n-ctx", "-5", "1 or more"), ("--n-threads", "0", "1 or more"),
                               ("--port", "70000", "from 1 to 65535"), ("--startup-timeout", "0", "more than 0")]),
    "annotate": (ANNOTATE_ARGS, [("--max-chars", "0", "1 or more"), ("--batch-size", "0", "1 or more"),
                                 ("--n-process", "0", "1 or more"), ("--actors", "0", "1 or more"),
                                 ("--cpus-per-actor", "0", "more than 0"), ("--gpus-per-actor", "-1", "0 or more"),
                                 ("--max-retries", "-1", "0 or more"), ("--llm-capacity", "0", "1 or more"),
                                 ("--object-store-mb", "74", "75 or more")]),
    "sample": (["gold.spacy", "texts.jsonl"], [("--n", "0", "1 or more")]),
}
WITHOUT_NUMBER_OPTIONS = ("check-data", "llm-assemble", "package", "silver")
UNBOUNDED = {("sample", "--seed")}  # any integer is a seed
# number options whose bounds the library checks, in its own words (one line all the same)
CHECKED_BY_THE_LIBRARY = {("evaluate", "--min-overlap", "2"), ("evaluate", "--text-threshold", "101"),
                          ("evaluate", "--max-failed", "-1"), ("llm-evaluate", "--min-overlap", "-1"),
                          ("llm-evaluate", "--text-threshold", "-1"), ("llm-evaluate", "--max-failed", "2")}


def number_options(name: str) -> List[str]:
    """The long names of a command's int and float options (from its typer function's signature)."""
    import importlib
    import inspect
    from typing import Optional

    from typer.models import OptionInfo

    from spacy_ner_project.cli import COMMANDS

    module, _, function = COMMANDS[name].target.partition(":")
    signature = inspect.signature(getattr(importlib.import_module(module), function), eval_str=True)
    numbers = (int, float, Optional[int], Optional[float])
    options = [p for p in signature.parameters.values() if isinstance(p.default, OptionInfo) and p.annotation in numbers]
    return sorted(max(p.default.param_decls or ["--" + p.name.replace("_", "-")], key=len) for p in options)


def test_every_number_option_refuses_nonsense_in_one_line() -> None:
    """Each command's int and float options, each with a value out of its bounds: one line
    naming the option, the value and the bound, before anything is loaded or read (before:
    --displacy-limit -1, --n-ctx -5, --batch-size 0 ... were accepted or failed later, unclearly)."""
    walked = {(name, option) for name, (_, cases) in OUT_OF_BOUNDS.items() for option, _, _ in cases}
    walked |= {(name, option) for name, option, _ in CHECKED_BY_THE_LIBRARY} | UNBOUNDED
    assert walked == {(name, option) for name in OUT_OF_BOUNDS for option in number_options(name)}  # all of them
    assert not any(number_options(name) for name in WITHOUT_NUMBER_OPTIONS)
    for name, (args, cases) in OUT_OF_BOUNDS.items():
        for option, value, rule in cases:
            assert run(name, *args, option, value) == f"✘ {option} {value}: must be {rule}"
    for name, option, value in sorted(CHECKED_BY_THE_LIBRARY):
        line = run(name, *EVALUATE_ARGS, option, value)
        assert option.lstrip("-").replace("-", "_") in line.replace("-", "_")
