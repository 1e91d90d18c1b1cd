"""Full CoNLL-2003 benchmark: train a config on this machine, score dev and test, time inference.

    python benchmarks/conll2003.py --config configs/ner_trf.cfg --name trf_minilm --max-steps 1200
    python benchmarks/conll2003.py --config configs/ner_cnn.cfg --name cnn --max-steps 4000

Each run adds (or replaces) one entry in ``benchmarks/conll2003.json`` and rewrites
``benchmarks/conll2003.md`` from all entries. The data is read by path from
``--data-dir`` (CoNLL-2003's licence forbids copying it into the project); converted
DocBins and trained pipelines go under ``--work-dir`` (outside git).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

import spacy

from common import HERE, ROOT, machine, percent_value, relative, write_json, write_markdown  # benchmarks/common.py
from corpus import add_data_args, convert_splits  # benchmarks/corpus.py
from spacy_ner_project.evaluation.evaluate import read_gold, score_pipeline

LABELS = ("PER", "ORG", "LOC", "MISC")


def score(nlp, path: Path) -> Dict[str, Any]:
    """spaCy's scorer (through the project's evaluation path) on a DocBin of whole documents,
    plus inference words per second (``nlp.pipe(batch_size=32)`` after a warm-up)."""
    gold = read_gold(path)
    list(nlp.pipe(doc.text for doc in gold[:8]))  # warm-up
    scores = score_pipeline(nlp, gold, name=path.stem, batch_size=32).scores
    n_words = sum(len(doc) for doc in gold)
    per_type = {
        label: {k: percent_value(v) for k, v in scores["ents_per_type"].get(label, {}).items()} for label in LABELS
    }
    return {
        "p": percent_value(scores["ents_p"]),
        "r": percent_value(scores["ents_r"]),
        "f": percent_value(scores["ents_f"]),
        "per_type": per_type,
        "words": n_words,
        "inference_seconds": round(n_words / scores["speed"], 1),
        "words_per_second": round(scores["speed"]),
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    corpus = convert_splits(args.data_dir, args.work_dir)
    output = args.work_dir / args.name
    cmd = [
        sys.executable, "-m", "spacy_ner_project", "train", str(args.config), str(output),
        "--train", str(corpus["train"]), "--dev", str(corpus["dev"]),
    ]
    if args.max_steps:
        cmd += ["--max-steps", str(args.max_steps)]
    if args.eval_frequency:
        cmd += ["--eval-frequency", str(args.eval_frequency)]
    cmd += args.overrides
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    train_seconds = time.perf_counter() - start
    nlp = spacy.load(output / "model-best")
    meta = json.loads((output / "model-best" / "meta.json").read_text())
    return {
        "name": args.name,
        "config": relative(args.config),
        "command": " ".join(["python", "-m", "spacy_ner_project", *cmd[3:]]).replace(f"{ROOT}/", ""),
        "train_wall_minutes": round(train_seconds / 60, 1),
        "best_step_dev_f": percent_value(meta["performance"]["ents_f"]),
        "dev": score(nlp, corpus["dev"]),
        # experiments (issue 5) are selected on dev only; test is scored for final choices
        "test": None if args.dev_only else score(nlp, corpus["test"]),
        "machine": machine("torch"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "note": args.note,
    }


def render(results: List[Dict[str, Any]]) -> str:
    lines = [
        "# CoNLL-2003 benchmark",
        "",
        "Written by `benchmarks/conll2003.py` (one run per row; the JSON beside this file has every figure).",
        "Entity-level precision, recall and F1 from spaCy's scorer on whole `-DOCSTART-` documents;",
        "trained on `train.txt`, model selection on `dev.txt`, `test.txt` scored once at the end.",
        "Inference: `nlp.pipe(batch_size=32)` over the split's document texts, words = CoNLL tokens.",
        "",
        "| run | config | train wall time | dev F1 | test F1 | test P | test R | inference words/s (test) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        test = r["test"] or {"f": "–", "p": "–", "r": "–"}
        speed = f"{r['test']['words_per_second']:,}" if r["test"] else f"{r['dev']['words_per_second']:,} (dev)"
        lines.append(
            f"| {r['name']} | `{r['config']}` | {r['train_wall_minutes']} min | {r['dev']['f']} | {test['f']} "
            f"| {test['p']} | {test['r']} | {speed} |"
        )
    lines += ["", "Per type (F1, dev / test):", "", "| run | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    for r in results:
        test_types = r["test"]["per_type"] if r["test"] else {}
        cells = [f"{r['dev']['per_type'][label].get('f', 0)} / {test_types.get(label, {}).get('f', '–')}" for label in LABELS]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    lines += ["", "Reference points (not run here): the seed notebook's DistilBERT (GPU) reached test F1 88.7;",
              "spaCy's roberta-base config 91.6.", "", "## Runs", ""]
    for r in results:
        m = r["machine"]
        lines += [
            f"- **{r['name']}** ({r['date']}): `{r['command']}`; {m['cpu']}, {m['cores']} cores, "
            f"{m['memory_gb']} GB, no GPU, torch {m['torch']} ({m['torch_threads']} threads), spaCy {m['spacy']}."
            + (f" {r['note']}" if r.get("note") else ""),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--name")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json, run nothing")
    add_data_args(parser)
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--eval-frequency", type=int, default=0)
    parser.add_argument("--note", default="")
    parser.add_argument("--dev-only", action="store_true", help="an experiment: do not score test")
    # anything else (e.g. --training.dropout 0.2) is passed on to the train command
    args, args.overrides = parser.parse_known_args()
    results_path = HERE / "conll2003.json"

    def read_results() -> List[Dict[str, Any]]:
        return json.loads(results_path.read_text()) if results_path.exists() else []

    if not args.render_only and not (args.config and args.name):
        parser.error("--config and --name are required (or --render-only)")
    results = read_results()
    if not args.render_only:
        result = run(args)
        # read again: other runs or edits may have changed the file during this (long) run
        results = [r for r in read_results() if r["name"] != result["name"]] + [result]
        write_json(results_path, results)
    write_markdown(HERE / "conll2003.md", render(results))
    print(render(results))


if __name__ == "__main__":
    main()
