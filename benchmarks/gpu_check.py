"""Benchmark (the prepared GPU check of issue 24): train the default config for 200 steps on a CUDA GPU, then time the trained pipeline on that GPU against Hugging Face's token classification on the same backbone and GPU.

Run it where a GPU is lent; ``benchmarks/gpu.md`` has the setup line for a fresh machine. Steps:

1. Without a CUDA GPU that both torch and cupy see: one line on stderr, exit status 1, nothing
   run or written (``benchmarks/gpu.md`` is left as it is).
2. The project's own train command: ``python -m spacy_ner_project train configs/ner_trf.cfg
   PIPELINE_DIR --train TRAIN --dev DEV --gpu-id 0 --max-steps 200`` (the learning-rate schedule
   ends at step 200 too, and dev is scored once, at step 200: see training/overrides.py).
3. On the first ``--max-words`` words (whole documents) of ``--test``, the converted CoNLL test
   DocBin: Hugging Face ``pipeline("token-classification", device=0)`` on
   ``AutoModelForTokenClassification`` from the same embedded all-MiniLM-L6-v2 (untrained 9-label
   head: timing only), fed sentences and 100-word document chunks at ``--hf-batch-sizes``, the
   fastest of those again under bf16 autocast; ours (``spacy.require_gpu(0)``, ``model-best``),
   fed sentences and documents, float32 and with spacy-transformers' ``mixed_precision`` (CUDA
   float16 autocast), the latter also with larger batches. Words = CoNLL tokens; each row one
   warm-up on the first two documents, then the median of ``--repeats`` runs (the timing helpers
   of benchmarks/inference_speed.py and inference_speed_levers.py).
4. Prints one table and writes it, with the machine and the time of each stage, to
   ``benchmarks/gpu.md`` and ``benchmarks/gpu.json``.

It is meant to finish in under 8 minutes (``BUDGET_S``); the training has its own timeout, the
file says whether the run kept to the budget, and the exit status is 3 where it did not. Usage::

    python benchmarks/gpu_check.py [--train corpus/conll2003/train.spacy] [--dev ...] [--test ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from common import machine, relative, write_json, write_markdown  # benchmarks/common.py (no torch, no spaCy)

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "conll2003"
CONFIG = ROOT / "configs" / "ner_trf.cfg"
OUTPUT = ROOT / "benchmarks" / "gpu"
BUDGET_S = 480  # issue 24: the whole check in under 8 minutes
MIXED_PRECISION = {"components": {"transformer": {"model": {"mixed_precision": True}}}}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--train", type=Path, default=CORPUS / "train.spacy", help="training DocBin")
    parser.add_argument("--dev", type=Path, default=CORPUS / "dev.spacy", help="development DocBin (scored at the last step)")
    parser.add_argument("--test", type=Path, default=CORPUS / "test.spacy", help="DocBin whose text is timed")
    parser.add_argument("--steps", type=int, default=200, help="training steps (--max-steps of the train command)")
    parser.add_argument("--max-words", type=int, default=12000, help="timed words, whole documents (0: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--hf-batch-sizes", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--hf-chunk-words", type=int, default=100, help="CoNLL words per HF document chunk")
    parser.add_argument("--train-timeout", type=int, default=360, help="seconds the training may take")
    parser.add_argument("--pipeline-dir", type=Path, default=ROOT / "training" / "gpu_check",
                        help="where the train command writes model-best and model-last")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="writes <output>.md and <output>.json")
    return parser.parse_args(argv)


def gpu_problem() -> str | None:
    """Why this machine cannot run the check (None: torch and cupy both see a CUDA GPU)."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU here (torch.cuda.is_available() is False)"
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001 - ImportError, or cupy's CUDA errors
        return (f"torch sees a GPU, cupy does not ({type(error).__name__}: {error}); install cupy for "
                'torch\'s CUDA: pip install -e ".[cuda12x]"')
    return None


def missing_corpora(paths: Sequence[Path]) -> str | None:
    """The first DocBin that is not there, and how to make it (None: all are there)."""
    for path in paths:
        if not path.is_file():
            return (f"{path} not found: convert CoNLL-2003 first (python -m spacy project run convert, "
                    "with the data at ../shared/conll2003) or give --train/--dev/--test")
    return None


