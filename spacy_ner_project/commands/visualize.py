"""``visualize``: displaCy renderings of a pipeline's predictions beside gold
(:func:`spacy_ner_project.evaluation.visualize.visualize`)."""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from spacy_ner_project.commands.bounds import at_least
from spacy_ner_project.commands import in_flags
from spacy_ner_project.evaluation.visualize import visualize

_DEFAULTS = visualize.__kwdefaults__  # the core's option defaults, written once there


def visualize_cli(
    model: str = typer.Argument(..., help="Pipeline directory or package name"),
    data: Path = typer.Argument(..., help="Gold .spacy file"),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write"),
    limit: int = typer.Option(_DEFAULTS["limit"], "--limit", help="Number of documents to render", callback=at_least(1)),
) -> None:
    """Render predictions beside gold with displaCy into one self-contained HTML page."""
    with in_flags({"n_docs": "--limit"}):
        visualize(model, data, output, limit=limit)
    msg.good(f"Wrote {output}")
