"""Command line: ``python -m spacy_ner_project COMMAND`` (or ``spacy-ner-project COMMAND``).

Each command is a thin typer wrapper around a function of its own module, so the
logic stays importable and testable without the CLI.
"""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

from spacy_ner_project.errors import UserError, error_line


class _OneLineErrors(TyperGroup):
    """The one place where a command's UserError or OSError becomes one '✘ message' line
    on stderr (never wrapped) and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UserError, OSError) as error:
            typer.secho(f"✘ {error_line(error)}", fg="red", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="spacy_ner_project",
    help="CoNLL-2003 conversion, NER evaluation and LLM NER for spaCy.",
    no_args_is_help=True,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """CoNLL-2003 conversion, NER evaluation and LLM NER for spaCy."""


# Commands are registered by their modules, one line each.
from spacy_ner_project import conll  # noqa: E402
from spacy_ner_project.evaluation import visualize  # noqa: E402
from spacy_ner_project.commands import evaluate  # noqa: E402
from spacy_ner_project.training import overrides as train  # noqa: E402
from spacy_ner_project.commands import serve_llm  # noqa: E402

app.command("convert")(conll.convert_cli)
app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(evaluate.evaluate_cli)
app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train.train_cli)
app.command("llm-evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(evaluate.llm_evaluate_cli)
app.command("llm-assemble", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(evaluate.llm_assemble_cli)
app.command("serve-llm", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(serve_llm.serve_llm_cli)
app.command("visualize")(visualize.visualize_cli)
app.command("annotate")(__import__("spacy_ner_project.commands.annotate", fromlist=["annotate_cli"]).annotate_cli)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
