"""Does document-level consistency help? Dev F1 of a trained pipeline with and without it.

    python benchmarks/consistency.py training/benchmarks/trf_minilm_bf16_2800/model-best

Predicts CoNLL-2003 dev once, then applies ``doc_consistency`` variants to copies of the
predictions and scores each with spaCy's scorer. Dev only: this is model selection.
Writes ``benchmarks/consistency.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from spacy_ner_project.components.consistency import harmonize
from spacy_ner_project.evaluation.evaluate import predict, read_gold, score_predictions

from common import HERE, percent_value, relative, write_json, write_markdown  # benchmarks/common.py
from corpus import add_data_args, convert_splits  # benchmarks/corpus.py

VARIANTS: Dict[str, Dict[str, Any]] = {
    "none": {},
    "relabel": {"relabel": True, "propagate": False},
    "propagate (min_count 2)": {"relabel": False, "propagate": True, "min_count": 2},
    "relabel + propagate (min_count 2)": {"relabel": True, "propagate": True, "min_count": 2},
    "relabel + propagate (min_count 1)": {"relabel": True, "propagate": True, "min_count": 1},
}


def scores(nlp: Language, predicted: List[Doc], gold: List[Doc]) -> Dict[str, Any]:
    """spaCy's entity scores (the project's evaluation path) in points."""
    prf = score_predictions(nlp, predicted, gold)
    return {"f": percent_value(prf["ents_f"]), "p": percent_value(prf["ents_p"]), "r": percent_value(prf["ents_r"]),
            "per_type": {k: percent_value(v["f"]) for k, v in sorted(prf["ents_per_type"].items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=Path)
    add_data_args(parser)
    args = parser.parse_args()
    dev_path = convert_splits(args.data_dir, args.work_dir)["dev"]
    nlp = spacy.load(args.pipeline)
    gold = read_gold(dev_path)
    predicted, _ = predict(nlp, gold, batch_size=32)
    results = {}
    for name, options in VARIANTS.items():
        docs = [Doc(d.vocab).from_bytes(d.to_bytes()) for d in predicted]
        if options:
            docs = [harmonize(d, **options) for d in docs]
        results[name] = scores(nlp, docs, gold)
    write_json(HERE / "consistency.json", {"pipeline": relative(args.pipeline), "dev": results})
    labels = list(next(iter(results.values()))["per_type"])
    lines = [
        "# Document-level consistency on CoNLL-2003 dev",
        "",
        f"Pipeline `{relative(args.pipeline)}`; predictions made once, then post-processed by `doc_consistency`",
        "(`components/consistency.py`) with each setting; spaCy's scorer, dev only. Written by `benchmarks/consistency.py`.",
        "",
        "| variant | F1 | P | R | " + " | ".join(labels) + " |",
        "|---" * (4 + len(labels)) + "|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['f']} | {r['p']} | {r['r']} | " + " | ".join(str(r["per_type"][k]) for k in labels) + " |")
    write_markdown(HERE / "consistency.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
