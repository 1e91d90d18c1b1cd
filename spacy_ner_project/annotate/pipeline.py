"""Load PIPELINE the same way in every worker, and bound an LLM pipeline's requests.

PIPELINE is anything :func:`spacy_ner_project.pipelines.load_pipeline` loads (a saved folder,
an installed package, ``blank:LANG``, a config file), checked before any worker starts, with
the same errors as ``evaluate``; each worker then loads it through that same function.

Requests in flight: each worker (a Ray actor or an ``nlp.pipe`` process) gets its own copy of
the pipeline and so its own request pool; with W workers the server would see W × the
configured ``concurrency``. The annotate run therefore sets, through spaCy config overrides
at load, every LLM component's ``model.concurrency`` to ``max(1, capacity // W)``, where
capacity is ``--llm-capacity`` (default: the pipeline's own ``concurrency``). In flight
across all workers: at most ``max(capacity, W)``.

Response cache: a relative cache path is made absolute against the directory the command
runs in (``--llm-cache`` sets another), so every worker on a machine shares one SQLite file
(WAL mode: readers never block the writer; writers take turns). On a cluster the path names
a file on each node's own disk: a per-node cache. Do not put it on a network filesystem
(NFS, SMB): SQLite's locking is unreliable there and WAL needs every process on one host.
A rerun reuses a node's cache for the documents that node annotates again; to reuse every
answer on a cluster, run the rerun on the same single node or copy the cache files together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from spacy_ner_project.errors import UserError
from spacy_ner_project.pipelines import CACHE_FUNCTION, CONFIG, FOLDER, load_pipeline, pipeline_config, source_kind, use_device

if TYPE_CHECKING:
    from spacy.language import Language
    from thinc.api import Config


@dataclass(frozen=True)
class PipelineSpec:
    """What each worker needs to load the pipeline: picklable, small."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    code: Optional[str] = None
    use_gpu: bool = False

    def load(self) -> Language:
        import spacy

        if self.code is not None:
            spacy.util.import_file("annotate_code", self.code)
        if self.use_gpu:
            use_device(0)  # the worker's own GPU (Ray sets CUDA_VISIBLE_DEVICES)
        return load_pipeline(self.name, overrides=self.overrides)


def llm_components(config: Config) -> Dict[str, Dict[str, Any]]:
    """The model block of each ``llm`` component, by component name."""
    found = {}
    for name, component in (config.get("components") or {}).items():
        if component.get("factory") == "llm" and isinstance(component.get("model"), dict):
            found[name] = component["model"]
    return found


def per_worker_concurrency(capacity: int, workers: int) -> int:
    """Each worker's share of the server's capacity (at least one request)."""
    return max(1, capacity // max(1, workers))


def llm_overrides(
    config: Config, *, workers: int, capacity: Optional[int], cache: Optional[Path], cwd: Path
) -> Dict[str, Any]:
    """Config overrides (dot keys) for every LLM component whose model has ``concurrency``
    (spacy_ner_project.OpenAICompatible.v1): its share of the capacity, and the cache path
    (``cache``, else the configured one made absolute against ``cwd``)."""
    from spacy.util import dict_to_dot

    overrides: Dict[str, Any] = {}
    for name, model in llm_components(config).items():
        settings: Dict[str, Any] = {}
        if "concurrency" in model:
            settings["concurrency"] = per_worker_concurrency(capacity or int(model["concurrency"]), workers)
        configured = model.get("cache") if isinstance(model.get("cache"), dict) else None
        if cache is not None and "concurrency" in model:
            settings["cache"] = {"@llm_misc": CACHE_FUNCTION, "path": str(cache.resolve())}
        elif configured is not None and configured.get("@llm_misc") == CACHE_FUNCTION and configured.get("path"):
            settings["cache"] = {"path": str((cwd / str(configured["path"])).resolve())}
        if settings:
            overrides.update(dict_to_dot({"components": {name: {"model": settings}}}, for_overrides=True))
    return overrides


def pipeline_spec(
    name: str, *, workers: int, capacity: Optional[int], cache: Optional[Path], code: Optional[Path], use_gpu: bool
) -> PipelineSpec:
    """The spec every worker loads, with the LLM overrides for ``workers`` copies."""
    if code is not None and not code.is_file():
        raise UserError(f"{code} is not a file: give the Python file that registers your custom components")
    kind = source_kind(name)
    config = pipeline_config(name)
    if kind in (FOLDER, CONFIG):
        name = str(Path(name).resolve())  # workers may run elsewhere (a Ray worker's own directory)
    overrides = llm_overrides(config, workers=workers, capacity=capacity, cache=cache, cwd=Path.cwd())
    train = (config.get("paths") or {}).get("train") if kind == CONFIG else None
    if train:  # a config's few-shot examples, found from any worker's directory
        overrides["paths.train"] = str((Path.cwd() / str(train)).resolve())
    return PipelineSpec(name=name, overrides=overrides, code=str(code.resolve()) if code else None, use_gpu=use_gpu)
