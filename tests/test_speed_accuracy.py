"""benchmarks/speed_accuracy.py (the speed/accuracy frontier): ``--render-only`` on a small
hand-written report writes the .md table (x HF best, F1 change against the trf default, the
pipeline trained for fewer steps than the shipped config flagged) and the .png. No real data, no
pipeline, no Hugging Face model: only the rendering runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "speed_accuracy.py"


def facts(path: str, *, steps: int, shipped: int = 2800, layers: int | None = 6, override: Any = None) -> dict[str, Any]:
    return {"path": path, "components": ["transformer", "ner"] if layers else ["tok2vec", "ner"], "override": override,
            "meta_dev_ents_f": 90.1, "trained_max_steps": steps,
            "shipped_config": "configs/ner_trf.cfg" if layers else "configs/ner_cnn.cfg", "shipped_max_steps": shipped,
            "backbone_layers": layers, "batch_size": 64, "bf16_autocast": True}


def row(key: str, name: str, words_per_s: float, *, ents_f: float | None = None, **pipeline: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"key": key, "name": name, "system": "hf" if key == "hf" else "ours",
                             "words_per_s": words_per_s, "runs_words_per_s": [words_per_s], "median_wall_s": 1.0,
                             "cores_used": 1.9}
    if ents_f is not None:
        found.update(dev={"ents_p": ents_f, "ents_r": ents_f, "ents_f": ents_f}, pipeline=facts(**pipeline))
    return found


REPORT: dict[str, Any] = {
    "argv": ["--trf", "training/trf/model-best", "--cnn", "training/cnn/model-best"],
    "machine": {"cpu": "Test CPU", "cores": 2, "native_bf16": True, "python": "3.11", "torch": "2", "spacy": "3.8",
                "spacy-transformers": "1.4", "transformers": "4.53", "onnxruntime": "1.22",
                "load_average": [0.1, 0.2, 0.3], "load_average_at_end": [0.4, 0.5, 0.6]},
    "note": "the transformer runs stopped early",
    "repeats": 3, "threads": 2,
    "skipped": [{"system": "--trf-4-layers", "reason": "not given"}],
    "input": {"file": "../shared/conll2003/test.txt", "documents": 60, "sentences": 900, "words": 12000,
              "unit": "words = CoNLL tokens", "hf_chunk_words": 100, "hf_chunks": 130},
    "f1_data": {"file": "../shared/conll2003/dev.txt", "documents": 216},
    "results": [
        row("hf", "HF pipeline, 100-word chunks, batch_size=8, bf16 autocast", 8000.0),
        row("trf", "transformer, default", 10000.0, ents_f=90.0, path="training/trf/model-best", steps=600),
        row("trf-onnx-int8", "transformer, ONNX Runtime int8", 20000.0, ents_f=89.75, path="training/trf/model-best",
            steps=600, override={"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.onnx_backbone.v1",
                                                                     "int8": True}}}),
        row("cnn", "CNN (configs/ner_cnn.cfg)", 40000.0, ents_f=85.5, path="training/cnn/model-best", steps=20000,
            shipped=20000, layers=None),
    ],
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<output>`` after ``--render-only`` on REPORT."""
    output = tmp_path_factory.mktemp("speed_accuracy") / "speed_accuracy"
    output.with_suffix(".json").write_text(json.dumps(REPORT))
    result = subprocess.run([sys.executable, str(SCRIPT), "--render-only", "--output", str(output)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return output


def test_the_markdown_table_has_ratios_to_hf_and_f1_changes(rendered: Path) -> None:
    text = rendered.with_suffix(".md").read_text()
    assert "| system | words/s | x HF best | dev F1 | F1 change vs transformer, default |" in text
    assert "| HF pipeline, 100-word chunks, batch_size=8, bf16 autocast | 8,000 | 1.00 | – | – |" in text
    assert "| transformer, default | 10,000 | 1.25 | 90.00 | reference |" in text
    assert "| transformer, ONNX Runtime int8 | 20,000 | 2.50 | 89.75 | -0.25 |" in text
    assert "| CNN (configs/ner_cnn.cfg) | 40,000 | 5.00 | 85.50 | -4.50 |" in text
    assert "python benchmarks/speed_accuracy.py --trf training/trf/model-best" in text
    assert "[0.1, 0.2, 0.3] at start, [0.4, 0.5, 0.6] at end" in text
    assert "Note: the transformer runs stopped early" in text
    assert "Skipped --trf-4-layers: not given." in text


def test_a_pipeline_trained_for_fewer_steps_than_shipped_is_flagged(rendered: Path) -> None:
    lines = rendered.with_suffix(".md").read_text().splitlines()
    flagged = [line for line in lines if "fewer than the" in line]
    assert len(flagged) == 2  # the trf default and its ONNX variant; not the CNN (its full 20000)
    assert all("trained for 600 steps, fewer than the 2800 of the shipped `configs/ner_trf.cfg`" in line
               for line in flagged)


def test_the_figure_is_written(rendered: Path) -> None:
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib")
    assert rendered.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

