"""Distilling a pipeline's backbone into fewer layers (spacy_ner_project/training/distil.py, the
``distil`` command).

The teacher is the tiny pipeline of tests/test_quantize.py (the embedded MiniLM, 6 layers, and a
NER overfitted on three invented sentences). A student keeps 4 of its layers and learns their
hidden states on a small invented corpus; it must come closer to the teacher than the same 4
layers untrained, on sentences it never saw, and load as a 4-layer pipeline. A stopped run
resumes from its checkpoint and ends where an unstopped one does.
"""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.language import Language
from spacy.tokens import DocBin
from test_onnx_runtime import CORPUS  # tests/test_onnx_runtime.py
from test_quantize import fit_tiny  # tests/test_quantize.py
from transformers import BertConfig, BertModel
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.errors import UserError
from spacy_ner_project.training import distil as distil_module
from spacy_ner_project.training.distil import (
    CHECKPOINT,
    DistilSettings,
    backbone,
    distil_to_disk,
    student_of,
    teacher_batches,
    train_student,
    use_student,
)

KEEP = (0, 2, 4, 5)
UNSEEN = [
    "Lise Meitner left Berlin for Stockholm in July .",
    "Enrico Fermi built a reactor in Chicago .",
    "Hedy Lamarr patented a radio system with George Antheil .",
    "Niels Bohr taught in Copenhagen .",
]
FAST = dict(epochs=4, learn_rate=3e-4, batch_positions=256, bf16=False)


def tiny_bert(layers: int = 3) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=32,
        initializer_range=0.5,  # layers far from the identity, so skipping one shows
    )
    return BertModel(config).eval()


def write_docs(path: Path, texts: list[str]) -> Path:
    nlp = spacy.blank("en")
    DocBin(docs=[nlp.make_doc(text) for text in texts]).to_disk(path)
    return path


def last_hidden(nlp: Language, texts: list[str]) -> numpy.ndarray:
    docs = list(nlp.get_pipe("transformer").pipe(nlp.make_doc(text) for text in texts))
    return numpy.concatenate([doc._.trf_data.model_output.last_hidden_state.reshape(-1, 384) for doc in docs])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = fit_tiny(tmp_path_factory.mktemp("distil") / "teacher", cpu_mixed_precision=False)
    return path


def test_the_student_starts_as_the_kept_layers_and_the_teacher_is_untouched() -> None:
    teacher = tiny_bert(3)
    before = {name: value.clone() for name, value in teacher.state_dict().items()}
    student = student_of(teacher, keep=(0, 2))
    assert student.config.num_hidden_layers == 2 and len(student.encoder.layer) == 2
    assert teacher.config.num_hidden_layers == 3 and len(teacher.encoder.layer) == 3
    for j, i in enumerate((0, 2)):
        for (name, value), (_, kept) in zip(student.encoder.layer[j].state_dict().items(), teacher.encoder.layer[i].state_dict().items()):
            assert torch.equal(value, kept), name
    assert all(torch.equal(before[name], value) for name, value in teacher.state_dict().items())


