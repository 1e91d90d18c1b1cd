"""Benchmark (not a test): the speed/accuracy frontier of issue 24, CPU words/s against dev F1.

In one process, on the same CoNLL-2003 text (the first ``--max-words`` words of ``--text``, whole
documents, read as ``benchmarks/inference_speed.py`` reads them):

* systems, each optional (skipped with a note when its path is not given or does not exist):

  * ``--trf PATH``: a trained transformer pipeline as ``spacy.load(PATH)`` loads it (its own
    precision, windows, ``max_batch_items`` and ``nlp.batch_size``);
  * the same with the backbone on ONNX Runtime, float32 and int8 (one config override each,
    components/onnx_runtime.py; needs the ``[onnx]`` extra);
  * the same with torch's dynamic int8 (``spacy_ner_project.quantize_transformer.v1``, one config
    override; on a pipeline trained with ``cpu_mixed_precision = true`` it composes with bf16);
  * ``--trf-4-layers PATH``: another trained transformer pipeline (fewer backbone layers);
  * ``--trained LABEL PATH`` (repeatable): other trained transformer pipelines (e.g. trained with
    other windows), each as it loads and with the ONNX Runtime int8 backbone;
  * ``--cnn PATH``: a trained CNN pipeline (configs/ner_cnn.cfg);

* the Hugging Face anchor (timing only, untrained head, no F1): ``pipeline("token-classification")``
  at its best setting in benchmarks/inference_speed.md: ``--hf-chunk-words`` (100) word document
  chunks, batch ``--hf-batch-size`` (8), under bf16 autocast where the CPU has native bfloat16.

Every system gets strings and tokenises them itself: whole documents for ours (``nlp.pipe`` at
the pipeline's own batch size), the document chunks for HF. Timing: ``--repeats`` rounds, the
systems interleaved within each round (so that a change of load hits all of them alike); in each
round each system is warmed up once on the first two documents and timed once
(``inference_speed.time_words_per_second`` with one repeat); the median over rounds is reported.
Unit: words = CoNLL tokens of the input.

Accuracy: each of our systems (the very pipeline object that was timed) is scored on all of
``--f1-data`` (CoNLL dev) through the project's evaluation path (``inference_speed.ents_f``:
the pipeline tokenizes the document texts, spaCy's scorer aligns the gold entities; entity level).
Each pipeline's meta.json dev score and trained ``max_steps`` are reported too, and a pipeline
trained for fewer steps than its shipped config is flagged in the .md.

Writes ``<output>.json``, ``<output>.md`` and ``<output>.png`` (words/s on x, dev F1 on y, HF best
as a vertical line). Usage::

    python benchmarks/speed_accuracy.py --trf training/RUN/model-best \\
        [--trf-4-layers training/RUN4/model-best] [--cnn training/CNN/model-best] \\
        [--text ../shared/conll2003/test.txt] [--f1-data ../shared/conll2003/dev.txt] \\
        [--max-words 12000] [--repeats 3] [--threads 2] [--note "..."]
    python benchmarks/speed_accuracy.py --render-only   # the .md and .png again from <output>.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import spacy
import torch
from spacy.language import Language

from spacy_ner_project.components.precision import cpu_supports_bf16
from spacy_ner_project.conll import ConllDocument, read_conll

from common import ROOT, machine, percent_value, relative, write_json, write_markdown  # benchmarks/common.py
from inference_speed import (  # benchmarks/inference_speed.py
    CONLL,
    HFSetting,
    ents_f,
    hf_name,
    hf_runner,
    hf_tagger,
    longest_chunk,
    read_inputs,
    time_words_per_second,
)
from inference_speed_levers import (  # benchmarks/inference_speed_levers.py
    ONNX, QUANTIZE, Entities, backbone_shim, entities, onnx_runtime_version, trained_windows,
)

SHIPPED_CONFIGS = {"trf": ROOT / "configs" / "ner_trf.cfg", "cnn": ROOT / "configs" / "ner_cnn.cfg"}
DISTILLED_CONFIG = ROOT / "configs" / "ner_trf_distilled.cfg"  # fine-tuning a distilled pipeline (benchmarks/distillation.md)
TRF_DEFAULT = "trf"  # the key of the row every F1 change is measured against
WINDOW = 128  # the strided windows of --trf pipelines trained before issue 24 (window 128, stride 96)
Row = dict[str, Any]


@dataclass(frozen=True)
class System:
    """One of our pipelines as one row: how it is loaded."""

    key: str  # e.g. "trf", "trf-onnx-int8", "cnn"
    name: str  # the row's name in the table and the figure
    path: Path
    family: str  # "trf" or "cnn": the shipped config its training steps are compared with
    override: Optional[dict[str, Any]] = None  # spacy.load(path, config=override)


@dataclass
class Timed:
    """What one row times: ``run(texts)`` after a warm-up on ``warmup``."""

    run: Callable[[Sequence[str]], Any]
    texts: Sequence[str]
    warmup: Sequence[str]


def onnx_override(*, int8: bool) -> dict[str, Any]:
    """The one config override that puts the backbone on ONNX Runtime (components/onnx_runtime.py)."""
    return {"nlp": {"after_pipeline_creation": {"@misc": ONNX, "int8": int8}}}


def trf_variants(path: Path, *, onnx: bool, name: str = "transformer, default") -> list[System]:
    """The trained transformer pipeline as it loads by default, then with each opt-in backbone."""
    variants = [System(TRF_DEFAULT, name, path, "trf")]
    if onnx:
        variants += [System("trf-onnx", "transformer, ONNX Runtime fp32", path, "trf", onnx_override(int8=False)),
                     System("trf-onnx-int8", "transformer, ONNX Runtime int8", path, "trf", onnx_override(int8=True))]
    variants.append(System("trf-int8", "transformer, torch int8", path, "trf", {"nlp": QUANTIZE}))
    windows = trained_windows(path)
    if windows is None or windows[1] >= windows[0]:  # e.g. sentence windows: no overlap to take away
        return variants
    no_overlap = {"components": {"transformer": {"model": {"get_spans": {"stride": WINDOW}}}}}
    # windows that do not overlap (stride = window, set at load time): fewer positions per word piece
    return variants + [
        System("trf-no-overlap", f"transformer, windows without overlap ({WINDOW}/{WINDOW})", path, "trf", no_overlap),
    ]



def trained_variants(label: str, path: Path, *, onnx: bool, key: Optional[str] = None) -> list[System]:
    """Another trained transformer pipeline (``--trained LABEL PATH``, ``--trf-4-layers``) as it
    loads, and with the fastest opt-in backbone (ONNX Runtime int8) on top; ``key`` defaults to
    the label's words joined by hyphens."""
    key = key or "trf-" + "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())
    variants = [System(key, f"transformer, {label}", path, "trf")]
    if onnx:
        variants.append(System(f"{key}-onnx-int8", f"transformer, {label}, ONNX Runtime int8", path, "trf",
                               onnx_override(int8=True)))
    return variants


