"""``convert``: a CoNLL-2003 style file to a spaCy DocBin (:func:`spacy_ner_project.conll.convert`),
then its counts as a Markdown table row in the layout of the shared data README."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import typer
from wasabi import msg

from spacy_ner_project.commands.bounds import at_least
from spacy_ner_project.conll import ChunkTagError, ConllStats, convert
from spacy_ner_project.errors import UserError

_DEFAULTS = convert.__kwdefaults__  # the core's option defaults, written once there


def stats_table(name: str, stats: ConllStats) -> List[str]:
    """The header, rule and one row: file, docs, sentences, tokens, entities, then each type."""
    types = sorted(stats.entities)
    header = ["file", "docs", "sentences", "tokens", "entities", *types]
    cells: Sequence[object] = [name, stats.docs, stats.sentences, stats.tokens, stats.total_entities]
    cells = [*cells, *(stats.entities[label] for label in types)]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(str(c) for c in cells) + " |"]


def convert_cli(
    input_path: Path = typer.Argument(..., help="CoNLL file (IOB1 or IOB2)"),
    output_path: Path = typer.Argument(..., help="Output .spacy file (not the input)"),
    scheme: str = typer.Option(_DEFAULTS["scheme"], "--scheme", "-s", help="auto (the majority of entity starts decides), iob1 or iob2"),
    n_sents: int = typer.Option(_DEFAULTS["n_sents"], "--n-sents", "-n", help="Sentences per doc; 0 groups by -DOCSTART-", callback=at_least(0, meaning="group by -DOCSTART-")),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated allowed entity types"),
    strict: bool = typer.Option(_DEFAULTS["strict"], "--strict", help="IOB1: 'B-X' not after an X entity is an error"),
    lang: str = typer.Option(_DEFAULTS["lang"], "--lang", help="Language of the vocab"),
) -> None:
    """Convert a CoNLL-2003 style NER file to a spaCy DocBin and print its counts."""
    allowed = [label.strip() for label in labels.split(",")] if labels else None
    try:
        stats = convert(
            input_path, output_path, scheme=scheme, n_sents=n_sents, labels=allowed, strict=strict, lang=lang, progress=True  # type: ignore[arg-type]
        )
    except ChunkTagError as err:  # the library's "allowed labels" in the words of the option
        raise UserError(f"{err} (--labels with every entity type of the file, {err.label} among them)") from err
    for warning in stats.warnings:
        msg.warn(warning)
    for line in stats_table(input_path.name, stats):
        print(line)
    msg.good(f"Wrote {output_path} ({stats.scheme.upper()} tags)")
