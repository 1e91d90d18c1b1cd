"""Run a pipeline over many texts in worker threads: ``nlp.pipe`` with every core busy.

On the CPU a transformer pipeline leaves cores idle: its backbone runs on all of them, but the
rest (the backbone tokenizer, the alignment, the NER's transition loop) runs on one. In
:func:`pipe_in_threads` each of ``threads`` workers runs the *whole* pipeline on its share of the
texts with one intra-op thread (torch's, and ONNX Runtime's sessions that follow it), so while
one worker is in Python another computes. The parts that compute (torch's products, ONNX
Runtime, spaCy's parser loop, the Rust tokenizer) release Python's GIL.

* Order: docs come back in input order, chunk by chunk (``threads x batch_size`` texts per
  chunk: memory stays bounded on a stream of any length). A chunk's texts are shared out by
  length (characters of a string, tokens of a Doc; longest first to the least loaded worker),
  each worker's share in input order. Workers tokenize their own strings: tokenizing them all
  first took 0.023 s of 12,010 CoNLL words on one core while the other waited.
* Before the workers start, the first text's first ``WARM_UP_TOKENS`` tokens (a copy; its output
  is dropped) run alone in the calling thread: they open what components open lazily (an ONNX
  Runtime session for one intra-op thread; the backbone tokenizer's padding settings, which
  Hugging Face's fast tokenizers change in place) before threads share them. (The whole first
  text ran alone at first: 419 words of 12,010 on one core.)
* Outputs: those of ``nlp.pipe`` up to floating-point rounding (a batch's composition changes
  the order of sums); with int8 activations quantised per call (ONNX Runtime int8) a few
  entities may differ, as with any other batching.
* For pipelines on the CPU: on a GPU the threads would share one device and gain nothing measured
  here (``evaluate`` refuses worker threads with a GPU id).
* torch's thread count is process-wide: it is 1 while workers run and restored between chunks
  and at the end (also on an error or Ctrl-C). Other threads of the process that use torch
  meanwhile run on one thread too.

Speed (benchmarks/inference_speed.md has the figures of its runs): ad hoc, on 2 AMD EPYC cores
over 12,010 CoNLL test words (57 documents), 9 interleaved rounds, two workers ran the default
pipeline (bf16) at 1.09x and with its ONNX Runtime int8 backbone at 1.20x the words/s of
``nlp.pipe`` (medians of the rounds' ratios); three workers 1.17x, four 1.10x (int8, 7 rounds).
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterable, Iterator, List, Optional, Sequence, Union

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

DEFAULT_THREADS = None  # torch's intra-op thread count at the call (nlp.pipe's cores), 2 without torch
WARM_UP_TOKENS = 8  # the first text's first tokens, run alone before the workers start
WARM_UP_CHARS = 200  # the characters of the first text tokenized for them


def share(lengths: Sequence[int], *, parts: int) -> List[List[int]]:
    """Indices ``0..len(lengths)-1`` in ``parts`` shares of similar total length: longest first
    (ties: lower index first) to the share with the least total so far (ties: the first such
    share); each share in increasing index order. Empty shares are dropped."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    shares: List[List[int]] = [[] for _ in range(parts)]
    totals = [0] * parts
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        least = totals.index(min(totals))
        shares[least].append(index)
        totals[least] += lengths[index]
    return [sorted(part) for part in shares if part]


def pipe_in_threads(
    nlp: Language,
    texts: Iterable[Union[str, Doc]],
    *,
    threads: Optional[int] = DEFAULT_THREADS,
    batch_size: Optional[int] = None,
) -> Iterator[Doc]:
    """``nlp.pipe(texts, batch_size=batch_size)`` run by ``threads`` worker threads (see the module
    docstring; None: as many as torch's intra-op threads, the cores ``nlp.pipe`` would use);
    ``threads`` 1 is ``nlp.pipe`` itself. Texts are strings or Docs (as ``nlp.pipe`` takes them);
    ``batch_size`` None is the pipeline's ``nlp.batch_size``."""
    threads = _intra_op_threads() if threads is None else threads
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    size = batch_size or nlp.batch_size
    if threads == 1:
        yield from nlp.pipe(texts, batch_size=size)
        return
    stream = iter(texts)
    chunk = list(itertools.islice(stream, threads * size))
    if not chunk:
        return
    with _one_intra_op_thread():
        list(nlp.pipe([_warm_up_doc(nlp, chunk[0])]))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pipe_in_threads") as pool:
        while chunk:
            shares = share([len(text) for text in chunk], parts=threads)
            with _one_intra_op_thread():
                futures: List[Future] = [pool.submit(_pipe, nlp, [chunk[i] for i in part], batch_size=size)
                                         for part in shares]
                try:
                    results = [future.result() for future in futures]
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
            ordered: List[Optional[Doc]] = [None] * len(chunk)
            for part, result in zip(shares, results):
                for index, doc in zip(part, result):
                    ordered[index] = doc
            yield from ordered  # type: ignore[misc]
            chunk = list(itertools.islice(stream, threads * size))


def _warm_up_doc(nlp: Language, text: Union[str, Doc]) -> Doc:
    """A new Doc of the first WARM_UP_TOKENS tokens of ``text`` (a string: of its first
    WARM_UP_CHARS characters, so a long text is not tokenized twice)."""
    doc = nlp.make_doc(text[:WARM_UP_CHARS]) if isinstance(text, str) else text
    return doc[:WARM_UP_TOKENS].as_doc()


def _pipe(nlp: Language, texts: List[Union[str, Doc]], *, batch_size: int) -> List[Doc]:
    """``nlp.pipe`` on one worker's share (strings are tokenized there, beside the other workers)."""
    return list(nlp.pipe(texts, batch_size=batch_size))


def _intra_op_threads() -> int:
    try:
        import torch
    except ImportError:
        return 2
    return int(torch.get_num_threads())


@contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """torch at one intra-op thread inside the block, its count restored after (no torch: nothing)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
