"""Benchmark (not a test): docs/second of LLM NER through a local server at 200 ms latency.

Runs, in one process and on the same synthetic docs (written here, not CoNLL data):

1. spacy_ner_project.JsonNER.v1 + spacy_ner_project.OpenAICompatible.v1, concurrency 1 and 8,
   each with a fresh SQLite response cache (so the timing includes the cache writes);
2. the same task + spacy-llm's built-in ``spacy.GPT-3-5.v3`` with ``endpoint`` pointed at the
   same server (it sends requests one at a time). Its constructor always calls
   ``GET https://api.openai.com/v1/models`` (``OpenAI._verify_auth``) whatever ``endpoint`` says,
   which fails offline; this script replaces only that validation method with a no-op and sets a
   dummy ``OPENAI_API_KEY``. Nothing else of the built-in model is changed;
3. a rerun of (1) with concurrency 8 through the cache filled by its first run, in a newly
   built pipeline (as a new process would be): no request reaches the server.

The server (tests/chat_server.py) sleeps ``--latency`` seconds per request and answers with a
dictionary "LLM" that returns the entities of the text in the prompt as JSON. Writes
benchmarks/llm_throughput.json and .md. Usage::

    python benchmarks/llm_throughput.py [--docs 64] [--latency 0.2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import spacy
from spacy.language import Language

import common  # benchmarks/common.py
from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from chat_server import ChatServer, dictionary_responder, last_quoted_block  # noqa: E402

PEOPLE = ["Alice Martin", "Ravi Patel", "Chen Wei", "Maria Lopez", "John Okafor", "Sofia Rossi", "Lars Berg", "Amina Diallo"]
ORGS = ["Globex", "Initech", "Acme Corporation", "Northwind Bank", "the Red Cross", "Umbrella Labs"]
PLACES = ["Lisbon", "Nairobi", "Osaka", "Toronto", "the Alps", "Buenos Aires", "Oslo"]
MISC = ["Olympic Games", "Nobel Prize", "Brazilian", "Python"]
TEMPLATES = [
    "{per} met executives from {org} in {loc} on Monday.",
    "{org} said {per} will lead its office in {loc}.",
    "After the {misc}, {per} returned to {loc}.",
    "{per} and {per2} signed the deal with {org}.",
    "Shares of {org} rose after {per} praised the {misc} plan in {loc}.",
]


def synthetic_texts(n: int) -> List[str]:
    """Deterministic news-like sentences with known entities."""
    texts = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        texts.append(
            template.format(
                per=PEOPLE[i % len(PEOPLE)],
                per2=PEOPLE[(i + 3) % len(PEOPLE)],
                org=ORGS[i % len(ORGS)],
                loc=PLACES[i % len(PLACES)],
                misc=MISC[i % len(MISC)],
            )
        )
    return texts


def lexicon() -> Dict[str, str]:
    entries = {**{p: "PER" for p in PEOPLE}, **{o: "ORG" for o in ORGS}, **{p: "LOC" for p in PLACES}}
    entries.update({m: "MISC" for m in MISC})
    return entries


def build_nlp(model: Dict[str, Any]) -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "llm",
        config={"task": {"@llm_tasks": "spacy_ner_project.JsonNER.v1", "labels": ["PER", "ORG", "LOC", "MISC"]}, "model": model},
    )
    nlp.initialize()
    return nlp


def ours(base_url: str, *, concurrency: int, cache: Path) -> Dict[str, Any]:
    return {
        "@llm_models": "spacy_ner_project.OpenAICompatible.v1",
        "base_url": base_url,
        "model": "local-test",
        "concurrency": concurrency,
        "context_length": 4096,
        "cache": {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": str(cache)},
    }


def builtin_gpt(base_url: str) -> Dict[str, Any]:
    return {
        "@llm_models": "spacy.GPT-3-5.v3",
        "name": "gpt-3.5-turbo",
        "endpoint": f"{base_url}/chat/completions",
        "config": {"temperature": 0.0},
    }


def allow_builtin_openai_offline() -> None:
    """Skip only the built-in OpenAI model's construction-time call to api.openai.com."""
    from spacy_llm.models.rest.openai.model import OpenAI

    OpenAI._verify_auth = lambda self: None  # type: ignore[method-assign]
    os.environ.setdefault("OPENAI_API_KEY", "sk-local-benchmark-not-a-key")


def timed_run(nlp: Language, texts: List[str], batch_size: int) -> Tuple[float, List[List[Tuple[int, int, str]]]]:
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    return seconds, [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]