def train(args: argparse.Namespace) -> dict[str, Any]:
    """The project's train command on GPU 0; returns its wall time and model-best's dev scores."""
    args.pipeline_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "spacy_ner_project", "train", str(CONFIG), str(args.pipeline_dir),
               "--train", str(args.train), "--dev", str(args.dev), "--gpu-id", "0", "--max-steps", str(args.steps)]
    log = args.pipeline_dir / "train.log"
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        try:
            done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=args.train_timeout)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"gpu_check: training ran over --train-timeout {args.train_timeout} s; see {log}") from None
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8").splitlines()[-15:]
        raise SystemExit("gpu_check: training failed:\n" + "\n".join(tail))
    meta = json.loads((args.pipeline_dir / "model-best" / "meta.json").read_text())
    return {"command": " ".join(["python", "-m", "spacy_ner_project", *command[3:]]).replace(str(ROOT) + os.sep, ""),
            "seconds": round(seconds, 1), "pipeline": relative(args.pipeline_dir / "model-best"),
            "dev_ents_f": (meta.get("performance") or {}).get("ents_f")}


def conll_documents(path: Path) -> list[Any]:
    """The documents of a converted CoNLL DocBin as ``ConllDocument`` (sentences of words and
    IOB2 tags), what benchmarks/inference_speed.py builds its inputs from."""
    import spacy

    from spacy_ner_project.conll import ConllDocument, Sentence
    from spacy_ner_project.docbin import read_docbin

    documents = []
    for number, doc in enumerate(read_docbin(path, vocab=spacy.blank("en").vocab)):
        sentences = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
        documents.append(ConllDocument(f"{path.name}#{number}", [
            Sentence([t.text for t in s], [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in s])
            for s in sentences
        ]))
    return documents


