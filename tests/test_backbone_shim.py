"""The backbone shim (components/backbone_shim.py): parameter averages reach the transformer's
torch weights, and layer-wise learning-rate decay.

thinc's stock ``PyTorchShim.use_params`` ignores the optimizer's averages (it looks for keys
nothing writes); spaCy evaluates and saves under ``use_params(optimizer.averages)``.
"""

from __future__ import annotations

import numpy
import torch
import spacy
from spacy.training import Example
from thinc.api import Adam, PyTorchWrapper

from spacy_ner_project.components.backbone_shim import BackboneShim, layer_lr_scales
from test_quantize import TRAIN, tiny_pipeline


def test_stock_pytorch_shim_ignores_averages() -> None:
    """The thinc behaviour the shim works around; if thinc fixes it, this fails and the
    workaround can go."""
    model = PyTorchWrapper(torch.nn.Linear(3, 2))
    X = numpy.ones((4, 3), dtype="f")
    model.initialize(X=X)
    optimizer = Adam(0.1, use_averages=True)
    for _ in range(5):
        Y, backprop = model.begin_update(X)
        backprop(numpy.ones_like(Y))
        model.finish_update(optimizer)
    assert optimizer.averages
    raw = model.predict(X).copy()
    with model.use_params(optimizer.averages):
        assert numpy.allclose(model.predict(X), raw)


def test_transformer_uses_and_restores_averaged_weights(tmp_path) -> None:
    spacy.util.fix_random_seed(0)
    nlp = tiny_pipeline()
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in TRAIN]
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3, use_averages=True)
    for _ in range(4):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    assert isinstance(shim, BackboneShim)
    module = shim._model
    name, weight = next((n, p) for n, p in module.named_parameters() if (shim.id, n) in optimizer.averages)
    raw = weight.detach().clone()
    average = torch.from_numpy(numpy.asarray(optimizer.averages[(shim.id, name)]))
    assert not torch.allclose(raw, average)
    with nlp.use_params(optimizer.averages):
        assert torch.allclose(dict(module.named_parameters())[name], average)
        nlp.to_disk(tmp_path / "averaged")  # what spaCy's training loop saves
    assert torch.equal(dict(module.named_parameters())[name], raw)  # restored
    reloaded = spacy.load(tmp_path / "averaged")
    loaded = reloaded.get_pipe("transformer").model.layers[0].shims[0]._model
    assert torch.allclose(dict(loaded.named_parameters())[name], average)


def test_layer_lr_scales_decay_from_the_top() -> None:
    names = ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
             "encoder.layer.1.output.dense.bias", "pooler.dense.weight"]
    scales = layer_lr_scales(names, decay=0.5)
    assert scales == {names[0]: 0.125, names[1]: 0.25, names[2]: 0.5, names[3]: 1.0}
    assert set(layer_lr_scales(names, decay=1.0).values()) == {1.0}


def _backbone_steps(decay: float) -> dict[str, float]:
    """Mean absolute change of the embeddings and the top layer after a few updates."""
    spacy.util.fix_random_seed(0)
    nlp = tiny_pipeline(layer_lr_decay=decay)
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in TRAIN]
    nlp.initialize(lambda: examples)
    module = nlp.get_pipe("transformer").model.layers[0].shims[0]._model
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    optimizer = Adam(1e-3)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    after = dict(module.named_parameters())
    change = {n: float((after[n].detach() - before[n]).abs().mean()) for n in before}
    return {"embeddings": change["embeddings.word_embeddings.weight"],
            "top": change["encoder.layer.5.output.dense.weight"]}


def test_layer_lr_decay_slows_the_lower_layers() -> None:
    flat, decayed = _backbone_steps(1.0), _backbone_steps(0.5)
    # Adam's step size is about lr * scale: the embeddings (scale 0.5 ** 7) nearly stop, the top layer
    # (scale 0.5) moves about half as far as without decay
    assert decayed["embeddings"] < 0.05 * flat["embeddings"]
    assert 0.3 * flat["top"] < decayed["top"] < 0.7 * flat["top"]
