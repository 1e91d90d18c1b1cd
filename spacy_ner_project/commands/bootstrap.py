"""``sample`` and ``silver``: the two ends of LLM-bootstrapped training
(:mod:`spacy_ner_project.bootstrap`): texts to annotate, and an annotate output as training data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from spacy_ner_project.commands import in_flags
from spacy_ner_project.commands.bounds import at_least


def sample_cli(
    data: Path = typer.Argument(..., help="Gold .spacy file to draw from (e.g. corpus/conll2003/train.spacy)"),
    texts: Path = typer.Argument(..., help="JSONL file to write: {\"id\", \"text\"} per unit (annotate's input)"),
    n: int = typer.Option(..., "--n", callback=at_least(1), help="Number of units to draw"),
    unit: str = typer.Option("sents", "--unit", help="sents or docs"),
    seed: int = typer.Option(0, "--seed", help="Random seed of the draw"),
    gold: Optional[Path] = typer.Option(None, "--gold", help="Also write the drawn units with their gold labels (.spacy)"),
) -> None:
    """Draw N units of a gold DocBin: their texts for an annotator, and their gold labels as a reference."""
    from spacy_ner_project.bootstrap import sample_units, write_docbin, write_texts

    with in_flags():
        docs = sample_units(data, n=n, unit=unit, seed=seed)
    write_texts(docs, texts)
    msg.good(f"Wrote {texts}: {len(docs)} texts ({unit}, seed {seed}; gold labels hidden)")
    if gold is not None:
        write_docbin(docs, gold)
        msg.good(f"Wrote {gold}: the same {len(docs)} units with their gold labels")


def silver_cli(
    annotations: Path = typer.Argument(..., help="An annotate output folder"),
    output: Path = typer.Argument(..., help=".spacy file to write (training data)"),
    lang: str = typer.Option("en", "--lang", help="Language of the blank tokenizer"),
) -> None:
    """Turn an annotate output folder into a training DocBin: failed, refused and unparsed rows left out and counted."""
    import json

    from spacy_ner_project.annotate.output import read_output
    from spacy_ner_project.bootstrap import silver_docs, write_docbin
    from spacy_ner_project.errors import UserError

    if not annotations.is_dir():
        raise UserError(f"{annotations} is not a folder; give an annotate output folder")
    docs, counts = silver_docs(read_output(annotations), lang=lang)
    if not docs:
        raise UserError(f"{annotations} has no usable row ({json.dumps(counts.to_dict())}); annotate again or check the server")
    write_docbin(docs, output)
    left_out = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(counts.left_out.items())) or "none"
    msg.good(f"Wrote {output}: {counts.kept} of {counts.rows} docs, {sum(counts.entities.values())} entities")
    msg.info(f"Left out: {left_out}; entities cutting a token: {counts.misaligned}")
    msg.info("Labels: " + (", ".join(f"{label} {n}" for label, n in sorted(counts.entities.items())) or "none"))
