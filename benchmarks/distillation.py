"""Benchmark (not a test): the default pipeline's backbone distilled into fewer layers, dev F1.

For each ``--keep`` (the teacher layers a student starts from), in one process:

1. ``distil_to_disk`` (what ``python -m spacy_ner_project distil`` runs) on the texts of
   ``--train`` (no labels used): the student learns the teacher's hidden states; the teacher's
   NER is kept as it is;
2. with ``--fine-tune-steps`` N > 0, the distilled pipeline trained on gold with
   configs/ner_trf_distilled.cfg for N steps (``python -m spacy_ner_project train``, the command);
3. dev F1 of the teacher, each student before and after fine-tuning, and of each ``--compare``
   pipeline (e.g. the 4-layer option trained from scratch), through the project's evaluation path
   (the F1 of benchmarks/inference_speed.md: the pipelines tokenize the CoNLL dev texts themselves).

Outputs go to ``--work`` (a pipeline folder per keep); an existing one is reused with
``--reuse`` (its own meta.json says how it was made). Writes ``<output>.json`` and ``<output>.md``::

    python benchmarks/distillation.py --teacher training/benchmarks/trf_sentwin_2800/model-best \\
        --keep 0,2,4,5 --keep 0,1,2,3,5 --fine-tune-steps 1000 \\
        --compare "4 layers from scratch (2,800 steps)" training/sa/trf4_2800/model-best
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import spacy
import torch

from spacy_ner_project.conll import read_conll
from spacy_ner_project.training.distil import DistilSettings, distil_to_disk

from common import ROOT, machine, relative, write_json, write_markdown  # benchmarks/common.py
from inference_speed import ents_f  # benchmarks/inference_speed.py

CONLL = ROOT.parent / "shared" / "conll2003"
FINE_TUNE_CONFIG = ROOT / "configs" / "ner_trf_distilled.cfg"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="trained transformer pipeline")
    parser.add_argument("--train", type=Path, default=ROOT / "training" / "benchmarks" / "corpus" / "train.spacy",
                        help="DocBin whose texts the student learns on (benchmarks/conll2003.py writes it)")
    parser.add_argument("--dev", type=Path, default=ROOT / "training" / "benchmarks" / "corpus" / "dev.spacy",
                        help="DocBin for fine-tuning's model selection")
    parser.add_argument("--f1-data", type=Path, default=CONLL / "dev.txt", help="CoNLL file scored")
    parser.add_argument("--keep", action="append", required=True, help="teacher layers to keep, e.g. 0,2,4,5 (repeatable)")
    parser.add_argument("--epochs", type=int, default=DistilSettings().epochs)
    parser.add_argument("--fine-tune-steps", type=int, default=0, help="gold fine-tuning steps after distillation (0: none)")
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("LABEL", "PATH"),
                        help="another pipeline to score beside them (repeatable)")
    parser.add_argument("--work", type=Path, default=ROOT / "training" / "distil")
    parser.add_argument("--reuse", action="store_true", help="reuse a pipeline folder that exists instead of making it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "distillation")
    parser.add_argument("--render-only", action="store_true", help="write <output>.md again from <output>.json")
    return parser.parse_args(argv)


def score(path: Path, gold: list, *, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    return ents_f(spacy.load(path), gold, batch_size=64)


def meta(path: Path) -> dict[str, Any]:
    return json.loads((path / "meta.json").read_text())


def fine_tune(distilled: Path, output: Path, *, train: Path, dev: Path, steps: int) -> float:
    """Train ``distilled`` on gold with configs/ner_trf_distilled.cfg (the project's train
    command); seconds taken."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "spacy_ner_project", "train", str(FINE_TUNE_CONFIG), str(output),
               "--train", str(train), "--dev", str(dev), "--max-steps", str(steps),
               "--eval-frequency", str(max(1, steps // 5)), "--paths.distilled", str(distilled)]
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.render_only:
        write_markdown(args.output.with_suffix(".md"), markdown(json.loads(args.output.with_suffix(".json").read_text())))
        return
    gold = read_conll(args.f1_data).documents
    teacher_f1 = score(args.teacher, gold, threads=args.threads)
    print(f"teacher: {teacher_f1['ents_f']:.2f}", flush=True)
    report: dict[str, Any] = {
        "argv": argv,
        "machine": machine("torch", "spacy-transformers", "transformers"),
        "teacher": {"path": relative(args.teacher), **teacher_f1},
        "f1_data": relative(args.f1_data),
        "students": [],
        "compare": [],
    }
    for keep in args.keep:
        layers = tuple(int(part) for part in keep.split(","))
        folder = args.work / f"keep_{'_'.join(map(str, layers))}"
        row: dict[str, Any] = {"keep": list(layers), "path": relative(folder)}
        if not (args.reuse and (folder / "config.cfg").exists()):
            outcome = distil_to_disk(str(args.teacher), folder, docs=args.train,
                                     settings=DistilSettings(keep=layers, epochs=args.epochs))
            row["distil_seconds"] = round(outcome.seconds)
        row["distillation"] = meta(folder).get("distillation")
        row["distilled"] = score(folder, gold, threads=args.threads)
        print(f"keep {keep}: distilled {row['distilled']['ents_f']:.2f}", flush=True)
        if args.fine_tune_steps:
            tuned = args.work / f"{folder.name}_ft{args.fine_tune_steps}"
            if not (args.reuse and (tuned / "model-best" / "config.cfg").exists()):
                row["fine_tune_seconds"] = round(fine_tune(folder, tuned, train=args.train, dev=args.dev,
                                                           steps=args.fine_tune_steps))
            row["fine_tuned"] = {"path": relative(tuned / "model-best"), "steps": args.fine_tune_steps,
                                 **score(tuned / "model-best", gold, threads=args.threads)}
            print(f"keep {keep}: fine-tuned {row['fine_tuned']['ents_f']:.2f}", flush=True)
        report["students"].append(row)
    for label, path in args.compare:
        report["compare"].append({"label": label, "path": relative(path), **score(Path(path), gold, threads=args.threads)})
    write_json(args.output.with_suffix(".json"), report)
    write_markdown(args.output.with_suffix(".md"), markdown(report))
    print(f"Wrote {args.output.with_suffix('.md')}")


def markdown(report: dict[str, Any]) -> str:
    m, teacher = report["machine"], report["teacher"]
    base = teacher["ents_f"]
    teacher_layers = next((row["distillation"]["teacher_layers"] for row in report["students"] if row.get("distillation")), "")
    lines = [
        "# Distilling the default pipeline's backbone into fewer layers",
        "",
        f"Written by `{shlex.join(['python', 'benchmarks/distillation.py', *report['argv']])}`; do not edit by hand "
        "(`--render-only` rewrites it from the .json).",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} CPUs, torch {m['torch']}, spacy-transformers {m['spacy-transformers']}, "
        f"transformers {m['transformers']}.",
        f"- Teacher: `{teacher['path']}`. Dev F1 on `{report['f1_data']}` through the project's evaluation path "
        "(the pipeline tokenizes the dev texts; spaCy's scorer, entity level).",
        "- *distilled*: `python -m spacy_ner_project distil` (spacy_ner_project/training/distil.py): the student "
        "starts from the teacher layers kept and learns the teacher's hidden states (each kept layer's output, the "
        "last layer the teacher's last) on the windows of the training texts, no labels; the teacher's NER as it is. "
        "*fine-tuned*: then trained on gold with configs/ner_trf_distilled.cfg.",
        "",
        "| pipeline | layers | dev ents_p | dev ents_r | dev ents_f | vs teacher | made in |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| teacher | {teacher_layers} | {teacher['ents_p']:.2f} | {teacher['ents_r']:.2f} | {base:.2f} | | |",
    ]
    for row in report["students"]:
        info = row.get("distillation") or {}
        layers = len(row["keep"])
        losses = info.get("epoch_losses") or []
        made = (f"{info.get('epochs')} epochs on {info.get('windows')} windows"
                + (f", {row['distil_seconds'] / 60:.0f} min" if "distil_seconds" in row else "")
                + (f"; loss {losses[0]:.3f} → {losses[-1]:.3f}" if losses else ""))
        d = row["distilled"]
        lines.append(f"| distilled, teacher layers {','.join(map(str, row['keep']))} (`{row['path']}`) | {layers} | "
                     f"{d['ents_p']:.2f} | {d['ents_r']:.2f} | {d['ents_f']:.2f} | {d['ents_f'] - base:+.2f} | {made} |")
        if "fine_tuned" in row:
            t = row["fine_tuned"]
            took = f", {row['fine_tune_seconds'] / 60:.0f} min" if "fine_tune_seconds" in row else ""
            lines.append(f"| the same, fine-tuned (`{t['path']}`) | {layers} | {t['ents_p']:.2f} | {t['ents_r']:.2f} | "
                         f"{t['ents_f']:.2f} | {t['ents_f'] - base:+.2f} | {t['steps']} steps on gold{took} |")
    for row in report["compare"]:
        lines.append(f"| {row['label']} (`{row['path']}`) | | {row['ents_p']:.2f} | {row['ents_r']:.2f} | "
                     f"{row['ents_f']:.2f} | {row['ents_f'] - base:+.2f} | |")
    notes = [f"- `{row['path']}`: {row['distillation']['note']}" for row in report["students"]
             if (row.get("distillation") or {}).get("note")]
    if notes:
        lines += ["", "Notes on how a pipeline was made (from its meta.json):", "", *notes]
    return "\n".join(lines + [""])


if __name__ == "__main__":
    main()