def plan_systems(args: argparse.Namespace, *, onnx: bool) -> tuple[list[System], list[dict[str, str]]]:
    """The systems to run, and a note for each one skipped (path not given or missing, no onnxruntime)."""
    planned: list[System] = []
    skipped: list[dict[str, str]] = []
    candidates: list[tuple[str, Optional[Path], Callable[[Path], list[System]]]] = [
        ("--trf", args.trf, lambda p: trf_variants(p, onnx=onnx, name=args.trf_name)),
        ("--trf-4-layers", args.trf_4_layers,
         lambda p: trained_variants("fewer backbone layers", p, onnx=onnx, key="trf-4-layers")),
        *((f"--trained {label}", Path(path), functools.partial(trained_variants, label, onnx=onnx))
          for label, path in args.trained),
        ("--cnn", args.cnn, lambda p: [System("cnn", "CNN (configs/ner_cnn.cfg)", p, "cnn")]),
    ]
    for flag, path, systems in candidates:
        if path is None:
            skipped.append({"system": flag, "reason": "not given"})
        elif not (path / "meta.json").is_file():
            skipped.append({"system": flag, "reason": f"no pipeline at {relative(path)}"})
        else:
            planned += systems(path)
    if args.trf is not None and not onnx:
        skipped.append({"system": "--trf with ONNX Runtime",
                        "reason": 'onnxruntime is not installed (pip install -e ".[onnx]")'})
    return planned, skipped


