"""Benchmark (not a test): CPU words/second of our NER pipeline vs Hugging Face, and levers.

In one process, on the same CoNLL-2003 text (read by path, never copied into the repo):

* ours: a trained spaCy pipeline (``--pipeline``), ``nlp.pipe`` over the text as strings
  (spaCy tokenises them), batched; sentence inputs and whole ``-DOCSTART-`` document inputs;
* Hugging Face: ``transformers.pipeline("token-classification")`` on
  ``AutoModelForTokenClassification`` built from the same backbone (the embedded
  all-MiniLM-L6-v2, ``num_labels=9``, untrained head: timing only) over the same sentences
  as strings, at its default batch size 1 and at ``--hf-batch-size``;
* levers for ours, one at a time from the default setting: ``nlp.pipe`` batch_size, the
  transformer's ``max_batch_items``, ``torch.set_num_threads``, ``torch.inference_mode``,
  sentence vs document inputs, bfloat16 autocast of the backbone on CPU
  (``cpu_mixed_precision = true`` in ``spacy_ner_project.TransformerModel.v1``), dynamic
  int8 quantisation of the backbone's ``nn.Linear`` layers
  (``spacy_ner_project.quantize_transformer.v1``), each with the best levers;
* the F1 change of bfloat16 and of int8 against float32 (spaCy's scorer, entity level) on
  ``--f1-data`` (CoNLL dev).  A pipeline trained with ``cpu_mixed_precision = true`` is
  loaded with it switched off for the float32 rows, and on for the bfloat16 rows.

Unit: words = CoNLL tokens of the input (not spaCy or word-piece tokens). Each setting is
warmed up once on a small slice, then timed ``--repeats`` times; the median is reported.
Writes ``<output>.json`` and ``<output>.md``. Usage::

    python benchmarks/inference_speed.py --pipeline training/benchmarks/trf_minilm_cased_doc/model-best \\
        [--text ../shared/conll2003/test.txt] [--f1-data ../shared/conll2003/dev.txt] \\
        [--max-words 8000] [--repeats 3] [--threads 2]

``--pipeline`` may be omitted: the trained run under ``training/benchmarks/*/model-best`` with
the highest dev ``ents_f`` in its meta.json is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import spacy
import torch
from spacy.language import Language
from spacy_ner_project.components.quantize import linear_layer_counts

from spacy_ner_project.training.backbone import embedded_backbone_path
from spacy_ner_project.conll import ConllDocument, read_conll, to_doc
from spacy_ner_project.evaluation.evaluate import score_pipeline

from common import ROOT, machine, percent_value, relative, write_json, write_markdown  # benchmarks/common.py

CONLL = ROOT.parent / "shared" / "conll2003"
QUANTIZE = {"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.quantize_transformer.v1"}}}
PRECISIONS = ("float32", "bf16", "int8")
GOAL_RATIO = 2.0
GOAL_WPS = 5000.0
GOAL_F1_LOSS = 0.3  # points


@dataclass
class Inputs:
    sentences: list[str]
    documents: list[str]
    words: int


@dataclass
class Setting:
    """One timed configuration of our pipeline (levers changed from the default)."""

    name: str
    inputs: str = "sentences"  # or "documents"
    batch_size: int = 64
    max_batch_items: int = 512  # configs/ner_trf.cfg
    threads: int = 2
    inference_mode: bool = False
    precision: str = "float32"  # or "bf16", "int8"


def best_run(runs_dir: Path) -> Path:
    """The ``model-best`` under ``runs_dir/trf*`` with the highest dev ents_f."""
    scored = []
    for meta_path in runs_dir.glob("trf*/model-best/meta.json"):
        performance = json.loads(meta_path.read_text()).get("performance", {})
        scored.append((performance.get("ents_f") or 0.0, meta_path.parent))
    if not scored:
        raise SystemExit(f"No {runs_dir}/trf*/model-best found: pass --pipeline PATH.")
    return max(scored)[1]


def select_documents(documents: Sequence[ConllDocument], max_words: int) -> list[ConllDocument]:
    """Whole documents from the start of the file until ``max_words`` CoNLL tokens (0: all)."""
    chosen: list[ConllDocument] = []
    words = 0
    for document in documents:
        if max_words and words >= max_words:
            break
        chosen.append(document)
        words += sum(len(sentence.words) for sentence in document.sentences)
    return chosen


def build_inputs(documents: Sequence[ConllDocument]) -> Inputs:
    sentences = [" ".join(s.words) for d in documents for s in d.sentences]
    texts = [" ".join(" ".join(s.words) for s in d.sentences) for d in documents]
    words = sum(len(s.words) for d in documents for s in d.sentences)
    return Inputs(sentences=sentences, documents=texts, words=words)


def time_words_per_second(run: Callable[[Sequence[str]], Any], texts: Sequence[str], words: int,
                          *, warmup: Sequence[str], repeats: int) -> dict[str, Any]:
    """Median words/s of ``run(texts)`` over ``repeats`` timed runs after one warm-up."""
    run(warmup)
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        run(texts)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    median_wall = statistics.median(walls)
    return {
        "words_per_s": round(words / median_wall, 1),
        "runs_words_per_s": [round(words / w, 1) for w in walls],
        "median_wall_s": round(median_wall, 3),
        # CPU seconds per wall second of this process: below the thread count = contention
        "cores_used": round(statistics.median(c / w for c, w in zip(cpus, walls)), 2),
    }


def spacy_runner(nlp: Language, setting: Setting) -> Callable[[Sequence[str]], None]:
    def run(texts: Sequence[str]) -> None:
        torch.set_num_threads(setting.threads)
        nlp.get_pipe("transformer").cfg["max_batch_items"] = setting.max_batch_items
        mode = torch.inference_mode() if setting.inference_mode else contextlib.nullcontext()
        with mode:
            for _ in nlp.pipe(texts, batch_size=setting.batch_size):
                pass

    return run


def hf_runner(threads: int, batch_size: int) -> Callable[[Sequence[str]], None]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialised head" warning: expected here
    path = str(embedded_backbone_path())
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=9)
    tagger = pipeline("token-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path),
                      device=-1, batch_size=batch_size)

    def run(texts: Sequence[str]) -> None:
        torch.set_num_threads(threads)
        for _ in tagger(list(texts)):
            pass

    return run


def ents_f(nlp: Language, documents: Sequence[ConllDocument], *, batch_size: int) -> dict[str, float]:
    """spaCy's entity scores (ents_p/r/f, in points) of ``nlp`` on gold CoNLL documents, through
    the project's evaluation path (the pipeline tokenizes the texts itself, like ``evaluate``)."""
    gold = [to_doc(document, nlp.vocab) for document in documents]
    scores = score_pipeline(nlp, gold, name="f1", batch_size=batch_size).scores
    return {key: percent_value(scores[key]) for key in ("ents_p", "ents_r", "ents_f")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, help="trained pipeline (default: best transformer run under --runs)")
    parser.add_argument("--runs", type=Path, default=ROOT / "training" / "benchmarks")
    parser.add_argument("--text", type=Path, default=CONLL / "test.txt", help="CoNLL file whose text is timed")
    parser.add_argument("--f1-data", type=Path, default=CONLL / "dev.txt", help="CoNLL file for the F1 change of bf16 and int8")
    parser.add_argument("--skip-f1", action="store_true", help="no F1 (for an untrained development pipeline)")
    parser.add_argument("--max-words", type=int, default=3000, help="timed words, whole documents (0: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hf-batch-sizes", type=int, nargs="+", default=[8, 32],
                        help="HF pipeline batch sizes (its default, 1, is far slower here)")
    parser.add_argument("--note", default="", help="where the pipeline comes from (printed in the .md)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "inference_speed")
    args = parser.parse_args(argv)

    pipeline_path = args.pipeline or best_run(args.runs)
    documents = select_documents(read_conll(args.text).documents, args.max_words)
    inputs = build_inputs(documents)
    warm = build_inputs(documents[:2])
    report: dict[str, Any] = {
        "machine": machine("torch", "spacy-transformers", "transformers"),
        "pipeline": {"path": relative(pipeline_path), "note": args.note, **_meta(pipeline_path)},
        "input": {"file": relative(args.text), "documents": len(documents), "sentences": len(inputs.sentences),
                  "words": inputs.words, "unit": "words = CoNLL tokens"},
        "repeats": args.repeats,
        "threads": args.threads,
        "results": [],
    }

    def record(name: str, kind: str, settings: dict[str, Any], texts: Sequence[str], warmup: Sequence[str],
               run: Callable[[Sequence[str]], None]) -> dict[str, Any]:
        timing = time_words_per_second(run, texts, inputs.words, warmup=warmup, repeats=args.repeats)
        row = {"name": name, "system": kind, "settings": settings, **timing}
        report["results"].append(row)
        print(f"{name:<44} {row['words_per_s']:>9.1f} words/s  cores used {row['cores_used']}", flush=True)
        return row

    hf_settings = [(b, args.threads) for b in args.hf_batch_sizes] + [(max(args.hf_batch_sizes), 1)]
    for batch_size, threads in hf_settings:
        record(f"HF pipeline, sentences, batch_size={batch_size}, threads={threads}", "hf",
               {"batch_size": batch_size, "threads": threads, "inputs": "sentences"},
               inputs.sentences, warm.sentences, hf_runner(threads, batch_size))

    pipelines = {precision: load(pipeline_path, precision) for precision in PRECISIONS}
    report["int8_linear_layers"] = linear_layer_counts(pipelines["int8"])
    default = Setting("ours, default", threads=args.threads)
    settings = [default] + [replace(default, name=f"ours, {name}", **change) for name, change in [
        ("documents", {"inputs": "documents"}),
        ("batch_size=16", {"batch_size": 16}),
        ("batch_size=256", {"batch_size": 256}),
        ("max_batch_items=128", {"max_batch_items": 128}),
        ("max_batch_items=1024", {"max_batch_items": 1024}),
        ("max_batch_items=4096 (spacy-transformers' default)", {"max_batch_items": 4096}),
        ("documents, max_batch_items=4096", {"inputs": "documents", "max_batch_items": 4096}),
        ("threads=1", {"threads": 1}),
        ("documents, threads=1", {"inputs": "documents", "threads": 1}),
        ("inference_mode", {"inference_mode": True}),
        *[
            (f"{precision}{name}", {"precision": precision, **change})
            for precision in PRECISIONS[1:]
            for name, change in [
                ("", {}),
                (", threads=1", {"threads": 1}),
                (", documents", {"inputs": "documents"}),
                (", documents, threads=1", {"inputs": "documents", "threads": 1}),
            ]
        ],
    ]]
    for setting in settings:
        texts, warmup = ((inputs.documents, warm.documents) if setting.inputs == "documents"
                         else (inputs.sentences, warm.sentences))
        record(setting.name, "ours", {k: v for k, v in vars(setting).items() if k != "name"}, texts, warmup,
               spacy_runner(pipelines[setting.precision], setting))

    if not args.skip_f1:
        gold = read_conll(args.f1_data).documents
        torch.set_num_threads(1)  # scores do not depend on it; fastest on 2 shared cores
        f1: dict[str, Any] = {"data": relative(args.f1_data), "documents": len(gold)}
        for precision, nlp in pipelines.items():
            f1[precision] = ents_f(nlp, gold, batch_size=64)
        f1["delta_ents_f"] = {
            precision: round(f1[precision]["ents_f"] - f1["float32"]["ents_f"], 2) for precision in PRECISIONS[1:]
        }
        report["f1"] = f1
        print(f"F1 change on {args.f1_data.name}: {f1['delta_ents_f']} points", flush=True)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = summarise(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output.with_suffix(".json"), report)
    write_markdown(args.output.with_suffix(".md"), markdown(report, argv if argv is not None else sys.argv[1:]))
    print(f"Wrote {args.output.with_suffix('.json')} and .md")


def load(path: Path, precision: str) -> Language:
    """The pipeline at ``path`` with its backbone in ``precision`` (float32, bf16 or int8)."""
    config: dict[str, Any] = {
        "components": {"transformer": {"model": {"cpu_mixed_precision": precision == "bf16"}}}
    }
    if precision == "int8":
        config.update(QUANTIZE)
    return spacy.load(path, config=config)


def _meta(path: Path) -> dict[str, Any]:
    meta = json.loads((path / "meta.json").read_text())
    return {"pipeline": meta.get("pipeline"), "dev_ents_f": (meta.get("performance") or {}).get("ents_f")}


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    rows = report["results"]
    hf_best = max((r for r in rows if r["system"] == "hf"), key=lambda r: r["words_per_s"])
    ours = [r for r in rows if r["system"] == "ours"]

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        ratio = round(row["words_per_s"] / hf_best["words_per_s"], 2)
        return {"name": row["name"], "words_per_s": row["words_per_s"], "ratio_vs_hf_best": ratio}

    def best(keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return entry(max((r for r in ours if keep(r["settings"])), key=lambda r: r["words_per_s"]))

    summary: dict[str, Any] = {
        "hf_best": {"name": hf_best["name"], "words_per_s": hf_best["words_per_s"]},
        "ours_default": entry(next(r for r in ours if r["name"] == "ours, default")),
        "ours_best_sentences": best(lambda x: x["inputs"] == "sentences"),
        **{f"ours_best_{p}": best(lambda x, p=p: x["precision"] == p) for p in PRECISIONS},
    }
    summary["goals"] = {}
    for precision in PRECISIONS:
        row = summary[f"ours_best_{precision}"]
        summary["goals"][f"ratio >= {GOAL_RATIO} ({precision})"] = row["ratio_vs_hf_best"] >= GOAL_RATIO
        summary["goals"][f">= {GOAL_WPS:.0f} words/s ({precision})"] = row["words_per_s"] >= GOAL_WPS
        if precision != "float32" and "f1" in report:
            loss_ok = report["f1"]["delta_ents_f"][precision] >= -GOAL_F1_LOSS
            summary["goals"][f"{precision} loses <= {GOAL_F1_LOSS} F1 points"] = loss_ok
    return summary


def markdown(report: dict[str, Any], argv: Sequence[str]) -> str:
    m, s, inp, pipe = report["machine"], report["summary"], report["input"], report["pipeline"]
    command = shlex.join(["python", "benchmarks/inference_speed.py", *argv])
    default_wps = s["ours_default"]["words_per_s"]
    cores = statistics.median(row["cores_used"] for row in report["results"])
    machine_line = (
        f"- Machine: {m['cpu']}, {m['cores']} CPUs, Python {m['python']}, torch {m['torch']} "
        f"(quantized engine {m['quantized_engine']}), spaCy {m['spacy']}, spacy-transformers "
        f"{m['spacy-transformers']}, transformers {m['transformers']}; torch.set_num_threads per row."
    )
    contention = (
        "- Contention: the 2 cores were shared with other processes (training runs, test suites); "
        f"load average {m['load_average']} at start, {m['load_average_at_end']} at end "
        "(1/5/15 min). 'cores used' is this process's CPU seconds per wall second: below the "
        f"thread count means it waited for a core; the median over all rows is {cores}. Absolute "
        "figures are pessimistic; ratios measured in the same run are fairer."
    )
    text = (
        f"- Text: `{inp['file']}`, first {inp['documents']} documents = {inp['sentences']} sentences "
        f"= {inp['words']} words. Unit: **words = CoNLL tokens**. Both systems get strings and "
        "tokenise them themselves."
    )
    hf = (
        '- HF: `pipeline("token-classification")` on `AutoModelForTokenClassification` from the '
        "same embedded all-MiniLM-L6-v2 folder (num_labels=9, untrained head: timing only), on "
        "sentence strings (documents exceed its 512-word-piece limit)."
    )
    lines = [
        "# CPU inference speed: our NER pipeline vs Hugging Face token classification",
        "",
        f"Written by `{command}`; do not edit by hand.",
        "",
        machine_line,
        contention,
        f"- Pipeline: `{pipe['path']}` ({pipe['pipeline']}, dev ents_f in its meta.json: {pipe['dev_ents_f']}). "
        + pipe["note"],
        text,
        f"- Each row: one warm-up, then {report['repeats']} timed runs; the median is reported.",
        hf,
        "",
        "## Summary",
        "",
        f"- HF best: {s['hf_best']['words_per_s']:.0f} words/s ({s['hf_best']['name']}).",
    ]
    for key, label in (
        ("ours_default", "Ours, default settings"),
        ("ours_best_sentences", "Ours, best on sentence inputs (like HF)"),
        ("ours_best_float32", "Ours, best float32"),
        ("ours_best_bf16", "Ours, best bfloat16"),
        ("ours_best_int8", "Ours, best int8"),
    ):
        best = s[key]
        lines.append(
            f"- {label}: {best['words_per_s']:.0f} words/s ({best['name']}); "
            f"**{best['ratio_vs_hf_best']}x** HF best."
        )
    if "f1" in report:
        f1 = report["f1"]
        lines.append(
            f"- F1 on `{f1['data']}` ({f1['documents']} documents, spaCy's scorer through `evaluate`'s path, entity "
            f"level): float32 {f1['float32']['ents_f']:.2f}, "
            + ", ".join(
                f"{p} {f1[p]['ents_f']:.2f} (**{f1['delta_ents_f'][p]:+.2f}**)" for p in PRECISIONS[1:]
            )
            + "."
        )
    else:
        lines.append("- F1 change of bf16/int8: not measured in this run (--skip-f1).")
    lines.append(f"- int8 replaces the backbone's linear layers: {report['int8_linear_layers']}.")
    lines += ["", "Goals:", ""]
    lines += [f"- {goal}: {'met' if ok else 'NOT met'}" for goal, ok in s["goals"].items()]
    lines += ["", "## All rows", ""]
    lines += ["| setting | words/s (median) | x our default | runs | cores used |", "|---|---:|---:|---|---:|"]
    for row in report["results"]:
        runs = ", ".join(f"{x:.0f}" for x in row["runs_words_per_s"])
        factor = row["words_per_s"] / default_wps
        lines.append(f"| {row['name']} | {row['words_per_s']:.0f} | {factor:.2f} | {runs} | {row['cores_used']} |")
    lines += [
        "",
        (
            f"Our default: sentence strings, nlp.pipe batch_size={Setting.batch_size}, "
            f"max_batch_items={Setting.max_batch_items}, "
            f"{report['threads']} threads, no inference_mode, float32. Every other row changes the "
            "levers it names; bf16 rows load the pipeline with `cpu_mixed_precision = true` "
            "(components/precision.py), int8 rows quantise the backbone with "
            "`spacy_ner_project.quantize_transformer.v1`."
        ),
        "",
        (
            'Turn bf16 on (CPUs with AVX512-BF16/AMX): `spacy.load(path, config={"components": '
            '{"transformer": {"model": {"cpu_mixed_precision": True}}}})`; pipelines trained '
            "with it (configs/ner_trf.cfg) have it on already."
        ),
        "",
        (
            'Turn int8 on: `spacy.load(path, config={"nlp": {"after_pipeline_creation": '
            '{"@misc": "spacy_ner_project.quantize_transformer.v1"}}})` (components/quantize.py).'
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
