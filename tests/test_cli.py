"""The command registry: every command loads and lists without importing its module first,
its short help starts its docstring, and the core's log records reach the console."""

from __future__ import annotations

import inspect
import io
import logging
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_ner_project.cli import COMMANDS, app, console_logging
from spacy_ner_project.errors import one_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_and_its_short_help_starts_its_docstring(name: str) -> None:
    spec = COMMANDS[name]
    command = spec.load(name)
    module_name, _, function_name = spec.target.partition(":")
    assert spec.target.startswith("spacy_ner_project.commands.")
    assert command.name == name and command.callback is not None
    doc = one_line(inspect.getdoc(getattr(__import__(module_name, fromlist=[function_name]), function_name)) or "")
    assert doc.startswith(spec.help), f"{name}: the registry's help {spec.help!r} is not the start of {doc!r}"
    assert bool(command.context_settings.get("allow_extra_args")) == spec.extra_args


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_usage_lines_name_arguments_in_one_style(name: str) -> None:
    """Arguments in capitals on every usage line (PIPELINE INPUT OUTPUT), never a mix of cases."""
    import re

    usage = COMMANDS[name].load(name).get_usage(click_context(name))
    arguments = re.findall(r"[{\[]([^{}\[\]]+)[}\]]", usage.split("[OPTIONS]", 1)[-1])
    arguments = [argument for argument in arguments if not argument.startswith("-")]  # [--section.key VALUE ...]: config overrides
    assert all(argument == argument.upper() for argument in arguments), usage


def click_context(name: str):
    command = COMMANDS[name].load(name)
    return command.make_context(name, [], resilient_parsing=True)


def test_the_command_list_names_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert f" {name} " in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["conver"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_core_log_records_become_console_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    logger = logging.getLogger("spacy_ner_project.training.overrides")
    with console_logging():
        logger.debug("not shown")
        logger.info("configs/x.cfg has no transformer")
        logging.getLogger("spacy_ner_project.llm").warning("a doc failed")
    logger.info("after the command")
    assert stderr.getvalue().splitlines() == ["ℹ configs/x.cfg has no transformer", "⚠ a doc failed"]


def test_train_shows_the_backbone_it_did_not_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = spacy.blank("en")
    DocBin(docs=[nlp("Anna saw Oslo .")]).to_disk(tmp_path / "c.spacy")
    calls = []
    monkeypatch.setattr("spacy.cli.train.train", lambda *args, **kwargs: calls.append(kwargs["overrides"]))
    corpus = str(tmp_path / "c.spacy")
    config = ROOT / "configs" / "ner_cnn.cfg"
    args = ["train", str(config), str(tmp_path / "out"), "--train", corpus, "--dev", corpus, "--backbone", "roberta-base", "--training.dropout", "0.2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"ℹ {config} has no transformer: backbone 'roberta-base' not used" in result.output
    assert calls == [{"paths.train": corpus, "paths.dev": corpus, "training.dropout": 0.2}]
