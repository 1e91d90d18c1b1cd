"""The HTML report in a real headless browser (Debian's chromium, driven over DevTools).

The page must load from file:// with no console message, no exception and no failed load, and
show the per-type tables, the confusion images (decoded), the displaCy renderings and, per
pipeline, the text with each entity marked where it differs from gold (colour, a visible tag,
struck-through and underlined text, a gold / predicted tooltip); that section is also saved as
a screenshot (``diff.png`` beside the report) to look at. A page with a script error and a
missing image is loaded the same way to show the check does catch them.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import spacy
from spacy.tokens import DocBin, Span
from test_report import BAD_PATTERNS, GOLD, GOOD_PATTERNS, ruler_pipeline

from spacy_ner_project.evaluation.evaluate import evaluate_pipelines, read_gold
from spacy_ner_project.scoring.matching import MODES
from spacy_ner_project.evaluation.report import write_report

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]
websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]
# What the page shows, read from the DOM once it has loaded.
PROBE = """JSON.stringify({
  tables: document.querySelectorAll("table").length,
  captions: Array.from(document.querySelectorAll("caption")).map(c => c.textContent),
  overallRows: document.querySelectorAll("tr.overall").length,
  renderings: document.querySelectorAll("div.entities").length,
  marks: document.querySelectorAll("div.entities mark").length,
  images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
  title: document.title,
  diffs: Array.from(document.querySelectorAll(".doc-grid span.diff")).map(e => [e.className, e.title]),
  tagsShown: Array.from(document.querySelectorAll(".doc-grid .diff-tag")).map(e => e.getBoundingClientRect().width > 0),
  goldOnly: (e => e && getComputedStyle(e).textDecorationLine)(document.querySelector(".doc-grid .seg-gold")),
  predOnly: (e => e && getComputedStyle(e).textDecorationLine)(document.querySelector(".doc-grid .seg-pred")),
  legendRows: document.querySelectorAll("table.diff-legend tbody tr").length
})"""
# The page box of the "where predictions differ" section: its heading to the next heading.
DIFF_BOX = """(() => {
  const headings = Array.from(document.querySelectorAll("h2"));
  const start = headings.find(h => h.textContent.startsWith("Where predictions differ"));
  const end = headings[headings.indexOf(start) + 1];
  const top = start.getBoundingClientRect().top + window.scrollY - 8;
  return JSON.stringify({x: 0, y: top, width: document.documentElement.scrollWidth,
                         height: end.getBoundingClientRect().top + window.scrollY - top, scale: 1});
})()"""


class Browser:
    """A headless chromium and a DevTools session on its first page."""

    def __init__(self, user_data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = self._devtools_port(timeout=60)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self.socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self._id = 0
        self.events: List[Dict[str, Any]] = []

    def _devtools_port(self, *, timeout: float) -> int:
        found: List[int] = []

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
                if match:
                    found.append(int(match.group(1)))
            # keep draining stderr so chromium never blocks on a full pipe

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        return found[0]

    def send(self, method: str, **params: Any) -> Dict[str, Any]:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout}s")
            self.socket.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.socket.recv()))

    def drain(self, seconds: float) -> None:
        self.socket.settimeout(seconds)
        try:
            while True:
                self.events.append(json.loads(self.socket.recv()))
        except websocket.WebSocketTimeoutException:
            pass

    def load(self, url: str) -> Dict[str, Any]:
        """Open ``url``; return the page's problems and what the PROBE reads from its DOM."""
        self.events.clear()
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.drain(0.5)
        problems = [
            e for e in self.events
            if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded", "Network.loadingFailed")
        ]
        requested = [
            e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"
        ]
        probe = json.loads(self.send("Runtime.evaluate", expression=PROBE, returnByValue=True)["result"]["value"])
        return {"problems": problems, "requested": requested, **probe}

    def screenshot(self, clip_expression: str) -> bytes:
        """PNG of the page box that ``clip_expression`` returns as JSON (x, y, width, height, scale)."""
        clip = json.loads(self.send("Runtime.evaluate", expression=clip_expression, returnByValue=True)["result"]["value"])
        shot = self.send("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    session = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser-report")
    nlp = spacy.blank("en")
    doc_bin = DocBin()
    for text, ents in GOLD:
        doc = nlp.make_doc(text)
        doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
        doc_bin.add(doc)
    doc_bin.to_disk(root / "gold.spacy")
    evaluation = evaluate_pipelines(
        {"trained": ruler_pipeline(GOOD_PATTERNS), "llm": ruler_pipeline(BAD_PATTERNS)}, read_gold(root / "gold.spacy")
    )
    return write_report(evaluation, root / "report", displacy_limit=3)["report.html"]


def test_report_loads_cleanly_and_shows_tables_images_and_renderings(browser: Browser, report: Path) -> None:
    page = browser.load(report.as_uri())
    assert page["problems"] == [], "console messages, exceptions or failed loads"
    external = [url for url in page["requested"] if not url.startswith("data:")]
    assert external == [report.as_uri()], "the page must load nothing but itself and data: URIs"
    assert page["title"] == "NER evaluation report"
    assert page["captions"].count("trained") == page["captions"].count("llm") == 1 + len(MODES)
    assert page["overallRows"] == 2 * (1 + len(MODES))
    assert page["renderings"] == 3 * (3 + 3)  # gold + 2 pipelines, 3 disagreeing + 3 sampled docs
    assert page["marks"] > 0
    assert len(page["images"]) == 2
    assert all(complete and width > 100 and height > 100 for complete, width, height in page["images"])


def test_report_marks_where_each_prediction_differs_from_gold(browser: Browser, report: Path) -> None:
    browser.send("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1, mobile=False)
    page = browser.load(report.as_uri())
    assert page["problems"] == []
    classes = [cls for cls, _ in page["diffs"]]
    assert {"diff diff-correct", "diff diff-missed", "diff diff-spurious", "diff diff-wrong_type", "diff diff-wrong_boundary"} <= set(classes)
    assert all(" — gold: " in title and " / predicted: " in title for _, title in page["diffs"])
    assert "wrong type — gold: LOC “Berlin” / predicted: ORG “Berlin”" in [title for _, title in page["diffs"]]
    assert page["tagsShown"] and all(page["tagsShown"]), "every marked span shows its tag"
    assert (page["goldOnly"], page["predOnly"]) == ("line-through", "underline")  # readable without colour
    assert page["legendRows"] == 6 + 2  # the categories, then struck-through and underlined
    png = browser.screenshot(DIFF_BOX)
    assert png.startswith(b"\x89PNG")
    (report.parent / "diff.png").write_bytes(png)


def test_the_check_catches_errors_and_failed_loads(browser: Browser, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body><table></table>'
        '<img src="missing.png"><script>throw new Error("boom")</script></body></html>'
    )
    page = browser.load(broken.as_uri())
    methods = {p["method"] for p in page["problems"]}
    assert "Runtime.exceptionThrown" in methods
    assert "Network.loadingFailed" in methods or "Log.entryAdded" in methods
    assert page["images"] == [[True, 0, 0]]  # a broken image is told apart from a decoded one
