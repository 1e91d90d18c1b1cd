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

Memory (``--memory``, needs neither the data nor a trained pipeline, keeps the speed figures):
the peak resident set size of a fresh process that runs ``annotate()`` on the local engine
(1 process, Parquet output, 10,000 rows per part) over 10,000, 100,000 and 1,000,000 short
synthetic documents (one line of 9-16 words, each with a number of its own, so the vocabulary
grows as in real text), with an entity_ruler pipeline; a run of 100 documents gives the
start-up's share. Then the Ray engine over the same inputs (not the 100) in a fresh process
that starts a local Ray with its object store capped at 256 MiB: the peaks of the object
store's use, of what spilled, and of the RSS of the driver, the workers and Ray's own
processes (:class:`RayMemoryPoller`). Streaming means the peaks do not grow with the number
of documents. Each engine's figures are kept apart (``--engines`` measures only some)::

    python benchmarks/annotate.py --memory [--engines local ray]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


# documents per run of each engine (the local engine's 100 gives the start-up's share)
MEMORY_DOCS: Dict[str, Tuple[int, ...]] = {"local": (100, 10_000, 100_000, 1_000_000), "ray": (10_000, 100_000, 1_000_000)}
MEMORY_KEYS = {"local": "memory", "ray": "memory_ray"}  # where annotate.json keeps each engine's figures
RAY_OBJECT_STORE_MB = 256  # the cap of the Ray engine's object store in its memory runs
MEMORY_PATTERNS = [{"label": "PER", "pattern": "Anna Kowalski"}, {"label": "ORG", "pattern": "Helix Motors"}, {"label": "LOC", "pattern": "Valmora"}]
# run in a fresh process: its peak RSS is the run's alone (ru_maxrss is in KiB on Linux)
MEMORY_CHILD = """
import json, resource, sys
from pathlib import Path
from spacy_ner_project.annotate import AnnotateOptions, InputSpec, annotate
pipeline, source, out = sys.argv[1:4]
summary = annotate(pipeline, InputSpec(Path(source)), Path(out), options=AnnotateOptions(progress=False, existing="overwrite"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": summary.rows, "files": len(summary.files), "seconds": summary.seconds, "peak_rss_mib": round(peak, 1)}))
"""


