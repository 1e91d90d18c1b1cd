"""Do the alignment guards (issue 10) cost recall? Answers built from CoNLL dev gold, aligned twice.

    python benchmarks/align_recall.py                       # ../shared/conll2003/dev.txt
    python benchmarks/align_recall.py --dev path/to/dev.txt --baseline-ref 2016312

For every dev sentence the "answer" is its gold entities as {label: [strings]} (each string
once per label), in five variants: clean, UPPER case, lower case, Title Case, and one-character
typos (one letter of each string replaced, at a seeded random position). Each answer is aligned
to the sentence's tokens by ``spacy_ner_project.llm.align`` as it was before the guards (the file at
``--baseline-ref``, loaded from git into a temporary module) and as it is now. A placed span
counts as correct when its token range and label equal a gold entity's. Recall = correct /
gold entities, precision = correct / placed spans. The report holds aggregate figures only
(CoNLL-2003 may not be redistributed). Writes ``benchmarks/align_recall.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Sequence, Tuple

import spacy
from spacy.tokens import Doc

from spacy_ner_project.llm import align as guarded
from spacy_ner_project.conll import iob2_spans, read_conll

from common import HERE, ROOT, percent_of  # benchmarks/common.py

# main before the guards (issue 10 item 4) were added to spacy_ner_project/llm/align.py
BASELINE_REF = "2016312"
SEED = 0
Answer = List[Tuple[str, str]]
Gold = List[Tuple[str, int, int]]


def load_baseline(ref: str) -> ModuleType:
    """spacy_ner_project/align.py as of git ``ref``, imported from a temporary file."""
    try:
        source = subprocess.run(
            ["git", "show", f"{ref}:spacy_ner_project/align.py"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    except subprocess.CalledProcessError as err:
        sys.exit(f"git show {ref}:spacy_ner_project/align.py failed ({err.stderr.strip()}): pass --baseline-ref")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, encoding="utf8") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("align_baseline", handle.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["align_baseline"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        Path(handle.name).unlink()
    return module


def typo(string: str, rng: random.Random) -> str:
    """One letter replaced by another (same case) at a random letter position; unchanged if none."""
    positions = [i for i, ch in enumerate(string) if ch.isalpha()]
    if not positions:
        return string
    i = rng.choice(positions)
    pool = "abcdefghijklmnopqrstuvwxyz".replace(string[i].lower(), "")
    new = rng.choice(pool)
    return string[:i] + (new.upper() if string[i].isupper() else new) + string[i + 1 :]


def variants(rng: random.Random) -> Dict[str, Callable[[str], str]]:
    return {
        "clean": lambda s: s,
        "upper": str.upper,
        "lower": str.lower,
        "title": str.title,
        "typo": lambda s: typo(s, rng),
    }


def sentences(dev: Path) -> List[Tuple[Doc, Gold, Answer]]:
    """(doc, gold (label, start, end) spans, gold answer) per dev sentence that has entities."""
    vocab = spacy.blank("en").vocab
    out = []
    for document in read_conll(dev).documents:
        for sentence in document.sentences:
            spans = iob2_spans(sentence.tags)
            if not spans:
                continue
            doc = Doc(vocab, words=sentence.words)
            gold = [(label, start, end) for start, end, label in spans]
            answer: Answer = []
            for label, start, end in gold:
                pair = (label, doc[start:end].text)
                if pair not in answer:
                    answer.append(pair)
            out.append((doc, gold, answer))
    return out


def score(
    module: ModuleType, data: Sequence[Tuple[Doc, Gold, Answer]], change: Callable[[str], str]
) -> Tuple[int, int, int, Counter]:
    """(gold, placed, correct, unplaced reasons) for one aligner and one answer variant."""
    n_gold = n_placed = n_correct = 0
    reasons: Counter = Counter()
    for doc, gold, answer in data:
        result = module.align_doc(doc, [(label, change(text)) for label, text in answer])
        placed = {(m.label, m.start_token, m.end_token) for m in result.mentions}
        n_gold += len(gold)
        n_placed += len(placed)
        n_correct += len(placed & set(gold))
        reasons.update(u.reason for u in result.unplaced)
    return n_gold, n_placed, n_correct, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "conll2003" / "dev.txt")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git revision of align.py before the guards")
    parser.add_argument("--output", type=Path, default=HERE / "align_recall.md")
    args = parser.parse_args()
    baseline = load_baseline(args.baseline_ref)
    data = sentences(args.dev)
    rows = []
    start = time.perf_counter()
    for name in variants(random.Random(SEED)):
        figures = {}
        for which, module in (("before", baseline), ("guards", guarded)):
            # a fresh RNG per run: both aligners see the same typos
            change = variants(random.Random(SEED))[name]
            figures[which] = score(module, data, change)
        rows.append((name, figures))
    elapsed = time.perf_counter() - start
    lines = [
        "# Alignment guards: placement recall and precision on answers built from gold",
        "",
        f"`python benchmarks/align_recall.py` ({elapsed:.0f} s). CoNLL-2003 dev, {len(data):,} sentences "
        f"with entities, {rows[0][1]['before'][0]:,} gold entities. Each sentence's answer is its gold "
        "entity strings per label (once per label), changed per variant; it is aligned to the "
        "sentence's tokens by `spacy_ner_project.llm.align` before the guards "
        f"(git `{args.baseline_ref}`) and with them. A placed span is correct when its tokens and "
        "label equal a gold entity's. Default `AlignOptions` (fuzzy cutoff 88, at least 4 characters).",
        "",
        "| variant | recall before | recall with guards | precision before | precision with guards | refused by a guard |",
        "|---|---:|---:|---:|---:|---|",
    ]
    guard_reasons = ("no_alnum", "possessive", "function_word", "case_mismatch")
    for name, figures in rows:
        g0, p0, c0, _ = figures["before"]
        g1, p1, c1, reasons = figures["guards"]
        refused = ", ".join(f"{reason} {reasons[reason]}" for reason in guard_reasons if reasons[reason]) or "none"
        lines.append(f"| {name} | {percent_of(c0, g0)} | {percent_of(c1, g1)} | {percent_of(c0, p0)} | {percent_of(c1, p1)} | {refused} |")
    lines += [
        "",
        "Recall below 100 on clean answers comes from gold strings that cannot be told apart by text "
        "alone (the same string tagged once and untagged elsewhere in the sentence, or with two labels); "
        "lower case answers of a function word (`us` for `US`) are refused by design, Title Case and "
        "UPPER case answers cannot land on a mention written all in lower case. Typo recall is the "
        "fuzzy matcher's, unchanged by the guards: one replaced letter in an n-character string "
        "scores 100·(n−1)/n, so only strings of 9 or more characters reach the cutoff of 88.",
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
