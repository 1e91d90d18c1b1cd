"""annotate on a Ray cluster of two nodes, the second removed mid-run: no record lost or doubled.

A cluster of its own (``ray.cluster_utils.Cluster``: a head of 2 CPUs and a node of 1 CPU in
this machine), so it cannot share the ``ray.init`` of tests/test_annotate.py: run apart from
it, this module starts and stops its cluster around its one test. Three actors of 1 CPU fill
the three CPUs, so one of them runs on the second node; the pipeline is slowed down (a
registered component that sleeps per document and notes, in a file named by its node, each
document it begins) so that the node can be removed while that actor is busy and most rows
are still to come; the notes show that documents it had begun were annotated again on the
head. The head's two CPUs stay: the run must end on them.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import spacy

from spacy_ner_project.annotate import AnnotateOptions, InputSpec, annotate, read_output

pytestmark = pytest.mark.ray

PATTERNS = [{"label": "PER", "pattern": "Anna Kowalski"}, {"label": "LOC", "pattern": "Valmora"}, {"label": "ORG", "pattern": "Helix Motors"}]
DOCS = 400
DELAY = 0.04  # seconds per document: 400 documents are some 16 s of work for the actors
ROWS_PER_FILE = 20  # the driver writes a part every 20 rows: how far the run got is visible

SLOW_CODE = '''
import os
import time
from pathlib import Path

import ray
from spacy.language import Language

@Language.factory("slow_down", default_config={"delay": 0.0, "marker_dir": ""})
def make_slow_down(nlp, name, delay, marker_dir):
    """Sleeps ``delay`` s per doc; with a marker_dir, first appends the doc's first word and
    number ("Report 7") to the file marker_dir/<Ray node id>.<pid>."""
    def slow_down(doc):
        if marker_dir:
            with Path(marker_dir, f"{ray.get_runtime_context().get_node_id()}.{os.getpid()}").open("a") as seen:
                seen.write(doc.text.split(":")[0] + "\\n")
        time.sleep(delay)
        return doc
    return slow_down
'''


@pytest.fixture(scope="module")
def cluster() -> Iterator[Tuple[Any, Any]]:
    """A started cluster (head: 2 CPUs) with a second node (1 CPU), and that node; the driver
    is connected to it for the module's test."""
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.skip("Ray already runs in this process (another module's session): run this module apart")
    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    node = started.add_node(num_cpus=1)
    started.wait_for_nodes()
    ray.init(address=started.address, log_to_driver=False)
    try:
        yield started, node
    finally:
        ray.shutdown()
        started.shutdown()


def write_slow_pipeline(folder: Path, code: Path, marker_dir: Path) -> Path:
    """A ruler pipeline with the slow_down component, saved to disk."""
    code.write_text(textwrap.dedent(SLOW_CODE), encoding="utf-8")
    spacy.util.import_file("annotate_test_slow_down", code)
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(PATTERNS)
    nlp.add_pipe("slow_down", config={"delay": DELAY, "marker_dir": str(marker_dir)})
    nlp.to_disk(folder)
    return folder


def write_corpus(path: Path) -> Path:
    extras = ["", " with Helix Motors", " in Valmora", " and Valmora and Helix Motors"]
    rows = [{"id": f"doc-{i:04d}", "text": f"Report {i}: Anna Kowalski met the board{extras[i % 4]}."} for i in range(DOCS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def rows_written(output: Path) -> int:
    return sum(len(part.read_text(encoding="utf-8").splitlines()) for part in output.glob("part-*.jsonl"))


class NodeKiller(threading.Thread):
    """Removes ``node`` from ``cluster`` once an actor on it is annotating (its marker file),
    noting how many rows OUTPUT held then."""

    def __init__(self, cluster: Any, node: Any, *, marker_dir: Path, output: Path, timeout: float = 600.0) -> None:
        super().__init__(daemon=True)
        self.cluster, self.node = cluster, node
        self.marker_dir, self.output, self.timeout = marker_dir, output, timeout
        self.rows_before: int = -1
        self.run_ended = threading.Event()  # set when the annotate run returned: stop waiting

    def run(self) -> None:
        # no short deadline: on a loaded machine Ray may take minutes to start the actors
        deadline = time.monotonic() + self.timeout
        while not any(self.marker_dir.glob(f"{self.node.node_id}.*")):
            if time.monotonic() > deadline or self.run_ended.is_set():
                return
            time.sleep(0.05)
        time.sleep(0.5)  # a few documents into its batch
        self.rows_before = rows_written(self.output)
        self.cluster.remove_node(self.node)


def docs_seen(marker_dir: Path, node_id: str, *, on: bool) -> Set[str]:
    """The docs the slow_down component began on the node ``node_id`` (``on``) or on the others."""
    files = [path for path in marker_dir.iterdir() if path.name.startswith(node_id) == on]
    return {line for path in files for line in path.read_text().splitlines()}


def comparable(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    found: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        assert row["id"] not in found, f"id {row['id']} written twice"
        found[row["id"]] = row
    return found


def test_a_node_that_dies_mid_run_costs_no_record(cluster: Tuple[Any, Any], tmp_path: Path) -> None:
    import ray

    head, node = cluster
    markers = tmp_path / "markers"
    markers.mkdir()
    code = tmp_path / "slow.py"
    pipeline = write_slow_pipeline(tmp_path / "slow", code, markers)
    source = write_corpus(tmp_path / "in.jsonl")
    output = tmp_path / "ray"
    killer = NodeKiller(head, node, marker_dir=markers, output=output)
    killer.start()
    options = dict(output_format="jsonl", rows_per_file=ROWS_PER_FILE, batch_size=10, progress=False, code=code)
    try:
        annotate(str(pipeline), InputSpec(source), output, options=AnnotateOptions(engine="ray", actors=3, **options))
    finally:
        killer.run_ended.set()
        killer.join()
    assert 0 <= killer.rows_before < DOCS // 2, f"the node was not removed mid-run (rows written before: {killer.rows_before})"
    assert node.node_id not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    redone = docs_seen(markers, node.node_id, on=True) & docs_seen(markers, node.node_id, on=False)
    assert redone, "no document the removed node had begun was annotated again on the head: it died with nothing in flight"
    local = tmp_path / "local"
    quick = {"components.slow_down.delay": 0.0, "components.slow_down.marker_dir": ""}
    annotate(str(pipeline), InputSpec(source), local, options=AnnotateOptions(config_overrides=quick, **options))
    remote, expected = comparable(read_output(output)), comparable(read_output(local))
    assert sorted(remote) == sorted(expected) == [f"doc-{i:04d}" for i in range(DOCS)]
    assert remote == expected and all(row["error"] is None for row in remote.values())
    assert sum(len(row["entities"]) for row in remote.values()) == 2 * DOCS
