"""Where the benchmarks read CoNLL-2003 (by path, never copied) and keep their converted DocBins."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict

from spacy_ner_project.conll import convert

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "conll2003")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "training" / "benchmarks")


def convert_splits(data_dir: Path, work_dir: Path) -> Dict[str, Path]:
    """``{split: DocBin path}`` under ``work_dir/corpus``, converting the ones not there yet."""
    paths = {}
    for split, name in SPLITS.items():
        out = work_dir / "corpus" / f"{split}.spacy"
        if not out.exists():
            convert(data_dir / name, out)
        paths[split] = out
    return paths
