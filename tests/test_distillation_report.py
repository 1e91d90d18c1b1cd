"""benchmarks/distillation.py's table and the fewer-layers bound it gives benchmarks/inference_speed.md,
from small hand-written reports: no pipeline, no data, only the rendering."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import distillation  # noqa: E402 - benchmarks/distillation.py
import inference_speed  # noqa: E402 - benchmarks/inference_speed.py


def scores(f: float) -> dict[str, float]:
    return {"ents_p": f, "ents_r": f, "ents_f": f}


REPORT: dict[str, Any] = {
    "argv": ["--teacher", "training/t/model-best", "--keep", "0,2,4,5"],
    "machine": {"cpu": "Test CPU", "cores": 2, "torch": "2", "spacy-transformers": "1.4", "transformers": "4.53"},
    "teacher": {"path": "training/t/model-best", **scores(93.0)},
    "f1_data": "dev.txt",
    "students": [
        {"keep": [0, 2, 4, 5], "path": "training/distil/keep_0_2_4_5", "distil_seconds": 600,
         "distillation": {"teacher_layers": 6, "keep": [0, 2, 4, 5], "windows": 100, "epochs": 8,
                          "epoch_losses": [0.4, 0.2], "note": "made by hand for this test"},
         "distilled": scores(91.5),
         "fine_tuned": {"path": "training/distil/keep_0_2_4_5_ft1000/model-best", "steps": 1000, **scores(92.0)}},
        {"keep": [0, 1, 2, 3, 5], "path": "training/distil/keep_0_1_2_3_5",
         "distillation": {"teacher_layers": 6, "keep": [0, 1, 2, 3, 5], "windows": 100, "epochs": 8, "epoch_losses": [0.3]},
         "distilled": scores(92.8)},
    ],
    "compare": [{"label": "from scratch", "path": "training/x", **scores(92.5)}],
}


def test_the_table_gives_each_pipeline_against_the_teacher() -> None:
    text = distillation.markdown(REPORT)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| teacher | 6 |")
    assert "| 4 | 91.50 | 91.50 | 91.50 | -1.50 | 8 epochs on 100 windows, 10 min; loss 0.400 → 0.200 |" in rows[1]
    assert "| 4 | 92.00 | 92.00 | 92.00 | -1.00 | 1000 steps on gold |" in rows[2]
    assert "| 5 | 92.80 | 92.80 | 92.80 | -0.20 |" in rows[3]
    assert rows[4].startswith("| from scratch (`training/x`) |") and "| -0.50 |" in rows[4]
    assert "- `training/distil/keep_0_2_4_5`: made by hand for this test" in text


def test_the_speed_bound_names_the_fewer_layers_within_and_beyond_the_goal(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "distillation.json").write_text(__import__("json").dumps(REPORT))
    monkeypatch.setattr(inference_speed, "ROOT", tmp_path)
    students = inference_speed._distillation_bounds({"pipeline": {"path": "training/t/model-best"}})
    assert [(s["layers"], s["distilled"], s["fine_tuned"]) for s in students] == [(4, 91.5, 92.0), (5, 92.8, None)]
    [line] = inference_speed._fewer_layers_line(students)
    assert "4 layers 91.50, 92.00 fine-tuned on gold (beyond the goal's 0.3 F1)" in line
    assert "5 layers 92.80 (within the goal's 0.3 F1)" in line and "against its 93.00" in line
    assert inference_speed._distillation_bounds({"pipeline": {"path": "training/other/model-best"}}) == []


def test_a_contender_in_worker_threads_reads_the_f1_scored_in_worker_threads() -> None:
    from inference_speed_levers import Setting  # benchmarks/inference_speed_levers.py

    f1 = {
        "pipelines": [{"precision": "onnx-int8", "no_overlap": False, "delta_vs_float32": -0.28}],
        "in_worker_threads": [{"precision": "onnx-int8", "no_overlap": False, "workers": 2, "delta_vs_float32": -0.21}],
        "distilled": [{"precision": "onnx-int8", "workers": 2, "delta_vs_float32": -0.43},
                      {"precision": "bf16", "delta_vs_float32": -0.44}],  # a record from before worker threads
    }
    pipe = Setting(precision="onnx-int8", inputs="documents")
    threads = Setting(precision="onnx-int8", inputs="documents", workers=2)
    found = inference_speed.contender_f1(f1, {"in nlp.pipe": pipe, "in threads": threads},
                                         {"distilled int8": threads, "distilled bf16": Setting(precision="bf16"),
                                          "distilled int8, nlp.pipe": pipe})
    assert found == {"in nlp.pipe": -0.28, "in threads": -0.21, "distilled int8": -0.43, "distilled bf16": -0.44}
