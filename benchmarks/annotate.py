"""Benchmark (not a test): words/s of ``annotate`` on this machine, local vs Ray, one run.

Same pipeline, same input, one process: the local engine with 1 and with 2 processes
(``nlp.pipe(n_process=...)``), and the Ray engine with 2 actors (1 CPU each) on a local
``ray.init(num_cpus=2)``. Each figure is the whole ``annotate()`` call: loading the pipeline
(in each process/actor), reading INPUT, annotating, writing Parquet; Ray's own start is
timed separately (a cluster starts once, not per run). Words = CoNLL tokens of the input.

Input: the CoNLL-2003 test documents' text (read by path, written as JSONL under
``--work-dir``, never committed), repeated ``--copies`` times with distinct ids so that each
run lasts long enough for start-up costs not to dominate. The three runs' entities are
checked to be equal. Writes ``benchmarks/annotate.json`` and ``benchmarks/annotate.md``::

    python benchmarks/annotate.py --pipeline training/annotate_cnn/model-best [--copies 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import spacy
from spacy.tokens import DocBin

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (benchmarks/common.py)
from corpus import ROOT, add_data_args, convert_splits  # noqa: E402

from spacy_ner_project.annotate import AnnotateOptions, InputSpec, annotate, read_output  # noqa: E402

HERE = Path(__file__).resolve().parent


def write_input(test_docbin: Path, path: Path, *, copies: int) -> int:
    """The test documents' text as JSONL, ``copies`` times; returns the number of words."""
    docs = list(DocBin().from_disk(test_docbin).get_docs(spacy.blank("en").vocab))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for copy in range(copies):
            for i, doc in enumerate(docs):
                out.write(json.dumps({"id": f"{copy}-{i}", "text": doc.text}) + "\n")
    return copies * sum(len(doc) for doc in docs)


def loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_run(name: str, pipeline: str, source: Path, out: Path, words: int, options: AnnotateOptions) -> Dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    before = loadavg()
    start = time.perf_counter()
    summary = annotate(pipeline, InputSpec(source), out, options=options)
    seconds = time.perf_counter() - start
    row = {"run": name, "seconds": round(seconds, 2), "words_per_s": round(words / seconds), "rows": summary.rows,
           "entities": summary.entities, "loadavg_before": before, "loadavg_after": loadavg()}
    print(json.dumps(row), flush=True)
    return row


def entity_map(out: Path) -> Dict[str, List[Any]]:
    return {row["id"]: row["entities"] for row in read_output(out, columns=["id", "entities"])}


def pipeline_description(pipeline: str) -> str:
    meta = spacy.util.load_meta(Path(pipeline) / "meta.json")
    f1 = (meta.get("performance") or {}).get("ents_f")
    shown = common.relative(pipeline)
    return f"`{shown}` ({', '.join(meta.get('pipeline', []))}; dev ents_f {common.percent(f1)})" if f1 is not None else shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(ROOT / "training" / "annotate_cnn" / "model-best"))
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--note", default="", help="what else ran on the machine")
    add_data_args(parser)
    args = parser.parse_args()

    import ray

    start = time.perf_counter()
    spacy.load(args.pipeline)
    load_s = round(time.perf_counter() - start, 2)
    splits = convert_splits(args.data_dir, args.work_dir)
    work = args.work_dir / "annotate"
    source = work / "conll_test.jsonl"
    words = write_input(splits["test"], source, copies=args.copies)
    base = dict(batch_size=args.batch_size, progress=False, existing="overwrite")
    runs = [timed_run("local, 1 process", args.pipeline, source, work / "local1", words, AnnotateOptions(**base))]
    runs.append(timed_run("local, 2 processes", args.pipeline, source, work / "local2", words, AnnotateOptions(n_process=2, **base)))
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = round(time.perf_counter() - start, 2)
    try:
        runs.append(timed_run("Ray, 2 actors x 1 CPU", args.pipeline, source, work / "ray2", words,
                              AnnotateOptions(engine="ray", actors=2, **base)))
    finally:
        ray.shutdown()
    maps = [entity_map(work / name) for name in ("local1", "local2", "ray2")]
    same = maps[0] == maps[1] == maps[2]
    result = {
        "pipeline": pipeline_description(args.pipeline),
        "words": words, "docs": runs[0]["rows"], "copies": args.copies, "batch_size": args.batch_size,
        "ray_start_s": ray_start, "load_s": load_s, "same_entities": same, "runs": runs,
        "machine": f"{common.cpu_model()}, {os.cpu_count()} cores",
        "versions": {name: common.package_version(name) for name in ("spacy", "ray")}, "note": args.note,
    }
    common.write_json(HERE / "annotate.json", result)
    write_markdown(result, HERE / "annotate.md")


