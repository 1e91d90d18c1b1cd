"""Model architectures registered under ``spacy_architectures``."""

from __future__ import annotations

from typing import Callable, List, Optional

from spacy.tokens import Doc, Span
from spacy_transformers.layers import TransformerModel
from thinc.api import Maxout, Model, chain, concatenate, with_array
from thinc.types import Floats2d

from spacy_ner_project.training.backbone import EMBEDDED, resolve_backbone
from spacy_ner_project.components.blas_ops import use_blas_ops
from spacy_ner_project.components.backbone_shim import (
    DEFAULT_LAYER_LR_DECAY,
    DEFAULT_PACKED_INFERENCE,
    use_backbone_shim,
)
from spacy_ner_project.components.length_buckets import DEFAULT_BUCKET_CALL_COST
from spacy_ner_project.components.precision import enable_cpu_bf16
from spacy_ner_project.components.wordpieces import inference_forward


def transformer_model_v1(
    name: str,
    get_spans: Callable[[List[Doc]], List[List[Span]]],
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    fallback: Optional[str] = EMBEDDED,
    cpu_mixed_precision: bool = False,
    layer_lr_decay: float = DEFAULT_LAYER_LR_DECAY,
    bucket_call_cost: Optional[int] = DEFAULT_BUCKET_CALL_COST,
    packed_inference: bool = DEFAULT_PACKED_INFERENCE,
) -> TransformerModel:
    """spacy-transformers' ``TransformerModel.v3`` whose ``name`` may be ``"embedded"``.

    The name is resolved (see :func:`spacy_ner_project.training.backbone.resolve_backbone`) only
    when the model is initialised for training, never when a trained pipeline is
    loaded: a saved pipeline carries its weights and tokenizer and needs no hub.
    ``fallback`` is used when a hub name cannot be loaded offline (``None``: raise).
    ``cpu_mixed_precision`` runs the backbone in bfloat16 on CPUs that have it natively
    (see :mod:`spacy_ner_project.components.precision`); ``mixed_precision`` is
    spacy-transformers' CUDA float16 setting. ``layer_lr_decay`` < 1 scales the backbone's
    learning rate down layer by layer from the top (see
    :mod:`spacy_ner_project.components.backbone_shim`, which also makes the optimizer's
    parameter averages reach the backbone). At inference on the CPU a BERT backbone computes
    only the windows' real word pieces, no padding (``packed_inference``; see
    :mod:`spacy_ner_project.components.packed_bert`); other backbones, or with it off, run a
    padded batch of windows in length buckets that pad less, split where the padding saved
    outweighs ``bucket_call_cost`` positions per extra call (``None``: one call per batch, as
    spacy-transformers does; see :mod:`spacy_ner_project.components.length_buckets`). At
    inference the word pieces are aligned to tokens in one pass over the tokenizer's offsets
    (:mod:`spacy_ner_project.components.wordpieces`; the same alignment).
    """
    # Copies: spacy-transformers writes into these dicts (e.g. return_dict), and the
    # defaults above are shared by every call.
    model = TransformerModel(
        name,
        get_spans,
        dict(tokenizer_config),
        transformer_config=dict(transformer_config),
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config),
    )
    model._func = inference_forward  # spacy-transformers' forward, its alignment in one pass at inference
    use_backbone_shim(
        model.layers[0],
        layer_lr_decay=layer_lr_decay,
        bucket_call_cost=bucket_call_cost,
        packed_inference=packed_inference,
    )
    if cpu_mixed_precision:
        enable_cpu_bf16(model.layers[0])
    hf_init = model.init

    def init(model: TransformerModel, X=None, Y=None):
        if model.attrs["has_transformer"]:
            return hf_init(model, X=X, Y=Y)
        requested = model.attrs["name"]
        model.attrs["name"] = resolve_backbone(requested, fallback=fallback)
        try:
            return hf_init(model, X=X, Y=Y)
        finally:
            model.attrs["name"] = requested

    model.init = init
    return model


def cased_tok2vec_v1(
    transformer: Model[List[Doc], List[Floats2d]],
    embed: Model[List[Doc], List[Floats2d]],
    width: int,
    maxout_pieces: int = 3,
) -> Model[List[Doc], List[Floats2d]]:
    """Transformer listener vectors concatenated with spaCy hash embeddings, projected.

    An uncased backbone (such as the embedded MiniLM) sees ``Leicestershire``,
    ``LEICESTERSHIRE`` and ``leicestershire`` alike; hash embeddings of SHAPE,
    PREFIX, SUFFIX (and optionally ORTH) give the NER model the case back.
    """
    project = with_array(Maxout(nO=width, nP=maxout_pieces, normalize=True, dropout=0.0))
    model = chain(concatenate(transformer, embed), project)
    model.set_dim("nO", width)
    model.name = "cased_tok2vec"
    return use_blas_ops(model)
