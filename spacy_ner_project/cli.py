"""Command line: ``python -m spacy_ner_project COMMAND`` (or ``spacy-ner-project COMMAND``).

The commands live in :mod:`spacy_ner_project.commands`, one module each, over the core library
(which never imports the command line). :data:`COMMANDS` names them as ``"module:function"``
with their short help; a command's module is imported only when that command runs or its
``--help`` is asked for, so ``--help`` and ``convert --help`` do not load spaCy. This module is
also the one place where a command's error becomes one ``✘`` line and where the core's log
records become console lines.
"""

from __future__ import annotations

import importlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import click
import typer
from typer.core import TyperArgument, TyperGroup

from spacy_ner_project.errors import UserError, error_line
from spacy_ner_project.extras import missing_extra_error

CORE_LOGGER = "spacy_ner_project"  # the core and the components log under this name
_PASS_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}  # spaCy config overrides, a command after --


@dataclass(frozen=True)
class CommandSpec:
    """Where a command is (``"module:function"``, a typer function), its short help for the
    command list (the start of the function's docstring), and whether it takes arguments
    beyond its options (spaCy config overrides such as ``--training.dropout 0.2``)."""

    target: str
    help: str
    extra_args: bool = False

    @property
    def context_settings(self) -> Dict[str, Any]:
        return dict(_PASS_EXTRA_ARGS) if self.extra_args else {}

    def load(self, name: str) -> click.Command:
        """Import the function's module and build its click command."""
        module_name, _, function_name = self.target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        single = typer.Typer(add_completion=False)
        single.command(name, short_help=self.help, context_settings=self.context_settings)(function)
        command = typer.main.get_command(single)
        for param in command.params:  # one usage style: arguments in capitals (PIPELINE INPUT OUTPUT)
            if isinstance(param, TyperArgument) and not param.metavar and param.name:
                param.metavar = param.name.upper()
        return command

    def placeholder(self, name: str) -> click.Command:
        """A command that only names itself and its help (the command list); never run."""
        return click.Command(name, help=self.help, short_help=self.help)


COMMANDS: Dict[str, CommandSpec] = {
    "check-data": CommandSpec(
        "spacy_ner_project.commands.check_data:check_data_cli",
        "Check that a data folder holds every split file (train.txt, dev.txt, test.txt), naming each missing one.",
    ),
    "convert": CommandSpec(
        "spacy_ner_project.commands.convert:convert_cli",
        "Convert a CoNLL-2003 style NER file to a spaCy DocBin and print its counts.",
    ),
    "train": CommandSpec(
        "spacy_ner_project.commands.train:train_cli",
        "Train a NER pipeline from a config (spacy train with the project's switches).",
        extra_args=True,
    ),
    "distil": CommandSpec(
        "spacy_ner_project.commands.distil:distil_cli",
        "Distil a transformer pipeline's backbone into fewer layers (the teacher's NER unchanged); resumable.",
    ),
    "evaluate": CommandSpec(
        "spacy_ner_project.commands.evaluate:evaluate_cli",
        "Score pipelines (directories, packages or config files) on the same gold data with spaCy's and the fuzzy scorer; write one report.",
        extra_args=True,
    ),
    "llm-evaluate": CommandSpec(
        "spacy_ner_project.commands.evaluate:llm_evaluate_cli",
        "`evaluate` with the LLM defaults (--unit sents, --n-docs 100): run an LLM pipeline (config or directory) over gold data and score it.",
        extra_args=True,
    ),
    "llm-assemble": CommandSpec(
        "spacy_ner_project.commands.evaluate:llm_assemble_cli",
        "`spacy assemble` for the LLM pipeline, with few-shot examples from paths.train: assemble, initialise and save it.",
        extra_args=True,
    ),
    "serve-llm": CommandSpec(
        "spacy_ner_project.commands.serve_llm:serve_llm_cli",
        "Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (a free port unless --port), run the command after `--` with {base_url} substituted, and stop the server.",
        extra_args=True,
    ),
    "package": CommandSpec(
        "spacy_ner_project.commands.package:package_cli",
        "Package a trained pipeline as a wheel, with the plugin's wheel beside it for an offline install.",
    ),
    "sample": CommandSpec(
        "spacy_ner_project.commands.bootstrap:sample_cli",
        "Draw N units of a gold DocBin: their texts for an annotator, and their gold labels as a reference.",
    ),
    "silver": CommandSpec(
        "spacy_ner_project.commands.bootstrap:silver_cli",
        "Turn an annotate output folder into a training DocBin: failed, refused and unparsed rows left out and counted.",
    ),
    "visualize": CommandSpec(
        "spacy_ner_project.commands.visualize:visualize_cli",
        "Render predictions beside gold with displaCy into one self-contained HTML page.",
    ),
    "annotate": CommandSpec(
        "spacy_ner_project.commands.annotate:annotate_cli",
        "Annotate a corpus with a spaCy pipeline: entities (and the LLM task's record) per document.",
        extra_args=True,
    ),
}


class _ConsoleLog(logging.Handler):
    """The core's log records as console lines on stderr: 'ℹ' for INFO, '⚠' for WARNING, '✘' above."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.ERROR:
                icon, color = "✘", "red"
            elif record.levelno >= logging.WARNING:
                icon, color = "⚠", "yellow"
            else:
                icon, color = "ℹ", "blue"
            typer.secho(f"{icon} {self.format(record)}", fg=color, err=True)
        except Exception:  # noqa: BLE001 - logging's contract: a handler never raises
            self.handleError(record)


@contextmanager
def console_logging(level: int = logging.INFO) -> Iterator[None]:
    """Show the core's log records (``level`` and above) on the console while a command runs."""
    logger = logging.getLogger(CORE_LOGGER)
    handler = _ConsoleLog(level=level)
    previous = logger.level
    logger.addHandler(handler)
    if previous == logging.NOTSET or previous > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class LazyCommands(TyperGroup):
    """The command group: lists :data:`COMMANDS` without importing them, imports the one that
    runs, and turns its UserError, OSError or missing extra into one '✘ message' line on stderr
    (never wrapped) and exit code 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, spec in COMMANDS.items():
            self.commands[name] = spec.placeholder(name)

    def resolve_command(self, ctx: click.Context, args: List[str]) -> Tuple[Optional[str], Optional[click.Command], List[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS:
            command = COMMANDS[name].load(name)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with console_logging():
                return super().invoke(ctx)
        except ModuleNotFoundError as error:  # a module of an extra that is not installed
            user_error = missing_extra_error(error)
            if user_error is None:
                raise
            typer.secho(f"✘ {error_line(user_error)}", fg="red", err=True)
            raise typer.Exit(1) from None
        except (UserError, OSError) as error:
            typer.secho(f"✘ {error_line(error)}", fg="red", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=LazyCommands,
    name="spacy_ner_project",
    help="CoNLL-2003 conversion, NER evaluation and LLM NER for spaCy.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """CoNLL-2003 conversion, NER evaluation and LLM NER for spaCy."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