def measure(
    name: str,
    make: Callable[[int], Language],
    server: ChatServer,
    texts: List[str],
    *,
    repeats: int,
    batch_size: int,
) -> Tuple[Dict[str, Any], List[List[Tuple[int, int, str]]]]:
    times, max_in_flight, requests = [], 0, 0
    ents: List[List[Tuple[int, int, str]]] = []
    for repeat in range(repeats):
        nlp = make(repeat)
        server.reset()
        seconds, ents = timed_run(nlp, texts, batch_size)
        times.append(seconds)
        max_in_flight = max(max_in_flight, server.max_in_flight)
        requests = len(server.chat_requests)
    median = statistics.median(times)
    result = {
        "setup": name,
        "docs": len(texts),
        "repeats": repeats,
        "seconds_median": round(median, 3),
        "seconds_all": [round(t, 3) for t in times],
        "docs_per_second": round(len(texts) / median, 2),
        "server_requests_last_run": requests,
        "max_requests_in_flight": max_in_flight,
    }
    print(f"{name}: {result['docs_per_second']} docs/s (median of {repeats}: {median:.2f}s)", flush=True)
    return result, ents


def write_markdown(path: Path, report: Dict[str, Any]) -> None:
    m = report["machine"]
    lines = [
        "# LLM NER throughput through a local chat-completions server",
        "",
        f"Written by `benchmarks/llm_throughput.py` on {report['date']}. Server: tests/chat_server.py on",
        f"127.0.0.1, {report['latency_s'] * 1000:.0f} ms latency per request, dictionary responder;",
        f"{report['docs']} synthetic one-sentence docs (one prompt each), `nlp.pipe(batch_size={report['batch_size']})`,",
        f"median of {report['repeats']} runs per setup.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} CPUs (shared with other jobs), {m['platform']},",
        f"Python {m['python']}, spaCy {m['spacy']}, spacy-llm {m['spacy-llm']}, httpx {m['httpx']}.",
        "",
        "| Setup | docs/s | median s | requests to server | max in flight |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['setup']} | {r['docs_per_second']} | {r['seconds_median']} | {r['server_requests_last_run']} | {r['max_requests_in_flight']} |"
        )
    lines += [
        "",
        f"Same entities from every setup: {report['same_entities']}.",
        "",
        "Notes:",
        "- spacy-llm's `spacy.GPT-3-5.v3` calls `GET https://api.openai.com/v1/models` in its",
        "  constructor whatever `endpoint` says, which fails offline. The benchmark replaces only",
        "  that validation method (`OpenAI._verify_auth`) with a no-op and sets a dummy",
        "  `OPENAI_API_KEY`; its requests then go to the local server, one at a time.",
        "- The cached rerun builds a new pipeline on the cache file written by the first",
        "  concurrency-8 run, as a new process would; no request reaches the server.",
        f"- Ideal times at this latency: sequential {report['docs'] * report['latency_s']:.1f} s,",
        f"  8 at a time {report['docs'] * report['latency_s'] / 8:.1f} s.",
    ]
    common.write_markdown(path, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "llm_throughput")
    args = parser.parse_args()

    texts = synthetic_texts(args.docs)
    allow_builtin_openai_offline()
    results: List[Dict[str, Any]] = []
    outputs: List[List[List[Tuple[int, int, str]]]] = []
    with tempfile.TemporaryDirectory() as tmp, ChatServer(
        responder=dictionary_responder(lexicon(), text_of=last_quoted_block), latency=args.latency
    ) as server:
        base_url = server.base_url
        cache_dir = Path(tmp)
        runs: List[Tuple[str, Callable[[int], Language]]] = [
            ("JsonNER.v1 + OpenAICompatible.v1, concurrency 1",
             lambda r: build_nlp(ours(base_url, concurrency=1, cache=cache_dir / f"c1-{r}.sqlite"))),
            ("JsonNER.v1 + OpenAICompatible.v1, concurrency 8",
             lambda r: build_nlp(ours(base_url, concurrency=8, cache=cache_dir / f"c8-{r}.sqlite"))),
            ("JsonNER.v1 + spacy.GPT-3-5.v3 (built-in, sequential)", lambda r: build_nlp(builtin_gpt(base_url))),
            ("JsonNER.v1 + OpenAICompatible.v1, concurrency 8, rerun through the cache",
             lambda r: build_nlp(ours(base_url, concurrency=8, cache=cache_dir / "c8-0.sqlite"))),
        ]
        for name, make in runs:
            result, ents = measure(name, make, server, texts, repeats=args.repeats, batch_size=args.batch_size)
            results.append(result)
            outputs.append(ents)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": common.machine("spacy-llm", "httpx"),
        "latency_s": args.latency,
        "docs": args.docs,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "same_entities": all(o == outputs[0] for o in outputs),
        "entities_found": sum(len(doc) for doc in outputs[0]),
        "results": results,
    }
    common.write_json(args.out.with_suffix(".json"), report)
    write_markdown(args.out.with_suffix(".md"), report)
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
