"""pipe_in_threads (spacy_ner_project/threads.py): nlp.pipe's docs, in order, computed by worker threads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import List

import pytest
import spacy
import torch
from hypothesis import given
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Doc

from spacy_ner_project.threads import pipe_in_threads, share
from test_onnx_runtime import HELD_OUT  # tests/test_onnx_runtime.py
from test_quantize import TEXTS, fit_tiny  # tests/test_quantize.py

STREAM = (TEXTS + HELD_OUT) * 2
SEEN: List[tuple[str, int, str]] = []  # (thread name, torch threads, first token) per doc the recorder saw


@Language.component("test_threads_recorder")
def recorder(doc: Doc) -> Doc:
    SEEN.append((threading.current_thread().name, torch.get_num_threads(), doc[0].text if len(doc) else ""))
    return doc


@Language.component("test_threads_fails")
def fails(doc: Doc) -> Doc:
    raise RuntimeError("this component fails on purpose")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = fit_tiny(tmp_path_factory.mktemp("threads") / "tiny", cpu_mixed_precision=False)
    return path


def entities(docs: List[Doc]) -> List[tuple]:
    return [(doc.text, tuple((ent.start_char, ent.end_char, ent.label_) for ent in doc.ents)) for doc in docs]


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=30), st.integers(min_value=1, max_value=5))
def test_shares_hold_every_index_once_balanced(lengths: List[int], parts: int) -> None:
    shares = share(lengths, parts=parts)
    assert sorted(i for part in shares for i in part) == list(range(len(lengths)))
    assert all(part == sorted(part) and part for part in shares)
    assert len(shares) <= parts
    if len(shares) == parts:  # greedy longest first: no share exceeds another by more than one text
        totals = [sum(lengths[i] for i in part) for part in shares]
        assert max(totals) - min(totals) <= max(lengths)


def test_shares_break_ties_as_written() -> None:
    # longest first, ties by index: 5 (index 1) to share 0, 5 (index 2) to share 1, 3 to share 0
    # (totals tie: the first), 1 to share 1 (the lesser total)
    assert share([3, 5, 5, 1], parts=2) == [[0, 1], [2, 3]]
    assert share([], parts=2) == []
    with pytest.raises(ValueError, match="parts must be at least 1"):
        share([1], parts=0)


def test_threads_give_nlp_pipes_docs_in_order(trained: Path) -> None:
    nlp = spacy.load(trained)
    expected = entities(list(nlp.pipe(STREAM, batch_size=2)))
    assert any(ents for _, ents in expected)
    nlp.add_pipe("test_threads_recorder")
    before = torch.get_num_threads()
    SEEN.clear()
    got = entities(list(pipe_in_threads(nlp, STREAM, threads=2, batch_size=2)))  # chunks of 4 texts
    assert got == expected
    assert torch.get_num_threads() == before
    workers = [(name, count) for name, count, _ in SEEN if name.startswith("pipe_in_threads")]
    assert len(workers) == len(STREAM) and {count for _, count in workers} == {1}
    assert len({name for name, _ in workers}) == 2
    warm_up = [entry for entry in SEEN if not entry[0].startswith("pipe_in_threads")]
    assert warm_up == [(threading.current_thread().name, 1, STREAM[0].split()[0])]  # a copy of the first tokens
    # Docs in, the same; one thread is nlp.pipe itself; nothing in, nothing out
    docs = [nlp.make_doc(text) for text in STREAM[:5]]
    assert entities(list(pipe_in_threads(nlp, docs, threads=3))) == expected[:5]
    assert entities(list(pipe_in_threads(nlp, STREAM[:5], threads=1))) == expected[:5]
    assert list(pipe_in_threads(nlp, [], threads=2)) == []


def test_an_error_in_a_worker_reaches_the_caller_and_torch_threads_come_back(trained: Path) -> None:
    nlp = spacy.load(trained)
    nlp.add_pipe("test_threads_fails")
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="fails on purpose"):
        list(pipe_in_threads(nlp, STREAM, threads=2))
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be at least 1"):
        list(pipe_in_threads(nlp, STREAM, threads=0))
