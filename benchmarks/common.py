"""Helpers every benchmark shares: the machine it ran on, percentages, project-relative paths,
and writing its JSON and Markdown. Scores come from the project's one evaluation path
(:func:`spacy_ner_project.evaluation.evaluate.score_pipeline` / ``score_predictions``)."""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Dict, Union

from spacy_ner_project.evaluation.formatting import percent, percent_of, percent_value  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine(*packages: str) -> Dict[str, Any]:
    """What ran the benchmark: CPU, cores, memory, platform, Python, the load average (1/5/15 min)
    and the versions of spaCy and ``packages`` (distribution names, e.g. "torch", "spacy-llm");
    with torch installed also its thread count and quantized engine."""
    info: Dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "gpu": "none",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    info.update({name: package_version(name) for name in ("spacy", *packages)})
    if "torch" in packages:
        import torch

        info.update(torch_threads=torch.get_num_threads(), quantized_engine=torch.backends.quantized.engine)
    return info


def relative(path: Union[str, Path]) -> str:
    """``path`` as the reports name it: relative to the project (``../shared/...`` for the data
    beside it), never an absolute path of the machine; a package name stays as it is."""
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists():
        return str(path)
    return os.path.relpath(candidate.resolve(), ROOT)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_markdown(path: Path, text: str) -> None:
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
