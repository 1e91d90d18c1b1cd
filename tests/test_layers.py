"""The layers of the brief, read from the source: the core library imports neither the plugin
(``spacy_ner_project.components``) nor the command-line libraries; the components never import
the command line; and the command line answers ``--help`` (the command list and every command's)
without loading spaCy.

Core = every module under spacy_ner_project/ except cli.py and commands/ (the command layer).
Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import pytest

from spacy_ner_project.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spacy_ner_project"
COMPONENTS = ROOT / "components"  # installed as spacy_ner_project.components (setup.cfg package_dir)
COMMAND_LAYER = ("spacy_ner_project.cli", "spacy_ner_project.commands")
CORE_FORBIDDEN = ("spacy_ner_project.components", "typer", "click", "wasabi")
COMPONENTS_FORBIDDEN = COMMAND_LAYER


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def imports(path: Path, module: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in the file; ``from a import b`` yields
    ``a.b`` too (b may be a module). Relative imports are resolved against ``module``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def violations(files: Sequence[Tuple[Path, str]], forbidden: Sequence[str]) -> List[str]:
    found = []
    for path, module in files:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for line, name in imports(path, module):
            if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                found.append(f"{shown}:{line}: imports {name}")
    return sorted(set(found))


def core_files() -> List[Tuple[Path, str]]:
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path, PACKAGE, "spacy_ner_project")
        if not any(module == layer or module.startswith(layer + ".") for layer in COMMAND_LAYER):
            files.append((path, module))
    return files


def component_files() -> List[Tuple[Path, str]]:
    return [(path, module_name(path, COMPONENTS, "spacy_ner_project.components")) for path in sorted(COMPONENTS.rglob("*.py"))]


def test_the_file_lists_are_not_empty() -> None:
    core = {module for _, module in core_files()}
    assert {"spacy_ner_project.conll.reader", "spacy_ner_project.evaluation.evaluate"} <= core
    assert not any(module.startswith(COMMAND_LAYER) for module in core)
    assert "spacy_ner_project.components.models" in {module for _, module in component_files()}


def test_the_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(
        "import typer\n"
        "def f():\n    from wasabi import msg\n"
        "from .. import components\n"
        "from ..commands.convert import convert_cli\n"
    )
    names = [name for _, name in imports(path, "spacy_ner_project.sub.mod")]
    assert "typer" in names and "wasabi.msg" in names
    assert "spacy_ner_project.components" in names and "spacy_ner_project.commands.convert" in names
    assert violations([(path, "spacy_ner_project.sub.mod")], CORE_FORBIDDEN) == [
        f"{path}:1: imports typer",
        f"{path}:3: imports wasabi",
        f"{path}:3: imports wasabi.msg",
        f"{path}:4: imports spacy_ner_project.components",
    ]
    assert violations([(path, "spacy_ner_project.sub.mod")], COMPONENTS_FORBIDDEN) == [
        f"{path}:5: imports spacy_ner_project.commands.convert",
        f"{path}:5: imports spacy_ner_project.commands.convert.convert_cli",
    ]


def test_core_imports_neither_the_plugin_nor_the_cli_libraries() -> None:
    assert violations(core_files(), CORE_FORBIDDEN) == []


def test_components_never_import_the_command_line() -> None:
    assert violations(component_files(), COMPONENTS_FORBIDDEN) == []


HEAVY = ("spacy", "thinc", "torch", "numpy", "matplotlib", "spacy_llm", "jinja2")  # none of them for --help
# An option of each command (none of the group's): its --help came from the command's own module.
HELP_SHOWS = {
    "convert": "--scheme",
    "train": "--backbone",
    "evaluate": "--displacy-limit",
    "llm-evaluate": "--max-failed",
    "llm-assemble": "--unit",
    "visualize": "--limit",
    "serve-llm": "--n-ctx",
    "annotate": "--llm-capacity",
    "check-data": "--file",
    "package": "--plugin-source",
    "sample": "--gold",
    "silver": "--lang",
    "distil": "--keep",
}


@pytest.mark.parametrize("args", [["--help"], *([name, "--help"] for name in sorted(COMMANDS))], ids=" ".join)
def test_the_command_line_lists_commands_without_spacy(args: List[str]) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from spacy_ner_project.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
        "print(result.output)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    heavy, _, output = result.stdout.partition("\n")
    assert heavy == "", f"{' '.join(args)} imports {heavy}"
    if args == ["--help"]:
        assert all(name in output for name in COMMANDS)
    else:
        assert HELP_SHOWS[args[0]] in output