def write_short_docs(path: Path, n: int) -> None:
    """``n`` one-line documents of 9-16 words, each with a number of its own."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            extra = " and Helix Motors" * (i % 3 == 0) + " near Valmora" * (i % 2)
            out.write(json.dumps({"id": f"doc-{i:07d}", "text": f"Report {i}: Anna Kowalski met the board{extra} on day {i % 365}."}) + "\n")


def short_docs(work: Path, n: int) -> Path:
    """The input of ``n`` short documents (written once: the same every time)."""
    source = work / f"short_{n}.jsonl"
    if not source.exists():
        tmp = source.with_suffix(".tmp")
        write_short_docs(tmp, n)
        tmp.replace(source)
    return source


def ruler_pipeline(work: Path) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(MEMORY_PATTERNS)
    pipeline = work / "ruler"
    nlp.to_disk(pipeline)
    return pipeline


def child_command(engine: str, pipeline: Path, source: Path, out: Path) -> List[str]:
    """The fresh process that measures one run of ``engine``."""
    if engine == "local":
        return [sys.executable, "-c", MEMORY_CHILD, str(pipeline), str(source), str(out)]
    return [sys.executable, str(Path(__file__).resolve()), "--ray-memory-child", str(pipeline), str(source), str(out)]


# what RayMemoryPoller keeps the peak of (bytes)
PEAKS = ("store_used", "store_spilled", "store_capacity", "driver", "workers", "largest_worker", "ray_processes")


class RayMemoryPoller(threading.Thread):
    """Polls, every ``interval`` s while a run of the Ray engine lasts, the peaks of: the object
    store's bytes in use (``object_store_memory`` of ``ray.cluster_resources()`` less that of
    ``ray.available_resources()``: what the raylets report of their plasma stores), the bytes
    spilled to disk (the files in the session's ``ray_spilled_objects_*`` folders), the
    driver's RSS, the summed RSS of the processes named ``ray::`` (the actors, the read tasks'
    workers, Ray Data's own actors, idle, spill and restore workers, and Ray's two agents,
    ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``), the largest one's RSS and the most of
    them at once, and the summed RSS of Ray's other processes (GCS, raylet, log monitor), all of
    them this process's descendants (``psutil``)."""

    def __init__(self, *, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.peaks: Dict[str, float] = {key: 0.0 for key in PEAKS}
        self.most_workers = 0

    def run(self) -> None:
        import ray

        while not ray.is_initialized() and not self.stopping.wait(self.interval):
            pass  # annotate() starts Ray itself
        while not self.stopping.wait(self.interval):
            try:
                self.poll_store(Path(ray._private.worker.global_worker.node.get_session_dir_path()))
            except Exception:  # noqa: BLE001 (Ray is starting or shutting down: the next poll tells)
                pass
            self.poll_processes()

    def poll_store(self, session: Path) -> None:
        import ray

        capacity = ray.cluster_resources().get("object_store_memory", 0.0)
        self._peak("store_capacity", capacity)
        self._peak("store_used", capacity - ray.available_resources().get("object_store_memory", capacity))
        spilled = sum(f.stat().st_size for folder in session.glob("ray_spilled_objects_*") for f in folder.iterdir() if f.is_file())
        self._peak("store_spilled", spilled)

    def poll_processes(self) -> None:
        import psutil  # Ray ships it (ray/thirdparty_files)

        driver = psutil.Process()
        sums = {"workers": 0, "ray_processes": 0}
        workers = 0
        for child in driver.children(recursive=True):
            try:
                worker = child.name().startswith("ray::") or any("default_worker.py" in part for part in child.cmdline())
                rss = child.memory_info().rss
            except psutil.Error:
                continue  # it ended meanwhile
            sums["workers" if worker else "ray_processes"] += rss
            workers += worker
            if worker:
                self._peak("largest_worker", rss)
        self._peak("driver", driver.memory_info().rss)
        for key, value in sums.items():
            self._peak(key, value)
        self.most_workers = max(self.most_workers, workers)

    def _peak(self, key: str, value: float) -> None:
        self.peaks[key] = max(self.peaks[key], float(value))

    def mib(self) -> Dict[str, float]:
        return {**{f"peak_{key}_mib": round(value / 2**20, 1) for key, value in self.peaks.items()}, "most_workers": self.most_workers}


def ray_memory_child(pipeline: Path, source: Path, out: Path) -> Dict[str, Any]:
    """One run of the Ray engine (the local Ray it starts: 2 actors, object store capped at
    RAY_OBJECT_STORE_MB), with :class:`RayMemoryPoller` watching it."""
    poller = RayMemoryPoller()
    poller.start()
    options = AnnotateOptions(engine="ray", actors=2, object_store_mb=RAY_OBJECT_STORE_MB, progress=False, existing="overwrite")
    try:
        summary = annotate(str(pipeline), InputSpec(source), out, options=options)
    finally:
        poller.stopping.set()
        poller.join()
    return {"rows": summary.rows, "files": len(summary.files), "seconds": summary.seconds, "object_store_mb": RAY_OBJECT_STORE_MB, **poller.mib()}


def measure_memory(work: Path, *, engine: str) -> Dict[str, Any]:
    """Peak memory of annotate (``engine``, ruler pipeline) over each of MEMORY_DOCS[engine] documents."""
    pipeline = ruler_pipeline(work)
    runs = []
    for n in MEMORY_DOCS[engine]:
        source = short_docs(work, n)
        out = work / f"out_{engine}_{n}"
        before = loadavg()
        done = subprocess.run(child_command(engine, pipeline, source, out), check=True, capture_output=True, text=True)
        row = {"docs": n, "input_mb": round(source.stat().st_size / 1e6, 1), **json.loads(done.stdout.strip().splitlines()[-1]),
               "loadavg_before": before, "loadavg_after": loadavg()}
        print(json.dumps(row), flush=True)
        runs.append(row)
        shutil.rmtree(out, ignore_errors=True)
    packages = ("spacy", "pyarrow", "ray") if engine == "ray" else ("spacy", "pyarrow")
    return {"runs": runs, "machine": f"{common.cpu_model()}, {os.cpu_count()} cores", "loadavg_after": loadavg(),
            "versions": {name: common.package_version(name) for name in packages}}


def memory_main(work_dir: Path, note: str, engines: Sequence[str]) -> None:
    """Measure memory only: add it to annotate.json (the other figures kept) and rewrite
    annotate.md after each engine (an engine not measured keeps its earlier figures)."""
    work = work_dir / "annotate_memory"
    work.mkdir(parents=True, exist_ok=True)
    for engine in engines:
        figures = dict(measure_memory(work, engine=engine), note=note)
        result = json.loads((HERE / "annotate.json").read_text(encoding="utf-8"))
        result[MEMORY_KEYS[engine]] = figures
        common.write_json(HERE / "annotate.json", result)
        write_markdown(result, HERE / "annotate.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(ROOT / "training" / "annotate_cnn" / "model-best"))
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--memory", action="store_true", help="measure peak memory only (the speed figures are kept)")
    parser.add_argument("--engines", nargs="+", choices=tuple(MEMORY_DOCS), default=list(MEMORY_DOCS), help="--memory: the engines to measure")
    parser.add_argument("--ray-memory-child", nargs=3, metavar=("PIPELINE", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    add_data_args(parser)
    args = parser.parse_args()
    if args.ray_memory_child:
        print(json.dumps(ray_memory_child(*map(Path, args.ray_memory_child))))
        return
    if args.memory:
        memory_main(args.work_dir, args.note, args.engines)
        return

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
    previous = json.loads((HERE / "annotate.json").read_text(encoding="utf-8")) if (HERE / "annotate.json").exists() else {}
    for key in MEMORY_KEYS.values():
        if key in previous:
            result[key] = previous[key]  # measured by --memory
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

Why it is a projection and where it stops being linear: (1) the Ray row above was measured
before the engine streamed, when it read and parsed all of INPUT before the actors started;
now read tasks (asking for no CPU, at most one per two actors at once) read while the actors
annotate (see the Ray memory section below), so reading overlaps annotating but must keep up
with N × c actors; (2) INPUT and OUTPUT must be on
storage every node reaches (a shared filesystem or object storage), whose bandwidth is then
shared; (3) batches of very unequal length leave actors idle at the end (the last batch);
(4) on 2 cores the OS, Ray's own processes and the driver compete with the actors, which is
why 2 actors here are not 2 × 1 process (compare the local rows); on larger machines that
overhead is a smaller share. For an LLM pipeline the bound is the server's capacity
(`--llm-capacity`), not N.
{memory_section(result.get("memory"))}{ray_memory_section(result.get("memory_ray"))}""",
        encoding="utf-8",
    )


def memory_section(memory: Optional[Dict[str, Any]]) -> str:
    """The memory table (``--memory``), or nothing before it was measured."""
    if not memory:
        return ""
    rows = "\n".join(
        f"| {r['docs']:,} | {r['input_mb']} | {r['files']} | {r['seconds']} | {r['peak_rss_mib']} | {load_change(r)} |" for r in memory["runs"]
    )
    return f"""
## Memory: the local engine streams

Generated by `python benchmarks/annotate.py --memory`. Peak resident set size of a fresh
process running `annotate()` with the local engine (1 process, Parquet output, 10,000 rows per
part file) over short synthetic documents (one line of 9-16 words, each with a number of its
own, so the vocabulary grows as in real text) with an entity_ruler pipeline. Machine:
{memory['machine']} (no GPU); spaCy {memory['versions']['spacy']}, pyarrow
{memory['versions']['pyarrow']}; the load average of each run is in the table, so the seconds are not
comparable with the table above. {memory.get('note', '')}

| documents | INPUT (MB) | part files | seconds | peak RSS (MiB) | load average (1/5/15 min) before → after |
|---:|---:|---:|---:|---:|---|
{rows}

What a run holds at once: one part file's rows (`rows_per_file`), `nlp.pipe`'s batches and a
few batches of records with an error; INPUT is read line by line, twice (first for the
checks: duplicate ids, id types, UTF-8), and each part's records go through `nlp.pipe` inside
`nlp.memory_zone()`, so spaCy's vocabulary forgets the new words of a part when it is written.
What still grows with INPUT: the ids (the duplicate check keeps each id once, and `--resume`
the ids OUTPUT holds), some tens of bytes per document; and with `--n-process` > 1 the worker
processes' vocabularies (no memory zone there).
"""


def load_change(run: Dict[str, Any]) -> str:
    """A run's load average before → after (runs measured before it was kept: "-")."""
    return f"{run['loadavg_before']} → {run['loadavg_after']}" if "loadavg_before" in run else "-"


def ray_memory_section(memory: Optional[Dict[str, Any]]) -> str:
    """The Ray engine's memory table (``--memory``), or nothing before it was measured."""
    if not memory:
        return ""
    rows = "\n".join(
        f"| {r['docs']:,} | {r['input_mb']} | {r['files']} | {r['seconds']} | {r['peak_store_used_mib']} | {r['peak_store_spilled_mib']} "
        f"| {r['peak_driver_mib']} | {r['peak_workers_mib']} ({r['most_workers']}) | {r['peak_largest_worker_mib']} "
        f"| {r['peak_ray_processes_mib']} | {load_change(r)} |"
        for r in memory["runs"]
    )
    return f"""
## Memory: the Ray engine streams

Generated by `python benchmarks/annotate.py --memory` (`--engines ray` alone). The inputs and the
pipeline of the local engine's table, through `annotate()` with `engine="ray"`: 2 actors of 1
CPU, batch size 64, Parquet output, 10,000 rows per part file, in a local Ray that the run
starts with its object store capped at {RAY_OBJECT_STORE_MB} MiB (`object_store_mb={RAY_OBJECT_STORE_MB}`, on the command
line `--object-store-mb {RAY_OBJECT_STORE_MB}`; the store's size as Ray reported it: {fmt_sizes(memory, 'peak_store_capacity_mib')} MiB). A
thread of the driver polls every 0.2 s and keeps the peaks of: **object store in use**,
`object_store_memory` of `ray.cluster_resources()` less that of `ray.available_resources()`
(what the raylet reports of its plasma store: the bytes of the objects it holds); **spilled**,
the bytes of the files in the session's `ray_spilled_objects_*` folder; the RSS (psutil) of the
**driver** (the process that called `annotate()`: reading the input for its checks, receiving
the rows, writing the part files); the summed RSS of the **workers**, the processes named
`ray::` (the 2 actors, the read tasks' worker, Ray Data's 3 own actors, idle, spill and restore
workers, and Ray's 2 agents, `ray::DashboardAgent` and `ray::RuntimeEnvAgent`, some 80 MiB
each; the most at once in brackets; a worker's RSS counts the shared pages it mapped, the
object store's included, so the sum counts those more than once), the **largest worker** (an
actor: Python, spaCy, the pipeline, the object-store pages of its blocks); and the summed RSS
of **Ray's other processes** (GCS, raylet, log monitor). Machine: {memory['machine']} (no
GPU); spaCy {memory['versions']['spacy']}, pyarrow {memory['versions']['pyarrow']}, Ray {memory['versions']['ray']}.
{memory.get('note', '')}

| documents | INPUT (MB) | part files | seconds | object store in use (MiB) | spilled (MiB) | driver RSS (MiB) | workers RSS (MiB) (processes) | largest worker (MiB) | Ray's processes (MiB) | load average (1/5/15 min) before → after |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
{rows}

What a run holds at once: the JSONL file is read in line-aligned ranges of 4 MiB (a read task
each, asking for no CPU, at most one per two actors at once), whose records go to the actors
in blocks of at most 1,024; Ray Data's backpressure stops the reading when its blocks fill its
budget of the object store (half of the store by default, so {RAY_OBJECT_STORE_MB // 2} MiB here), so what the
store holds is bounded by that budget, not by INPUT, and nothing is materialised. Each actor
annotates a block's batches in `nlp.memory_zone()`, so its vocabulary forgets their new words;
the driver receives the rows block by block and writes a part file every 10,000 rows. What
still grows with INPUT: the ids, as on the local engine (the driver's duplicate check keeps
each id once).
"""


def fmt_sizes(memory: Dict[str, Any], key: str) -> str:
    """The distinct values of ``key`` over the runs, joined (one value when all runs agree)."""
    return " / ".join(sorted({str(r[key]) for r in memory["runs"]}))


if __name__ == "__main__":
    main()