def backbone_layers(nlp: Language) -> Optional[int]:
    """The transformer backbone's number of layers; None for a pipeline without a transformer."""
    if "transformer" not in nlp.pipe_names:
        return None
    config = getattr(backbone_shim(nlp)._model, "config", None)
    return getattr(config, "num_hidden_layers", None)


def training_steps(path: Path, family: str) -> dict[str, Any]:
    """The pipeline's ``[training] max_steps`` against its shipped config's (a pipeline fine-tuned
    from a distilled one, whose config names ``paths.distilled``: configs/ner_trf_distilled.cfg's)."""
    config = spacy.util.load_config(path / "config.cfg")
    shipped = DISTILLED_CONFIG if config.get("paths", {}).get("distilled") else SHIPPED_CONFIGS[family]
    trained = config.get("training", {}).get("max_steps")
    return {"trained_max_steps": trained, "shipped_config": relative(shipped),
            "shipped_max_steps": spacy.util.load_config(shipped)["training"]["max_steps"]}


def pipeline_facts(system: System, nlp: Language) -> dict[str, Any]:
    """Where a row's pipeline comes from: path, components, meta.json's dev score, training steps,
    backbone layers, batch size, and whether its backbone autocasts to bf16 on this CPU."""
    meta = json.loads((system.path / "meta.json").read_text())
    trf_bf16 = "transformer" in nlp.pipe_names and bool(
        nlp.config["components"]["transformer"]["model"].get("cpu_mixed_precision"))
    return {
        "path": relative(system.path),
        "components": list(nlp.pipe_names),
        "override": system.override,
        "meta_dev_ents_f": percent_value((meta.get("performance") or {}).get("ents_f")),
        **training_steps(system.path, system.family),
        "backbone_layers": backbone_layers(nlp),
        "batch_size": nlp.batch_size,
        "bf16_autocast": trf_bf16 and cpu_supports_bf16() and "onnx" not in system.key,
    }


def pipe_runner(nlp: Language, *, threads: int) -> Callable[[Sequence[str]], Entities]:
    """``run(texts)``: ``nlp.pipe`` at the pipeline's own batch size on ``threads`` torch threads
    (ONNX Runtime follows them); the entities of each text."""

    def run(texts: Sequence[str]) -> Entities:
        torch.set_num_threads(threads)
        return [entities(doc) for doc in nlp.pipe(texts)]

    return run


def interleaved_timings(timed: dict[str, Timed], words: int, *, repeats: int) -> dict[str, dict[str, Any]]:
    """Per key: ``repeats`` rounds, all keys timed once per round in turn (each after its own
    warm-up); the median words/s over rounds, each round's, and the median cores used."""
    rounds: dict[str, list[dict[str, Any]]] = {key: [] for key in timed}
    for round_number in range(repeats):
        for key, row in timed.items():
            timing, _ = time_words_per_second(row.run, row.texts, words, warmup=row.warmup, repeats=1)
            rounds[key].append(timing)
            print(f"round {round_number + 1}/{repeats} {key:<16} {timing['words_per_s']:>9.1f} words/s", flush=True)
    return {key: combine_rounds(timings, words) for key, timings in rounds.items()}


def combine_rounds(timings: Sequence[dict[str, Any]], words: int) -> dict[str, Any]:
    """One row's rounds (each one ``time_words_per_second`` result) as one median."""
    speeds = [timing["runs_words_per_s"][0] for timing in timings]
    median_wall = statistics.median(words / speed for speed in speeds)
    return {"words_per_s": round(words / median_wall, 1), "runs_words_per_s": speeds,
            "median_wall_s": round(median_wall, 3),
            "cores_used": round(statistics.median(timing["cores_used"] for timing in timings), 2)}


