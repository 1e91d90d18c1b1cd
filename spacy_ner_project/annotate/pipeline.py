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

Identity: what made an OUTPUT is stored in its manifest (:func:`pipeline_identity`: the source
as given and its kind, the folder's or config file's absolute path, the package's name and
version, a SHA-256 of the pipeline's config and of a folder's files, each LLM component's
model and server), and a resumed run with another pipeline is refused, naming the first thing
that differs (:func:`identity_difference`).

Length: spaCy refuses a text longer than ``nlp.max_length`` with an exception; each worker
raises ``max_length`` to the run's ``max_chars`` when it is lower, so that every text the run
accepts is annotated (longer ones get an ``error`` value before they reach the pipeline).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from spacy_ner_project.errors import UserError
from spacy_ner_project.pipelines import (
    BLANK,
    CACHE_FUNCTION,
    CONFIG,
    FOLDER,
    PACKAGE,
    load_pipeline,
    pipeline_config,
    source_kind,
    use_device,
)

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
    # the run's max_chars: nlp.max_length is raised to it when lower
    max_length: Optional[int] = None
    # what the pipeline is (pipeline_identity), for OUTPUT's manifest
    identity: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Language:
        import spacy

        if self.code is not None:
            spacy.util.import_file("annotate_code", self.code)
        if self.use_gpu:
            use_device(0)  # the worker's own GPU (Ray sets CUDA_VISIBLE_DEVICES)
        nlp = load_pipeline(self.name, overrides=self.overrides)
        if self.max_length is not None and nlp.max_length < self.max_length:
            nlp.max_length = self.max_length
        return nlp


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
    name: str,
    *,
    workers: int,
    capacity: Optional[int],
    cache: Optional[Path],
    code: Optional[Path],
    use_gpu: bool,
    max_length: Optional[int] = None,
    config_overrides: Optional[Mapping[str, Any]] = None,
) -> PipelineSpec:
    """The spec every worker loads: ``config_overrides`` (the user's), then the LLM overrides
    for ``workers`` copies, computed from the config with the user's applied."""
    if code is not None and not code.is_file():
        raise UserError(f"{code} is not a file: give the Python file that registers your custom components")
    kind = source_kind(name)
    user = dict(config_overrides or {})
    config = pipeline_config(name, overrides=user)
    identity = pipeline_identity(name, kind=kind, config=config)
    if kind in (FOLDER, CONFIG):
        name = str(Path(name).resolve())  # workers may run elsewhere (a Ray worker's own directory)
    overrides = {**user, **llm_overrides(config, workers=workers, capacity=capacity, cache=cache, cwd=Path.cwd())}
    train = (config.get("paths") or {}).get("train") if kind == CONFIG else None
    if train:  # a config's few-shot examples, found from any worker's directory
        overrides["paths.train"] = str((Path.cwd() / str(train)).resolve())
    return PipelineSpec(
        name=name,
        overrides=overrides,
        code=str(code.resolve()) if code else None,
        use_gpu=use_gpu,
        max_length=max_length,
        identity=identity,
    )


# -- identity: what made an OUTPUT ---------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folder_digest(folder: Path) -> str:
    """SHA-256 of every file under ``folder`` (relative path and content, in path order): a
    retrained or replaced pipeline saved at the same path has another."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\x00")
        with path.open("rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\x00")
    return digest.hexdigest()


def llm_models(config: Config) -> List[Dict[str, Any]]:
    """Each LLM component's model function, model name and server (None where not configured)."""
    return [
        {"component": name, "function": model.get("@llm_models"), "model": model.get("model"), "base_url": model.get("base_url")}
        for name, model in sorted(llm_components(config).items())
    ]


def _meta(path: Path) -> Dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def pipeline_identity(source: str, *, kind: str, config: Config) -> Dict[str, Any]:
    """What the pipeline ``source`` is, as OUTPUT's manifest stores it (the module docstring)."""
    identity: Dict[str, Any] = {
        "source": source,
        "kind": kind,
        "path": None,
        "name": None,
        "version": None,
        "config_sha256": _sha256(config.to_str()),
        "files_sha256": None,
        "llm": llm_models(config),
    }
    if kind in (FOLDER, CONFIG):
        identity["path"] = str(Path(source).resolve())
    if kind == FOLDER:
        meta = _meta(Path(source) / "meta.json")
        identity.update(name=meta.get("name"), version=meta.get("version"), files_sha256=folder_digest(Path(source)))
    elif kind == PACKAGE:
        import spacy

        identity.update(name=source, version=spacy.util.get_package_version(source))
    elif kind == BLANK:
        identity["name"] = source
    return identity


def _llm_difference(made: List[Mapping[str, Any]], now: List[Mapping[str, Any]]) -> Optional[str]:
    names = ([m["component"] for m in made], [m["component"] for m in now])
    if names[0] != names[1]:
        return f"its LLM components were {names[0]}, this run's are {names[1]}"
    for old, new in zip(made, now):
        for key, what in (("function", "LLM model function"), ("model", "LLM model"), ("base_url", "LLM server")):
            if old.get(key) != new.get(key):
                return f"its {what} was {old.get(key)!r} (component {old['component']!r}), this run's is {new.get(key)!r}"
    return None


def identity_difference(made: Mapping[str, Any], now: Mapping[str, Any]) -> Optional[str]:
    """The first way in which pipeline ``now`` is not the one that ``made`` an OUTPUT, in words; None when it is."""
    if made.get("kind") != now.get("kind") or (made.get("path") is None and made.get("source") != now.get("source")):
        return f"it was made by {made.get('source')} (a {made.get('kind')}), this run's pipeline is {now.get('source')} (a {now.get('kind')})"
    if made.get("path") != now.get("path"):
        return f"it was made by the pipeline at {made.get('path')}, this run's is at {now.get('path')}"
    if (made.get("name"), made.get("version")) != (now.get("name"), now.get("version")):
        return f"it was made by {made.get('name')} version {made.get('version')}, this run's pipeline is {now.get('name')} version {now.get('version')}"
    llm = _llm_difference(list(made.get("llm") or []), list(now.get("llm") or []))
    if llm is not None:
        return llm
    if made.get("config_sha256") != now.get("config_sha256"):
        return f"the pipeline's config has changed since it was made (config SHA-256 {str(made.get('config_sha256'))[:12]} then, {str(now.get('config_sha256'))[:12]} now)"
    if made.get("files_sha256") != now.get("files_sha256"):
        return f"the pipeline's files have changed since it was made (retrained or replaced: files SHA-256 {str(made.get('files_sha256'))[:12]} then, {str(now.get('files_sha256'))[:12]} now)"
    return None
