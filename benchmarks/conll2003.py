"""Full CoNLL-2003 benchmark: train a config on this machine, score dev and test, time inference.

    python benchmarks/conll2003.py --config configs/ner_trf.cfg --name trf_minilm --max-steps 1200
    python benchmarks/conll2003.py --config configs/ner_cnn.cfg --name cnn --max-steps 4000

Protocols: ``train`` (the headline: trained on train, the checkpoint with the best dev F1
kept, test scored once) and ``train+dev`` (many papers' protocol, always a separate row: the
step count fixed from a dev-selected run, retrained on train and dev together, the last
checkpoint scored on test; its dev figures are not held out and are not reported).
An experiment runs with ``--dev-only``; ``--score-test --name RUN`` scores test once for the
run finally chosen on dev.

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
from spacy.tokens import DocBin

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


def train_and_dev(corpus: Dict[str, Path]) -> Path:
    """One DocBin holding the train and dev documents (the train command takes a file)."""
    merged = corpus["train"].parent / "train+dev.spacy"
    if not merged.exists():
        doc_bin = DocBin(store_user_data=True).from_disk(corpus["train"])
        doc_bin.merge(DocBin(store_user_data=True).from_disk(corpus["dev"]))
        doc_bin.to_disk(merged)
    return merged


def dev_by_step(log_lines: List[str]) -> Dict[int, float]:
    """``{step: dev ENTS_F}`` from spaCy's console logger table (columns: E, #, losses...,
    ENTS_F, ENTS_P, ENTS_R, SCORE)."""
    curve = {}
    for line in log_lines:
        cols = line.split()
        if len(cols) >= 7 and cols[0].isdigit() and cols[1].isdigit():
            try:
                curve[int(cols[1])] = float(cols[-4])
            except ValueError:
                continue
    return curve


def train(cmd: List[str]) -> List[str]:
    """Run the train command, echoing its output; return the output's lines."""
    lines = []
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    if proc.returncode:
        raise SystemExit(f"training failed (exit {proc.returncode}): {' '.join(cmd)}")
    return lines


def run(args: argparse.Namespace) -> Dict[str, Any]:
    corpus = convert_splits(args.data_dir, args.work_dir)
    output = args.work_dir / args.name
    train_data = train_and_dev(corpus) if args.protocol == "train+dev" else corpus["train"]
    cmd = [
        sys.executable, "-m", "spacy_ner_project", "train", str(args.config), str(output),
        "--train", str(train_data), "--dev", str(corpus["dev"]),
    ]
    if args.max_steps:
        cmd += ["--max-steps", str(args.max_steps)]
    if args.eval_frequency:
        cmd += ["--eval-frequency", str(args.eval_frequency)]
    cmd += args.overrides
    start = time.perf_counter()
    log = train(cmd)
    train_seconds = time.perf_counter() - start
    held_out_dev = args.protocol == "train"
    model = output / ("model-best" if held_out_dev else "model-last")
    nlp = spacy.load(model)
    meta = json.loads((model / "meta.json").read_text())
    return {
        "name": args.name,
        "protocol": args.protocol,
        "config": relative(args.config),
        "command": " ".join(["python", "-m", "spacy_ner_project", *cmd[3:]]).replace(f"{ROOT}/", ""),
        "train_wall_minutes": round(train_seconds / 60, 1),
        "best_step_dev_f": percent_value(meta["performance"]["ents_f"]) if held_out_dev else None,
        "dev_by_step": dev_by_step(log) if held_out_dev else {},
        "dev": score(nlp, corpus["dev"]) if held_out_dev else None,
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
        dev_f = r["dev"]["f"] if r["dev"] else "– (trained on dev)"
        lines.append(
            f"| {label(r)} | `{r['config']}` | {r['train_wall_minutes']} min | {dev_f} | {test['f']} "
            f"| {test['p']} | {test['r']} | {speed} |"
        )
    lines += ["", "Per type (F1, dev / test):", "", "| run | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    for r in results:
        test_types = r["test"]["per_type"] if r["test"] else {}
        dev_types = r["dev"]["per_type"] if r["dev"] else {}
        cells = [f"{dev_types.get(t, {}).get('f', '–')} / {test_types.get(t, {}).get('f', '–')}" for t in LABELS]
        lines.append(f"| {label(r)} | " + " | ".join(cells) + " |")
    lines += ["", "Reference points (not run here): the seed notebook's DistilBERT (GPU) reached test F1 88.7;",
              "spaCy's roberta-base config 91.6.", "", "## Runs", ""]
    for r in results:
        m = r["machine"]
        curve = r.get("dev_by_step") or {}
        lines += [
            f"- **{label(r)}** ({r['date']}): `{r['command']}`; {m['cpu']}, {m['cores']} cores, "
            f"{m['memory_gb']} GB, no GPU, torch {m['torch']} ({m['torch_threads']} threads), spaCy {m['spacy']}."
            + (f" {r['note']}" if r.get("note") else "")
            + (" Dev F1 by step: " + ", ".join(f"{f:.2f} ({step})" for step, f in curve.items() if int(step)) + "."
               if curve else ""),
        ]
    return "\n".join(lines) + "\n"


def label(result: Dict[str, Any]) -> str:
    """The run's name; train+dev rows say so (never the headline figure)."""
    protocol = result.get("protocol", "train")
    return result["name"] if protocol == "train" else f"{result['name']} ({protocol} protocol, not comparable)"


def score_test(args: argparse.Namespace, result: Dict[str, Any]) -> Dict[str, Any]:
    """Score test once for a run chosen on dev."""
    if result.get("test"):
        raise SystemExit(f"{result['name']} has a test score already; test is scored once.")
    corpus = convert_splits(args.data_dir, args.work_dir)
    model = args.work_dir / result["name"] / "model-best"
    if not model.is_dir():
        raise SystemExit(f"{model}: not found; --score-test scores a run trained under --work-dir")
    nlp = spacy.load(model)
    return {**result, "test": score(nlp, corpus["test"])}


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
    parser.add_argument("--protocol", choices=("train", "train+dev"), default="train",
                        help="train+dev: retrain on both with the step count of a dev-selected run (a separate row)")
    parser.add_argument("--score-test", action="store_true", help="score test once for the existing run --name")
    # anything else (e.g. --training.dropout 0.2) is passed on to the train command
    args, args.overrides = parser.parse_known_args()
    results_path = HERE / "conll2003.json"

    def read_results() -> List[Dict[str, Any]]:
        return json.loads(results_path.read_text()) if results_path.exists() else []

    if args.score_test:
        if not args.name:
            parser.error("--score-test needs --name")
        results = read_results()
        found = [r for r in results if r["name"] == args.name]
        if not found:
            parser.error(f"no run named {args.name!r} in {results_path}")
        scored = score_test(args, found[0])
        results = [scored if r["name"] == args.name else r for r in read_results()]
        write_json(results_path, results)
    elif not args.render_only and not (args.config and args.name):
        parser.error("--config and --name are required (or --render-only)")
    results = read_results()
    if not args.render_only and not args.score_test:
        result = run(args)
        # read again: other runs or edits may have changed the file during this (long) run
        results = [r for r in read_results() if r["name"] != result["name"]] + [result]
        write_json(results_path, results)
    write_markdown(HERE / "conll2003.md", render(results))
    print(render(results))


if __name__ == "__main__":
    main()