def dev_scores(nlps: dict[str, Language], gold: Sequence[ConllDocument], *, threads: int) -> dict[str, dict[str, float]]:
    """Each pipeline's entity scores on all of ``gold`` (``inference_speed.ents_f``)."""
    torch.set_num_threads(threads)
    scores = {}
    for key, nlp in nlps.items():
        scores[key] = ents_f(nlp, gold, batch_size=64)
        print(f"dev F1 {key:<16} {scores[key]['ents_f']:.2f}", flush=True)
    return scores


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trf", type=Path, help="trained transformer pipeline (default settings, ONNX Runtime, torch int8)")
    parser.add_argument("--trf-name", default="transformer, default", help="the --trf pipeline's row name")
    parser.add_argument("--trf-4-layers", type=Path, help="trained transformer pipeline with fewer backbone layers")
    parser.add_argument("--trained", nargs=2, action="append", default=[], metavar=("LABEL", "PATH"),
                        help="another trained transformer pipeline, as loaded and with ONNX Runtime int8 (repeatable)")
    parser.add_argument("--cnn", type=Path, help="trained CNN pipeline (configs/ner_cnn.cfg)")
    parser.add_argument("--text", type=Path, default=CONLL / "test.txt", help="CoNLL file whose text is timed")
    parser.add_argument("--f1-data", type=Path, default=CONLL / "dev.txt", help="CoNLL file scored in full")
    parser.add_argument("--max-words", type=int, default=12000, help="timed words, whole documents (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (systems interleaved in each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hf-chunk-words", type=int, default=100, help="CoNLL words per HF document chunk")
    parser.add_argument("--hf-batch-size", type=int, default=8)
    parser.add_argument("--no-hf", action="store_true", help="no Hugging Face row (no 'x HF best' then)")
    parser.add_argument("--note", default="", help="where the pipelines come from (printed in the .md)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "speed_accuracy",
                        help="writes <output>.json, .md and .png")
    parser.add_argument("--render-only", action="store_true", help="write <output>.md and .png again from <output>.json")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.render_only:
        render(args.output)
        return
    report = measure(args, argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output.with_suffix(".json"), report)
    print(f"Wrote {args.output.with_suffix('.json')}")
    render(args.output)


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Load every system, time them interleaved, score ours on dev: the report."""
    bf16 = cpu_supports_bf16()
    report: dict[str, Any] = {
        "argv": argv,
        "machine": {**machine("torch", "spacy-transformers", "transformers", "onnxruntime"), "native_bf16": bf16},
        "note": args.note, "repeats": args.repeats, "threads": args.threads,
    }
    systems, report["skipped"] = plan_systems(args, onnx=onnx_runtime_version() is not None)
    for skipped in report["skipped"]:
        print(f"Skipped {skipped['system']}: {skipped['reason']}", flush=True)
    if not systems:
        raise SystemExit("No pipeline to run: pass --trf, --trf-4-layers or --cnn with an existing pipeline.")
    documents, inputs, warm = read_inputs(args.text, max_words=args.max_words, chunk_words=args.hf_chunk_words)
    report["input"] = {"file": relative(args.text), "documents": len(documents), "sentences": len(inputs.sentences),
                       "words": inputs.words, "unit": "words = CoNLL tokens", "hf_chunk_words": args.hf_chunk_words,
                       "hf_chunks": len(inputs.chunks)}
    torch.set_num_threads(args.threads)
    nlps = {system.key: spacy.load(system.path, config=system.override or {}) for system in systems}
    timed = {system.key: Timed(pipe_runner(nlps[system.key], threads=args.threads), inputs.documents, warm.documents)
             for system in systems}
    hf_setting = HFSetting("chunks", args.hf_batch_size, args.threads, bf16=bf16)
    if not args.no_hf:
        tagger = hf_tagger()
        report["input"]["hf_longest_chunk_word_pieces"] = longest_chunk(tagger, inputs.chunks, args.hf_chunk_words)
        timed = {"hf": Timed(hf_runner(tagger, hf_setting), inputs.chunks, warm.chunks), **timed}
    timings = interleaved_timings(timed, inputs.words, repeats=args.repeats)
    gold = read_conll(args.f1_data).documents
    report["f1_data"] = {"file": relative(args.f1_data), "documents": len(gold)}
    scores = dev_scores(nlps, gold, threads=args.threads)
    report["results"] = [] if args.no_hf else [
        {"key": "hf", "name": hf_name(hf_setting, args.hf_chunk_words, threads=args.threads), "system": "hf",
         "settings": asdict(hf_setting), **timings["hf"]}]
    report["results"] += [{"key": system.key, "name": system.name, "system": "ours",
                           "pipeline": pipeline_facts(system, nlps[system.key]), **timings[system.key],
                           "dev": scores[system.key]} for system in systems]
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["frontier"] = frontier(report)
    return report


def frontier(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: name, words/s, x HF best, dev F1 and its change against the trf default
    (None where there is no HF row, no F1 or no trf default)."""
    rows = report["results"]
    hf = next((row["words_per_s"] for row in rows if row["system"] == "hf"), None)
    base = next((row["dev"]["ents_f"] for row in rows if row["key"] == TRF_DEFAULT and row.get("dev")), None)
    table = []
    for row in rows:
        f1 = (row.get("dev") or {}).get("ents_f")
        table.append({"key": row["key"], "name": row["name"], "system": row["system"], "words_per_s": row["words_per_s"],
                      "ratio_vs_hf_best": round(row["words_per_s"] / hf, 2) if hf else None, "dev_ents_f": f1,
                      "f1_delta_vs_trf_default": round(f1 - base, 2) if f1 is not None and base is not None else None})
    return table


