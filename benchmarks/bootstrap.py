"""The bootstrap workflow's figures (``python -m spacy project run bootstrap``) as a benchmark file:
reads the reports the workflow wrote (metrics/bootstrap/{dev,test}, reports/bootstrap/dev_sents,
corpus/bootstrap/silver.spacy against corpus/bootstrap/gold_n.spacy) and writes
benchmarks/bootstrap.json and benchmarks/bootstrap.md.

    python benchmarks/bootstrap.py --note "N = 200, gemma3-270m, four few-shot sentences, no schema"
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict

from common import HERE, ROOT, machine, percent_value, write_json, write_markdown  # benchmarks/common.py
from label_noise import measure_mix  # benchmarks/label_noise.py

NAMES = {"silver": "trained on the LLM's labels (silver)", "gold_n": "trained on gold labels of the same sentences",
         "gold_all": "trained on all gold train", "llm": "the LLM itself"}


def scores(path: Path) -> Dict[str, Any]:
    metrics = json.loads(path.read_text())
    found = {}
    for name, p in metrics["pipelines"].items():
        found[name] = {"f": percent_value(p["ents_f"]), "p": percent_value(p["ents_p"]), "r": percent_value(p["ents_r"]),
                       "overlap_f": percent_value(p.get("fuzzy_ents_overlap_f", 0.0)),
                       "per_type": {k: percent_value(v["f"]) for k, v in sorted((p.get("ents_per_type") or {}).items())}}
    return {"n_docs": metrics["n_docs"], "unit": metrics["unit"], "pipelines": found, "llm": metrics.get("llm")}


def render(data: Dict[str, Any]) -> str:
    dev, test, side = data["dev"], data["test"], data["dev_sents"]
    lines = ["# LLM bootstrapping: a pipeline trained on an LLM's labels", "",
             "Written by `benchmarks/bootstrap.py` from the reports of `python -m spacy project run bootstrap`",
             f"(`{data['command']}`). {data['note']}", "",
             f"Entity-level F1 (spaCy's scorer), the same config (`{data['config']}`, {data['max_steps']} steps, checkpoint chosen on gold dev):", "",
             "| pipeline | dev F1 (all) | test F1 (all) | test PER / ORG / LOC / MISC | first 100 dev sentences: strict / overlap F1 |",
             "|---|---|---|---|---|"]
    for name in ("silver", "gold_n", "gold_all", "llm"):
        d, t, s = dev["pipelines"].get(name), test["pipelines"].get(name), side["pipelines"].get(name)
        per_type = " / ".join(str(t["per_type"].get(label, "–")) for label in ("PER", "ORG", "LOC", "MISC")) if t else "–"
        lines.append(f"| {NAMES[name]} | {d['f'] if d else '– (not run on all of dev)'} | {t['f'] if t else '–'} | {per_type} | {s['f']} / {s['overlap_f']} |")
    mix = data["mix"]
    counts = mix["counts"]
    gold_total = sum(counts[c] for c in ("correct", "missed", "wrong_type", "wrong_boundary", "wrong_type_and_boundary"))
    lines += ["", f"The LLM's labels on the {mix['n_texts']} training sentences against their gold (the report's classifier):",
              f"{counts['correct']} of {gold_total} gold entities right ({100 * counts['correct'] / gold_total:.0f}%); "
              f"missed {counts['missed']}, wrong type {counts['wrong_type']}, wrong boundary {counts['wrong_boundary']}, "
              f"wrong type and boundary {counts['wrong_type_and_boundary']}, spurious {counts['spurious']}. "
              "What such mistakes cost at lower rates: [label_noise.md](label_noise.md).", ""]
    llm = side.get("llm") or {}
    for block in llm.values():
        lines.append(f"The LLM on the first 100 dev sentences: {block.get('model_stats')}, {block.get('docs_per_second')} sentences/s.")
    m = data["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, no GPU; {data['date']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--command", default="python -m spacy project run bootstrap .")
    parser.add_argument("--config", default="configs/ner_cnn.cfg")
    parser.add_argument("--max-steps", type=int, default=2800)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    p = args.project
    data = {
        "command": args.command, "config": args.config, "max_steps": args.max_steps, "note": args.note,
        "dev": scores(p / "metrics" / "bootstrap" / "dev" / "metrics.json"),
        "test": scores(p / "metrics" / "bootstrap" / "test" / "metrics.json"),
        "dev_sents": scores(p / "reports" / "bootstrap" / "dev_sents" / "metrics.json"),
        "mix": measure_mix(p / "corpus" / "bootstrap" / "silver.spacy", p / "corpus" / "bootstrap" / "gold_n.spacy"),
        "machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    write_json(HERE / "bootstrap.json", data)
    write_markdown(HERE / "bootstrap.md", render(data))
    print(render(data))


if __name__ == "__main__":
    main()