def test_a_student_with_every_layer_has_nothing_to_learn_and_one_without_does() -> None:
    teacher = tiny_bert(3)
    inputs = [{"input_ids": torch.tensor([[2, 7, 9, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}]
    whole = teacher_batches(teacher, inputs, keep=(0, 1, 2), progress=False)
    with torch.no_grad():
        assert distil_module._loss(student_of(teacher, keep=(0, 1, 2)), whole[0], bf16=False).item() == pytest.approx(0.0, abs=1e-12)
        skipped = teacher_batches(teacher, inputs, keep=(0, 2), progress=False)
        assert distil_module._loss(student_of(teacher, keep=(0, 2)), skipped[0], bf16=False).item() > 0.1


@pytest.mark.parametrize(
    "options, problem",
    [
        (dict(keep=()), "distinct layers in increasing order"),
        (dict(keep=(2, 1)), "distinct layers in increasing order"),
        (dict(keep=(1, 1)), "distinct layers in increasing order"),
        (dict(epochs=0), "epochs >= 1"),
        (dict(learn_rate=0.0), "learn_rate > 0"),
    ],
)
def test_settings_out_of_bounds_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        DistilSettings(**options)


def test_a_layer_the_teacher_lacks_is_refused() -> None:
    with pytest.raises(UserError, match="the backbone has 3 layers; cannot keep layer 3"):
        student_of(tiny_bert(3), keep=(0, 3))


def test_distilled_pipeline_is_closer_to_the_teacher_than_its_layers_untrained(teacher: Path, tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs.spacy", CORPUS)
    output = tmp_path / "student"
    outcome = distil_to_disk(str(teacher), output, docs=docs, settings=DistilSettings(keep=KEEP, **FAST), progress=False)
    assert (outcome.teacher_layers, outcome.student_layers, outcome.windows) == (6, 4, len(CORPUS))
    assert outcome.epoch_losses[-1] < outcome.epoch_losses[0]
    assert not (output / CHECKPOINT).exists()

    distilled = spacy.load(output)
    hf, _, _ = backbone(distilled)
    assert len(hf.encoder.layer) == 4 and hf.config.num_hidden_layers == 4
    assert distilled.config["components"]["transformer"]["model"]["transformer_config"]["num_hidden_layers"] == 4
    assert distilled.meta["distillation"]["keep"] == list(KEEP)

    original = spacy.load(teacher)
    untrained = spacy.load(teacher)
    use_student(untrained, student_of(backbone(untrained)[0], keep=KEEP))
    for texts, at_most in ((CORPUS, 0.6), (UNSEEN, 0.85)):  # measured: 0.45 (seen) and 0.76 (unseen)
        target = last_hidden(original, texts)
        distilled_error = float(numpy.mean((last_hidden(distilled, texts) - target) ** 2))
        untrained_error = float(numpy.mean((last_hidden(untrained, texts) - target) ** 2))
        print(f"mean squared error to the teacher: distilled {distilled_error:.4f}, untrained {untrained_error:.4f}")
        assert distilled_error < at_most * untrained_error


def test_a_stopped_run_resumes_and_ends_as_an_unstopped_one(teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DistilSettings(keep=KEEP, **{**FAST, "epochs": 2})
    nlp = spacy.load(teacher)
    hf, tokenizer, get_spans = backbone(nlp)
    encoded = distil_module._batches(distil_module.window_texts([nlp.make_doc(t) for t in CORPUS], get_spans), tokenizer, batch_positions=256)
    batches = teacher_batches(hf, encoded, keep=KEEP, progress=False)

    unstopped = student_of(hf, keep=KEEP)
    expected = train_student(unstopped, batches, settings=settings, progress=False)

    checkpoint = tmp_path / CHECKPOINT
    save = distil_module._save_checkpoint

    def save_then_stop(path: Path, state: dict) -> None:
        save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(distil_module, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_student(student_of(hf, keep=KEEP), batches, settings=settings, checkpoint=checkpoint, progress=False)
    monkeypatch.setattr(distil_module, "_save_checkpoint", save)
    resumed = student_of(hf, keep=KEEP)  # fresh weights: the checkpoint must bring epoch 1's
    losses = train_student(resumed, batches, settings=settings, checkpoint=checkpoint, progress=False)
    assert losses == pytest.approx(expected, rel=1e-5)
    for (name, value), (_, other) in zip(resumed.state_dict().items(), unstopped.state_dict().items()):
        assert torch.allclose(value, other, atol=1e-5), name

    with pytest.raises(UserError, match="written with other settings or documents"):
        train_student(student_of(hf, keep=KEEP), batches, settings=DistilSettings(keep=KEEP, **{**FAST, "epochs": 3}), checkpoint=checkpoint, progress=False)
    with pytest.raises(UserError, match="written with other settings or documents"):  # same settings, other texts
        train_student(student_of(hf, keep=KEEP), batches, settings=settings, checkpoint=checkpoint,
                      texts=distil_module.fingerprint(["another text"]), progress=False)


def test_the_command_writes_a_pipeline_and_refuses_bad_input_in_one_line(teacher: Path, tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs.spacy", CORPUS)
    output = tmp_path / "out"
    args = ["distil", str(teacher), str(output), "--docs", str(docs), "--epochs", "1", "--batch-positions", "256"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Distilled 6 layers into 4" in result.output and (output / "config.cfg").exists()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and f"OUTPUT {output} already holds a pipeline" in again.output

    missing = CliRunner().invoke(app, ["distil", str(teacher), str(tmp_path / "o2"), "--docs", str(tmp_path / "none.spacy")])
    assert missing.exit_code == 1 and "none.spacy" in missing.output and "Traceback" not in missing.output

    too_deep = CliRunner().invoke(app, ["distil", str(teacher), str(tmp_path / "o3"), "--docs", str(docs), "--keep", "0,6"])
    assert too_deep.exit_code == 1 and "the backbone has 6 layers; cannot keep layer 6" in too_deep.output