def render(output: Path) -> None:
    """Write ``<output>.md`` and ``<output>.png`` from ``<output>.json``."""
    source = output.with_suffix(".json")
    try:
        report = json.loads(source.read_text())
        text = markdown(report)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise SystemExit(f"Cannot render {source}: {error!r}; run the benchmark to write it again.") from None
    write_markdown(output.with_suffix(".md"), text)
    print(f"Wrote {output.with_suffix('.md')} from {source}")
    try:
        figure(report, output.with_suffix(".png"))
    except ImportError:
        print("No figure: matplotlib is not installed.")
        return
    print(f"Wrote {output.with_suffix('.png')}")


def _number(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_lines(report: dict[str, Any]) -> list[str]:
    reference = next((row["name"] for row in report["results"] if row["key"] == TRF_DEFAULT), "the trf default")
    lines = [f"| system | words/s | x HF best | dev F1 | F1 change vs {reference} |",
             "|---|---:|---:|---:|---:|"]
    for row in frontier(report):
        change = "reference" if row["key"] == TRF_DEFAULT else _number(row["f1_delta_vs_trf_default"], "+.2f")
        lines.append(f"| {row['name']} | {row['words_per_s']:,.0f} | {_number(row['ratio_vs_hf_best'], '.2f')} | "
                     f"{_number(row['dev_ents_f'], '.2f')} | {change} |")
    return lines


def pipeline_line(row: Row) -> str:
    """One of our rows: its pipeline, meta.json's dev score, training steps (flagged when fewer
    than the shipped config's), layers, batch size, precision."""
    p = row["pipeline"]
    trained, shipped = p.get("trained_max_steps"), p["shipped_max_steps"]
    steps = f"trained for max_steps = {trained} (config.cfg)"
    if trained is not None and trained < shipped:
        steps = (f"**trained for {trained} steps, fewer than the {shipped} of the shipped `{p['shipped_config']}`**: "
                 "its F1 is below what the shipped config reaches")
    layers = f", {p['backbone_layers']} backbone layers" if p.get("backbone_layers") else ""
    override = f", loaded with `config={json.dumps(p['override'])}`" if p.get("override") else ""
    return (f"- {row['name']}: `{p['path']}` ({', '.join(p['components'])}{layers}; nlp.pipe batch_size "
            f"{p['batch_size']}; bf16 autocast: {p['bf16_autocast']}{override}); dev ents_f in its meta.json: "
            f"{_number(p.get('meta_dev_ents_f'), '.2f')}; {steps}.")


def markdown(report: dict[str, Any]) -> str:
    m, inp = report["machine"], report["input"]
    command = shlex.join(["python", "benchmarks/speed_accuracy.py", *report["argv"]])
    ours = [row for row in report["results"] if row["system"] == "ours"]
    hf = [row for row in report["results"] if row["system"] == "hf"]
    f1 = report.get("f1_data", {})
    lines = [
        "# Speed/accuracy frontier: CPU words/s against CoNLL-2003 dev F1",
        "",
        f"Written by `{command}`; do not edit by hand (`--render-only` rewrites it and the figure from the .json).",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} CPUs (native bfloat16: {m['native_bf16']}), Python {m['python']}, "
        f"torch {m['torch']}, spaCy {m['spacy']}, spacy-transformers {m['spacy-transformers']}, transformers "
        f"{m['transformers']}, onnxruntime {m.get('onnxruntime', 'not recorded')}; {report['threads']} threads.",
        f"- Load average (1/5/15 min): {m['load_average']} at start, {m.get('load_average_at_end')} at end. "
        "Compare rows of one run only.",
        f"- Text timed: `{inp['file']}`, first {inp['documents']} documents = {inp['words']} words "
        "(**words = CoNLL tokens**); ours gets whole document strings (nlp.pipe at the pipeline's own batch size), "
        f"HF the same documents in {inp['hf_chunk_words']}-word chunks; each tokenises them itself.",
        f"- {report['repeats']} round(s), the systems interleaved in each; every system warmed up on the first two "
        "documents before each timed run; the median over rounds is reported.",
        f"- Dev F1: all of `{f1.get('file')}` ({f1.get('documents')} documents), entity level, spaCy's scorer "
        "through the project's evaluation path (the pipeline tokenizes the document texts itself), scored on the "
        "same pipeline object that was timed.",
        *([f"- HF best: {hf[0]['name']} (`pipeline(\"token-classification\")` on the same embedded backbone, "
           "untrained 9-label head: timing only, no F1; the figure draws it as a vertical line)."] if hf
          else ["- No Hugging Face row in this run (--no-hf)."]),
        *([f"- Note: {report['note']}"] if report.get("note") else []),
        "",
        *table_lines(report),
        "",
        "Pipelines:",
        "",
        *(pipeline_line(row) for row in ours),
        *(f"- Skipped {s['system']}: {s['reason']}." for s in report.get("skipped", [])),
        "",
        "Each row's rounds (words/s): " + "; ".join(
            f"{row['name']}: {', '.join(f'{x:,.0f}' for x in row['runs_words_per_s'])} (cores used {row['cores_used']})"
            for row in report["results"]) + ".",
        "",
        "Overrides: ONNX Runtime `{\"nlp\": {\"after_pipeline_creation\": {\"@misc\": "
        "\"spacy_ner_project.onnx_backbone.v1\"}}}` (`\"int8\": true` for int8; bf16 has no effect on it; "
        "components/onnx_runtime.py); torch int8 `{\"nlp\": {\"after_pipeline_creation\": {\"@misc\": "
        "\"spacy_ner_project.quantize_transformer.v1\"}}}` (with the pipeline's bf16 where it has it on; "
        "components/quantize.py). See [docs/speed.md](../docs/speed.md).",
        "",
        "![words/s against dev F1](speed_accuracy.png)",
    ]
    return "\n".join(lines)