def rewrite_markdown() -> None:
    """Regenerate annotate.md from annotate.json (after editing the prose)."""
    write_markdown(json.loads((HERE / "annotate.json").read_text(encoding="utf-8")), HERE / "annotate.md")


def write_markdown(result: Dict[str, Any], path: Path) -> None:
    per_actor = round(result["runs"][-1]["words_per_s"] / 2)
    proj = ", ".join(
        f"{n} machine{'s' if n > 1 else ''}: {(1e8 / (n * 2 * per_actor) + result['ray_start_s'] + result['load_s']) / 60:,.0f} min"
        for n in (1, 4, 16, 64)
    )
    rows = "\n".join(
        f"| {r['run']} | {r['seconds']} | {r['words_per_s']:,} | {r['loadavg_before']} → {r['loadavg_after']} |" for r in result["runs"]
    )
    path.write_text(
        f"""# annotate: local vs Ray on this machine

Generated by `benchmarks/annotate.py` (figures in `annotate.json`); prose kept in
`write_markdown`. Pipeline: {result['pipeline']}. Input: CoNLL-2003 test, {result['docs']:,}
documents ({result['copies']} copies of the 231 documents' text, JSONL) = {result['words']:,}
words (CoNLL tokens). Batch size {result['batch_size']}; output Parquet. Each time is the whole
`annotate()` call (pipeline loading in every process or actor, reading, annotating, writing);
starting Ray itself took {result['ray_start_s']} s more (once per cluster, not per run).
Entities equal in all three runs: **{result['same_entities']}**. Machine: {result['machine']};
spaCy {result['versions']['spacy']}, Ray {result['versions']['ray']}. {result['note']}

| run | seconds | words/s | load average (1/5/15 min) before → after |
|---|---:|---:|---|
{rows}

## N machines

Measured here: one machine only (this project has no cluster). Projected, not measured:
the Ray engine's actors share nothing (each has its own pipeline copy and takes whole batches),
so throughput grows with the number of actors until something shared saturates. With
r = {per_actor:,} words/s per actor (the Ray row above / 2; it includes the start-up costs, which
dominate runs this short, so it is pessimistic) and one 1-CPU actor per core, N
machines of c cores annotate about N × c × r words/s, plus fixed costs: Ray's start
({result['ray_start_s']} s here, once per cluster) and each actor's pipeline load
({result['load_s']} s for this pipeline in one process here), paid in parallel. For a corpus of
100 million words on N machines of 2 cores that is about {proj}.

Why it is a projection and where it stops being linear: (1) the input is read and parsed
before the actors start (`ray_engine.py`: no reader can starve when actors hold every CPU),
so reading is a serial phase of its own, spread over the cluster's read tasks, and it
spills to disk when the corpus exceeds the object store; (2) INPUT and OUTPUT must be on
storage every node reaches (a shared filesystem or object storage), whose bandwidth is then
shared; (3) batches of very unequal length leave actors idle at the end (the last batch);
(4) on 2 cores the OS, Ray's own processes and the driver compete with the actors, which is
why 2 actors here are not 2 × 1 process (compare the local rows); on larger machines that
overhead is a smaller share. For an LLM pipeline the bound is the server's capacity
(`--llm-capacity`), not N.
""",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
