"""The price of an annotator's mistakes: train one config on CoNLL-2003 train with its gold
labels corrupted on purpose (spacy_ner_project/noise.py), one kind of mistake at a time and as
the mix an LLM annotator makes, at 0, 10, 25 and 50%, and score test (and dev) each time.

    python benchmarks/label_noise.py --max-steps 1000                     # every kind x level
    python benchmarks/label_noise.py --mix-silver corpus/bootstrap/silver.spacy \
        --mix-gold corpus/bootstrap/gold.spacy --mix-source "gemma3-270m, 200 train sentences"
    python benchmarks/label_noise.py --render-only

Every run trains the same config (``configs/ner_cnn.cfg`` by default: fast) for the same steps,
selects the checkpoint on gold dev and scores gold test once. The mix is measured by the
report's own classifier (spacy_ner_project/scoring/diff.py) from an annotator's output on train
sentences against their gold labels (the bootstrap workflow writes both), by character offsets.
Results go to benchmarks/label_noise.json (one entry per kind and level, kept across runs: a
run already there is skipped, so a stopped study resumes) and benchmarks/label_noise.md with
benchmarks/label_noise.png. CoNLL-2003 is read by path (its licence forbids copying it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
from spacy.tokens import DocBin

from common import HERE, ROOT, machine, percent_value, relative, write_json, write_markdown  # benchmarks/common.py
from corpus import add_data_args, convert_splits  # benchmarks/corpus.py
from spacy_ner_project.evaluation.evaluate import read_gold, score_pipeline
from spacy_ner_project.noise import ENTITY_KINDS, KINDS, corrupt_docs, mix_from_differences
from spacy_ner_project.scoring.diff import category_counts, differences
from spacy_ner_project.scoring.matching import Entity

LABELS = ("PER", "ORG", "LOC", "MISC")
LEVELS = (0.0, 0.1, 0.25, 0.5)
STUDY_KINDS = ("drop", "type", "boundary", "spurious", "mix")
RESULTS = HERE / "label_noise.json"


def read_results() -> Dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": [], "mix": None}


def measure_mix(silver: Path, gold: Path) -> Dict[str, Any]:
    """The annotator's mistakes on the same texts: category counts and the mix of kinds."""
    vocab = spacy.blank("en").vocab
    gold_docs = {doc.text: doc for doc in DocBin().from_disk(gold).get_docs(vocab)}
    counts: Dict[str, int] = {}
    n_texts = 0
    for doc in DocBin().from_disk(silver).get_docs(vocab):
        reference = gold_docs.get(doc.text)
        if reference is None:
            continue
        n_texts += 1
        as_entities = lambda d: [Entity(e.label_, e.start_char, e.end_char) for e in d.ents]  # noqa: E731
        for category, n in category_counts(differences(as_entities(reference), as_entities(doc))).items():
            counts[category] = counts.get(category, 0) + n
    if not n_texts:
        raise SystemExit(f"{silver} and {gold} share no text; give the bootstrap workflow's silver and gold DocBins")
    return {"counts": counts, "mix": mix_from_differences(counts), "n_texts": n_texts}


def run_name(kind: str, level: float) -> str:
    return "none_0" if level == 0 else f"{kind}_{round(level * 100)}"