def figure(report: dict[str, Any], path: Path) -> None:
    """Words/s (x; log scale when the fastest is over 4x the slowest) against dev F1 (y), one
    point per scored system (named in the legend), HF best as a vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = frontier(report)
    points = [row for row in rows if row["dev_ents_f"] is not None]
    hf = [row for row in rows if row["system"] == "hf"]
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    markers = "osD^vP*Xh<>p"
    for index, row in enumerate(sorted(points, key=lambda row: row["words_per_s"])):
        # a legend, not labels: the transformer variants lie within a point of F1 of each other
        ax.scatter(row["words_per_s"], row["dev_ents_f"], zorder=3, marker=markers[index % len(markers)],
                   s=46, label=f"{row['name']} ({row['words_per_s']:,.0f} words/s, F1 {row['dev_ents_f']:.2f})")
    for row in hf:
        ax.axvline(row["words_per_s"], linestyle="--", color="grey", linewidth=1)
        ax.text(row["words_per_s"], 0.03, " HF best (no F1)", rotation=90, fontsize=8, color="grey",
                transform=ax.get_xaxis_transform(), va="bottom")
    speeds = [row["words_per_s"] for row in points + hf]
    if speeds and max(speeds) > 4 * min(speeds):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.margins(x=0.25, y=0.12)  # room for the labels
    ax.set_xlabel(f"words/s (CoNLL tokens; median of {report['repeats']}, {report['threads']} threads)")
    ax.set_ylabel("dev F1 (entity level)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