def time_rows(args: argparse.Namespace, pipeline: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The input's description and the timed rows, HF's first, all on GPU 0."""
    import spacy
    import torch
    from thinc.api import set_gpu_allocator

    from inference_speed import HFSetting, build_inputs, hf_name, hf_runner, hf_tagger, longest_chunk, select_documents
    from inference_speed import time_words_per_second
    from inference_speed_levers import Setting, describe, spacy_runner, texts_differing

    threads = args.threads or torch.get_num_threads()
    documents = select_documents(conll_documents(args.test), args.max_words)
    inputs = build_inputs(documents, chunk_size=args.hf_chunk_words)
    warm = build_inputs(documents[:2], chunk_size=args.hf_chunk_words)
    rows: list[dict[str, Any]] = []

    def record(name: str, system: str, settings: dict[str, Any], unit: str, run: Callable[[Sequence[str]], Any]) -> Any:
        texts, warmup = getattr(inputs, unit), getattr(warm, unit)
        timing, outputs = time_words_per_second(run, texts, inputs.words, warmup=warmup, repeats=args.repeats)
        rows.append({"name": name, "system": system, "settings": settings, **timing})
        print(f"{name:<72} {timing['words_per_s']:>10.1f} words/s", flush=True)
        return outputs

    tagger = hf_tagger(device=0)
    described = {"file": relative(args.test), "documents": len(documents), "sentences": len(inputs.sentences),
                 "words": inputs.words, "hf_chunks": len(inputs.chunks),
                 "hf_longest_chunk_word_pieces": longest_chunk(tagger, inputs.chunks, args.hf_chunk_words),
                 "threads": threads, "repeats": args.repeats}
    hf_speeds: dict[HFSetting, float] = {}

    def time_hf(setting: HFSetting) -> None:
        record(hf_name(setting, args.hf_chunk_words, threads=threads), "hf", asdict(setting), setting.inputs,
               hf_runner(tagger, setting))
        hf_speeds[setting] = rows[-1]["words_per_s"]

    for unit in ("sentences", "chunks"):
        for batch_size in args.hf_batch_sizes:
            time_hf(HFSetting(unit, batch_size, threads))
    time_hf(replace(max(hf_speeds, key=hf_speeds.__getitem__), bf16=True))  # the fastest under bf16 autocast

    set_gpu_allocator("pytorch")  # as the config's [system]: cupy and torch share one memory pool
    spacy.require_gpu(0)
    float32, mixed = spacy.load(pipeline), spacy.load(pipeline, config=MIXED_PRECISION)
    default = Setting(threads=threads)
    documents_setting = replace(default, inputs="documents")
    reference = None
    for label, nlp, setting in (
        ("float32", float32, default),
        ("float32", float32, documents_setting),
        ("mixed_precision", mixed, documents_setting),
        ("mixed_precision", mixed, replace(documents_setting, batch_size=256, max_batch_items=16384)),
    ):
        levers = describe(setting.changes(default), window=None) if setting != default else "sentences"
        outputs = record(f"ours, {label}, {levers}", "ours", {"precision": label, **asdict(setting)}, setting.inputs,
                         spacy_runner(nlp, setting))
        if setting.inputs == "documents":
            if reference is None:
                reference = outputs
            else:
                rows[-1]["texts_differing_from_float32"] = texts_differing(outputs, reference)
    return described, rows


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: what ran, then the one table."""
    m, inp, trained, stages = report["machine"], report["input"], report["training"], report["seconds"]
    hf_best = max((r for r in report["results"] if r["system"] == "hf"), key=lambda r: r["words_per_s"])
    lines = [
        "# GPU check: training and inference on one CUDA GPU, ours against Hugging Face",
        "",
        f"Written by `{report['command']}` (benchmarks/gpu_check.py); do not edit by hand.",
        "",
        f"- Machine: {m['gpu']}, CUDA {m['cuda']}, {m['cpu']} ({m['cores']} CPUs); Python {m['python']}, torch "
        f"{m['torch']}, cupy {m['cupy']}, spaCy {m['spacy']}, spacy-transformers {m['spacy-transformers']}, "
        f"transformers {m['transformers']}. Load average at the start: {m['load_average']}.",
        f"- Training: `{trained['command']}`: {trained['seconds']} s; dev ents_f of `{trained['pipeline']}` after "
        f"{report['steps']} steps: {trained['dev_ents_f']}.",
        f"- Timed text: `{inp['file']}`, first {inp['documents']} documents = {inp['sentences']} sentences = "
        f"{inp['words']} words (CoNLL tokens); HF chunks: {inp['hf_chunks']} (longest {inp['hf_longest_chunk_word_pieces']} "
        f"word pieces). One warm-up, then the median of {inp['repeats']} runs; torch CPU threads {inp['threads']}.",
        f"- Wall time: training {stages['training']} s, timing {stages['timing']} s, all {stages['total']} s "
        f"({'within' if stages['total'] <= BUDGET_S else '**over**'} the {BUDGET_S} s budget).",
        "",
        "| setting | words/s (median) | x HF best | runs | entities vs float32 documents |",
        "|---|---:|---:|---|---|",
    ]
    for row in report["results"]:
        runs = ", ".join(f"{x:.0f}" for x in row["runs_words_per_s"])
        differing = row.get("texts_differing_from_float32")
        check = "" if differing is None else "same" if differing == 0 else f"{differing} texts differ"
        lines.append(f"| {row['name']} | {row['words_per_s']:.0f} | {row['words_per_s'] / hf_best['words_per_s']:.2f} | "
                     f"{runs} | {check} |")
    lines += [
        "",
        f"HF best: {hf_best['name']}. HF rows: `pipeline(\"token-classification\", device=0)` on the embedded "
        "all-MiniLM-L6-v2 with an untrained 9-label head. Ours: `spacy.require_gpu(0)` and the trained "
        "`model-best`; mixed_precision rows load it with "
        '`config={"components": {"transformer": {"model": {"mixed_precision": True}}}}` (CUDA float16 autocast).',
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    start = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    problem = gpu_problem() or missing_corpora([args.train, args.dev, args.test])
    if problem:
        print(f"gpu_check: {problem}; nothing was run and {args.output.with_suffix('.md').name} is unchanged.",
              file=sys.stderr)
        return 1
    import cupy
    import torch

    info = machine("torch", "spacy-transformers", "transformers")
    info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda, cupy=cupy.__version__)
    training = train(args)
    timing_start = time.perf_counter()
    described, rows = time_rows(args, args.pipeline_dir / "model-best")
    end = time.perf_counter()
    report = {
        "command": " ".join(["python", "benchmarks/gpu_check.py", *argv]),
        "machine": info, "steps": args.steps, "training": training, "input": described, "results": rows,
        "seconds": {"training": training["seconds"], "timing": round(end - timing_start, 1),
                    "total": round(end - start, 1)},
    }
    text = markdown(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output.with_suffix(".json"), report)
    write_markdown(args.output.with_suffix(".md"), text)
    print("\n" + text[text.index("| setting"):text.index("\n\nHF best")])
    print(f"Wrote {args.output.with_suffix('.md')} and .json ({report['seconds']['total']} s)")
    return 0 if report["seconds"]["total"] <= BUDGET_S else 3


if __name__ == "__main__":
    sys.exit(main())
