"""A trained pipeline as pip-installable wheels that install offline: the pipeline's wheel
(``spacy package``) with the plugin's wheel beside it.

The pipeline's package requires ``spacy-ner-project`` (its config names this plugin's
functions), which is not on PyPI, so the plugin's wheel is built into the same ``dist``
folder and ``pip install --find-links DIST PIPELINE.whl`` finds it there. The pipeline is
packaged from a staged copy whose ``meta.json`` carries the plugin's author, e-mail and
licence where the trained pipeline has none, with the plugin's LICENSE file beside it (spaCy
copies a pipeline folder's LICENSE into the package); the trained folder is never changed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from email.utils import parseaddr
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path
from typing import Dict, Optional

from spacy_ner_project.errors import UserError, one_line

DISTRIBUTION = "spacy-ner-project"
LICENSE_FILE = "LICENSE"


@dataclass(frozen=True)
class Packages:
    """What :func:`build_packages` made: the pipeline's wheel and the plugin's, in one folder."""

    pipeline_wheel: Path
    plugin_wheel: Optional[Path]

    @property
    def install_line(self) -> str:
        """The pip command that installs the pipeline with the plugin from the same folder."""
        return f"pip install --find-links {self.pipeline_wheel.parent} {self.pipeline_wheel}"


def plugin_meta() -> Dict[str, str]:
    """The plugin's author, e-mail, licence and URL from its installed distribution (empty
    values are left out)."""
    try:
        info = metadata(DISTRIBUTION)
    except PackageNotFoundError:
        return {}
    name, email = parseaddr(info.get("Author-email") or "")
    found = {
        "author": info.get("Author") or name,
        "email": email,
        "license": info.get("License") or "",
        "url": info.get("Home-page") or "",
    }
    return {key: value for key, value in found.items() if value and value != "UNKNOWN"}


def stage_pipeline(pipeline: Path, staging: Path, *, license_file: Optional[Path]) -> Path:
    """Copy ``pipeline`` to ``staging`` with the plugin's meta filled in where the pipeline's
    own ``meta.json`` leaves a field empty, and ``license_file`` as LICENSE (unless the
    pipeline has one); returns the staged folder."""
    import srsly  # here, not at the top: `package --help` loads no numpy

    meta_path = pipeline / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{pipeline} has no meta.json; give a trained pipeline folder such as training/ner_trf/model-best")
    shutil.copytree(pipeline, staging)
    meta = srsly.read_json(staging / "meta.json")
    for key, value in plugin_meta().items():
        if not meta.get(key):
            meta[key] = value
    srsly.write_json(staging / "meta.json", meta)
    if license_file is not None and license_file.is_file() and not (staging / LICENSE_FILE).exists():
        shutil.copy(license_file, staging / LICENSE_FILE)
    return staging


def build_plugin_wheel(source: Path, dist: Path) -> Path:
    """Build the plugin's wheel from its source folder (with setup.cfg) into ``dist``: in pip's
    isolated build environment, or with the installed setuptools when that cannot be set up
    (offline)."""
    if not (source / "setup.cfg").is_file():
        raise UserError(f"{source} has no setup.cfg; give the spacy-ner-project source folder (the project's root)")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:  # offline, pip cannot fetch the build requirements: build with the installed setuptools
        result = subprocess.run([*command, "--no-build-isolation"], capture_output=True, text=True)
    if result.returncode != 0:
        tail = one_line(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output")
        raise UserError(f"building the plugin's wheel from {source} failed ({tail}); check that pip can build it there")
    wheels = sorted(dist.glob("spacy_ner_project-*.whl"), key=lambda path: path.stat().st_mtime)
    if not wheels:
        raise UserError(f"pip built no spacy_ner_project wheel into {dist}")
    return wheels[-1]


def build_packages(
    pipeline: Path,
    output_dir: Path,
    *,
    name: Optional[str] = None,
    version: Optional[str] = None,
    plugin_source: Optional[Path] = None,
    force: bool = False,
) -> Packages:
    """``spacy package PIPELINE OUTPUT_DIR --build wheel`` on a staged copy (meta and LICENSE
    as in the module doc), then the plugin's wheel from ``plugin_source`` into the same
    ``dist`` folder (none without a source)."""
    import srsly
    from spacy.cli.package import package

    license_file = plugin_source / LICENSE_FILE if plugin_source is not None else None
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spacy-ner-package-") as tmp:
        staged = stage_pipeline(pipeline, Path(tmp) / pipeline.name, license_file=license_file)
        meta = srsly.read_json(staged / "meta.json")
        before = set(output_dir.glob("*/dist/*.whl"))
        package(staged, output_dir, name=name, version=version, create_wheel=True, force=force)
    lang, final_name = meta["lang"], name or meta["name"]
    final_name = final_name if final_name.startswith(f"{lang}_") else f"{lang}_{final_name}"
    dist = output_dir / f"{final_name}-{version or meta['version']}" / "dist"
    wheels = sorted(dist.glob("*.whl"), key=lambda path: path.stat().st_mtime)
    pipeline_wheels = [wheel for wheel in wheels if not wheel.name.startswith("spacy_ner_project-")]
    if not pipeline_wheels:
        new = sorted(set(output_dir.glob("*/dist/*.whl")) - before)
        raise UserError(f"spacy package made no wheel in {dist} (found: {new or 'none'})")
    plugin_wheel = build_plugin_wheel(plugin_source, dist) if plugin_source is not None else None
    return Packages(pipeline_wheel=pipeline_wheels[-1], plugin_wheel=plugin_wheel)
