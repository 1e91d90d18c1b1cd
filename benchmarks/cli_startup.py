"""Start-up time of the command line, this tree against a git ref, in one run.

    python benchmarks/cli_startup.py --before dc0f0a4 --runs 7 [--after REF]

For each tree and each command line (``--help``, ``convert --help``) it times ``python -m
spacy_ner_project ...`` (a fresh interpreter each time; one warm-up run, then the rounds
interleave the trees so that a change of load hits both alike) and lists, from one
``python -X importtime`` run, which heavy packages the command imported. The ref is checked
out with ``git worktree`` into a temporary folder and run from there (its own ``components/``
linked in as ``spacy_ner_project/components``, as ``setup.cfg``'s package_dir maps it).
Writes benchmarks/cli_startup.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

from common import HERE, ROOT, machine, write_json, write_markdown  # benchmarks/common.py

COMMANDS = (("--help",), ("convert", "--help"))
HEAVY = ("spacy", "spacy_llm", "thinc", "torch", "transformers", "matplotlib", "numpy", "typer", "click", "rich", "wasabi")


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A checkout of ``ref`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True, capture_output=True)
        try:
            link = path / "spacy_ner_project" / "components"
            if not link.exists():
                link.symlink_to(path / "components", target_is_directory=True)
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False, capture_output=True)


def _run(tree: Path, args: Sequence[str], *, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, *flags, "-m", "spacy_ner_project", *args], cwd=tree, env=env, capture_output=True, text=True, check=True
    )


def _check_tree(tree: Path) -> None:
    """Fail unless ``python -m spacy_ner_project`` in ``tree`` imports that tree's package."""
    code = "import spacy_ner_project, pathlib; print(pathlib.Path(spacy_ner_project.__file__).resolve().parent.parent)"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    found = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if Path(found) != tree.resolve():
        raise SystemExit(f"{tree}: python imports spacy_ner_project from {found}, not from the tree")


def imported_packages(tree: Path, args: Sequence[str]) -> Dict[str, object]:
    """Which of HEAVY the command imports, and how many modules in all (``-X importtime``)."""
    stderr = _run(tree, args, importtime=True).stderr
    modules = [line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")][1:]
    tops = {name.split(".")[0] for name in modules}
    return {"modules": len(modules), "heavy": [name for name in HEAVY if name in tops]}


def measure(trees: Dict[str, Path], *, runs: int) -> List[Dict[str, object]]:
    times: Dict[tuple, List[float]] = {(label, args): [] for label in trees for args in COMMANDS}
    for label, tree in trees.items():
        _check_tree(tree)
        for args in COMMANDS:
            _run(tree, args)  # warm-up: writes the .pyc files
    for _ in range(runs):
        for args in COMMANDS:
            for label, tree in trees.items():
                start = time.perf_counter()
                _run(tree, args)
                times[(label, args)].append(time.perf_counter() - start)
    rows = []
    for (label, args), seconds in times.items():
        rows.append(
            {
                "tree": label,
                "command": "python -m spacy_ner_project " + " ".join(args),
                "runs": runs,
                "min_s": round(min(seconds), 3),
                "median_s": round(statistics.median(seconds), 3),
                **imported_packages(trees[label], args),
            }
        )
    return rows


def to_markdown(result: Dict[str, object]) -> str:
    lines = [
        "# CLI start-up time",
        "",
        "Written by `python benchmarks/cli_startup.py " + " ".join(result["argv"]) + "` (a fresh interpreter per run;",
        "one warm-up run per tree and command, then the trees interleaved). Heavy packages: which of",
        f"{', '.join(HEAVY)} the command imported (`python -X importtime`).",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, Python {result['machine']['python']}; "
        f"load average {result['machine']['load_average']} at the start and {result['load_average_at_end']} at the end "
        "(1/5/15 min; the machine is shared, so compare the trees of one run, not runs of different days).",
        "",
        "Before the lazy registry (issue 11) `cli.py` imported every command module at start-up, and with",
        "them spaCy, torch and matplotlib; now `cli.COMMANDS` names the commands and only the one that runs",
        "(or whose `--help` is asked for) is imported; `convert` imports spaCy only when it converts.",
        "",
        "| tree | command | min s | median s | modules | heavy packages imported |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['tree']} | `{row['command']}` | {row['min_s']:.2f} | {row['median_s']:.2f} | {row['modules']} | "
            f"{', '.join(row['heavy']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git ref to compare with (e.g. the commit before the change)")
    parser.add_argument("--after", default=None, help="git ref to measure instead of this tree (default: this tree)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tree and command")
    parser.add_argument("--output", type=Path, default=HERE / "cli_startup", help="writes OUTPUT.json and OUTPUT.md")
    args = parser.parse_args(argv)
    started_on = machine()
    with ExitStack() as stack:
        before = stack.enter_context(worktree(args.before))
        after = stack.enter_context(worktree(args.after)) if args.after else ROOT
        after_label = f"after ({args.after})" if args.after else "after (this tree)"
        rows = measure({f"before ({args.before})": before, after_label: after}, runs=args.runs)
    result = {
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "machine": started_on,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    write_json(args.output.with_suffix(".json"), result)
    write_markdown(args.output.with_suffix(".md"), to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
