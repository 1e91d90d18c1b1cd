"""Which reduced precision loses least? Dev F1 and words/s of precision variants of the backbone.

    python benchmarks/precision_variants.py training/benchmarks/trf_minilm_bf16_2800/model-best

All CoNLL-2003 dev documents (spaCy's scorer, spaCy's own tokenization), torch with 2 threads,
in one run. Variants: float32; bfloat16 autocast (``cpu_mixed_precision = true``, on CPUs
with native bfloat16); dynamic int8 of every Linear with per-tensor scales; the same with
per-channel scales (the scheme ``spacy_ner_project.quantize_transformer.v1`` uses); int8 of
the feed-forward layers only; every Linear but the last transformer layer. Writes
benchmarks/precision_variants.md.
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path
from typing import Any, List, Optional

import torch
from torch.ao.quantization import per_channel_dynamic_qconfig

from spacy_ner_project.evaluation.evaluate import read_gold, score_pipeline

from common import HERE, percent_value, relative, write_markdown  # benchmarks/common.py
from corpus import add_data_args, convert_splits  # benchmarks/corpus.py
from inference_speed_levers import load  # benchmarks/inference_speed_levers.py

BF16 = "bf16"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=Path)
    add_data_args(parser)
    args = parser.parse_args()
    dev_path = convert_splits(args.data_dir, args.work_dir)["dev"]
    torch.set_num_threads(2)
    nlp = load(args.pipeline, "float32")
    nlp_bf16 = load(args.pipeline, BF16)
    gold = read_gold(dev_path)
    words = sum(len(d) for d in gold)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    float_module = shim._model
    linear = [n for n, m in float_module.named_modules() if isinstance(m, torch.nn.Linear)]
    variants: List[tuple[str, Optional[Any]]] = [
        ("float32", None),
        ("bfloat16 autocast (cpu_mixed_precision = true)", BF16),
        ("int8, every Linear, per-tensor scales", {torch.nn.Linear}),
        ("int8, every Linear, per-channel scales (default)", {torch.nn.Linear: per_channel_dynamic_qconfig}),
        ("int8, feed-forward Linear only, per-tensor", {n for n in linear if "intermediate" in n or (n.endswith("output.dense") and "attention" not in n)}),
        ("int8, all but the last layer, per-tensor", {n for n in linear if ".layer.5." not in n}),
    ]
    rows = []
    for name, spec in variants:
        shim._model = float_module if spec in (None, BF16) else torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(float_module), spec, dtype=torch.qint8).eval()
        pipeline = nlp_bf16 if spec is BF16 else nlp
        scores = score_pipeline(pipeline, gold, name=name, batch_size=32).scores
        f1, speed = percent_value(scores["ents_f"]), scores["speed"]
        rows.append((name, f1, speed))
        print(f"{name}: F1 {f1:.2f}, {speed:.0f} words/s", flush=True)
    base = rows[0][1]
    lines = [
        "# Precision variants (bfloat16, int8) on CoNLL-2003 dev",
        "",
        f"Pipeline `{relative(args.pipeline)}`; all {len(gold)} dev documents ({words} words), whole documents,",
        f"`nlp.pipe(batch_size=32)`, torch {torch.__version__} with 2 threads, {os.cpu_count()} cores, load average",
        f"at the end {[round(x, 2) for x in os.getloadavg()]}. Written by `benchmarks/precision_variants.py`.",
        "",
        "| variant | dev F1 | change | words/s |",
        "|---|---|---|---|",
    ] + [f"| {n} | {f:.2f} | {f - base:+.2f} | {s:,.0f} |" for n, f, s in rows]
    write_markdown(HERE / "precision_variants.md", "\n".join(lines))


if __name__ == "__main__":
    main()