def train(config: Path, train_path: Path, dev: Path, output: Path, max_steps: int) -> float:
    cmd = [sys.executable, "-m", "spacy_ner_project", "train", str(config), str(output), "--train", str(train_path),
           "--dev", str(dev), "--max-steps", str(max_steps), "--eval-frequency", str(max(1, max_steps // 4))]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def f1(nlp: Any, path: Path) -> Dict[str, Any]:
    scores = score_pipeline(nlp, read_gold(path), name=path.stem, batch_size=64).scores
    per_type = {label: percent_value(scores["ents_per_type"].get(label, {}).get("f", 0.0)) for label in LABELS}
    return {"f": percent_value(scores["ents_f"]), "p": percent_value(scores["ents_p"]), "r": percent_value(scores["ents_r"]), "per_type": per_type}


def one_run(args: argparse.Namespace, corpus: Dict[str, Path], kind: str, level: float, mix: Optional[Dict[str, float]]) -> Dict[str, Any]:
    name = run_name(kind, level)
    folder = args.work_dir / "label_noise" / name
    gold_train = list(DocBin(store_user_data=True).from_disk(corpus["train"]).get_docs(spacy.blank("en").vocab))
    if kind == "mix":
        noisy, counts = corrupt_docs(gold_train, mix=mix, rate=level, labels=LABELS, seed=args.seed)
    else:
        noisy, counts = corrupt_docs(gold_train, kind=kind if level else "drop", rate=level, labels=LABELS, seed=args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    DocBin(docs=noisy, store_user_data=True).to_disk(folder / "train.spacy")
    seconds = train(args.config, folder / "train.spacy", corpus["dev"], folder / "model", args.max_steps)
    nlp = spacy.load(folder / "model" / "model-best")
    return {
        "name": name, "kind": kind if level else "none", "level": level,
        "config": relative(args.config), "max_steps": args.max_steps, "seed": args.seed,
        "noise": {"applied": dict(counts.applied), "no_room": dict(counts.no_room), "gold_entities": counts.n_gold},
        "train_minutes": round(seconds / 60, 1),
        "dev": f1(nlp, corpus["dev"]), "test": f1(nlp, corpus["test"]),
        "machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def figure(data: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {r["name"]: r for r in data["runs"]}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for kind in STUDY_KINDS:
        points = [(level * 100, runs[run_name(kind, level)]["test"]["f"]) for level in LEVELS if run_name(kind, level) in runs]
        if len(points) > 1:
            ax.plot(*zip(*points), marker="o", label="LLM mix" if kind == "mix" else kind)
    for reference in data.get("references", []):
        ax.axhline(reference["f"], linestyle="--", color="grey", linewidth=1)
        ax.text(1, reference["f"] + 0.8, reference["label"], fontsize=8, color="grey")
    ax.set_xlabel("noise level (% of gold entities)")
    ax.set_ylabel("test F1")
    ax.set_xticks([level * 100 for level in LEVELS])
    ax.grid(alpha=0.3)
    ax.legend(title="mistake")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(data: Dict[str, Any]) -> str:
    runs = {r["name"]: r for r in data["runs"]}
    any_run = next(iter(runs.values()), None)
    lines = ["# Label noise: what an annotator's mistakes cost a trained pipeline", "",
             "Written by `benchmarks/label_noise.py` (the JSON beside this file has every figure). Gold CoNLL-2003",
             "train labels corrupted on purpose (`spacy_ner_project/noise.py`), one kind of mistake at a time, then",
             "the same config trained for the same steps; checkpoint chosen on gold dev, gold test scored once.", ""]
    if any_run:
        lines += [f"Config `{any_run['config']}`, {any_run['max_steps']} steps, noise seed {any_run['seed']}.", ""]
    lines += ["Test F1 by kind and level:", "", "| mistake | " + " | ".join(f"{round(l * 100)}%" for l in LEVELS) + " |",
              "|---" * (len(LEVELS) + 1) + "|"]
    for kind in STUDY_KINDS:
        cells = [str(runs[run_name(kind, level)]["test"]["f"]) if run_name(kind, level) in runs else "–" for level in LEVELS]
        lines.append(f"| {'LLM mix' if kind == 'mix' else kind} | " + " | ".join(cells) + " |")
    lines += ["", "![test F1 against noise](label_noise.png)", ""]
    if data.get("mix"):
        m = data["mix"]
        shares = ", ".join(f"{kind} {m['mix'][kind]:.0%}" for kind in KINDS)
        lines += [f"The LLM mix, measured from {m['source']} ({m['n_texts']} texts, the report's classifier against gold):",
                  f"{shares}. Category counts: {json.dumps(m['counts'])}. Level r of the mix hits each gold entity",
                  "with probability r, the kind drawn by these shares (spurious spans added at r × its share).", ""]
    for reference in data.get("references", []):
        lines.append(f"Reference: {reference['label']}: F1 {reference['f']} ({reference['source']}).")
    if data.get("findings"):
        lines += ["", "## Findings", "", *data["findings"]]
    lines += ["", "## Runs", ""]
    for r in data["runs"]:
        m = r["machine"]
        lines.append(f"- **{r['name']}** ({r['date']}): dev F1 {r['dev']['f']}, test F1 {r['test']['f']} (P {r['test']['p']} / R {r['test']['r']});"
                     f" noise applied {json.dumps(r['noise']['applied'])} of {r['noise']['gold_entities']} gold entities"
                     f" (no room: {json.dumps(r['noise']['no_room'])}); trained in {r['train_minutes']} min on {m['cpu']}, {m['cores']} cores,"
                     f" load {m['load_average']}.")
    return "\n".join(lines) + "\n"


def write(data: Dict[str, Any]) -> None:
    write_json(RESULTS, data)
    write_markdown(HERE / "label_noise.md", render(data))
    if data["runs"]:
        figure(data, HERE / "label_noise.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(parser)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ner_cnn.cfg")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(STUDY_KINDS))
    parser.add_argument("--levels", default=",".join(str(level) for level in LEVELS))
    parser.add_argument("--mix-silver", type=Path, help="an annotator's silver DocBin (the bootstrap workflow's)")
    parser.add_argument("--mix-gold", type=Path, help="the same texts with gold labels")
    parser.add_argument("--mix-source", default="", help="what made the silver data, for the report")
    parser.add_argument("--reference", action="append", default=[], metavar="LABEL=F1=SOURCE",
                        help="a horizontal line in the figure, e.g. 'the LLM itself (dev 100)=18.24=benchmarks/llm_local.md'")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    data = read_results()
    if args.mix_silver and args.mix_gold:
        data["mix"] = {**measure_mix(args.mix_silver, args.mix_gold), "source": args.mix_source or relative(args.mix_silver)}
        write(data)
    for spec in args.reference:
        label, f, source = spec.split("=", 2)
        data["references"] = [r for r in data.get("references", []) if r["label"] != label] + [{"label": label, "f": float(f), "source": source}]
    if args.render_only:
        write(data)
        print(render(data))
        return
    corpus = convert_splits(args.data_dir, args.work_dir)
    for kind in args.kinds.split(","):
        for level in (float(x) for x in args.levels.split(",")):
            name = run_name(kind, level)
            if any(r["name"] == name for r in read_results()["runs"]):
                continue
            if kind == "mix" and level and not data.get("mix"):
                print(f"skipping {name}: no measured mix yet (--mix-silver, --mix-gold)")
                continue
            result = one_run(args, corpus, kind, level, (data.get("mix") or {}).get("mix"))
            data = read_results() | {k: v for k, v in data.items() if k != "runs"}
            data["runs"] = [r for r in read_results()["runs"] if r["name"] != name] + [result]
            write(data)
            print(f"{name}: test F1 {result['test']['f']} ({result['train_minutes']} min)", flush=True)
    write(data)
    print(render(data))


if __name__ == "__main__":
    main()
