"""The `research` extra (py-motmetrics, scikit-learn) stays out of the product: `import maskdetect`,
every module of the package but `maskdetect.evaluation`, and the CLI (`--help` of each command) work
without it; only scoring tracks asks for it, and names the extra."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
RESEARCH = ("motmetrics", "sklearn")

BLOCKED_RUN = textwrap.dedent("""
    import importlib, importlib.util, pkgutil, sys

    # As if the research extra were not installed: importing it raises ModuleNotFoundError and
    # `importlib.util.find_spec` (which torch uses to probe for optional packages) answers None.
    for name in {research!r}:
        sys.modules[name] = None
        assert importlib.util.find_spec(name) is None
    import maskdetect
    from maskdetect.cli import main

    for info in pkgutil.walk_packages(maskdetect.__path__, "maskdetect."):
        if info.name.startswith("maskdetect.evaluation.") and not info.name.endswith(".commands"):
            continue
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for argv in ([], ["detect"], ["serve"], ["batch"], ["evaluate-detect"]):
        try:
            main([*argv, "--help"])
        except SystemExit as stop:
            assert stop.code == 0, (argv, stop.code)
    from maskdetect.evaluation.track_score import combine_scores
    try:
        combine_scores([])
    except ModuleNotFoundError as error:
        assert "maskdetect[research]" in str(error), error
    else:
        raise AssertionError("combine_scores ran without py-motmetrics")
    print("imported", len([m for m in sys.modules if m.startswith("maskdetect.")]), "modules")
""")


def test_the_product_runs_without_the_research_extra() -> None:
    code = BLOCKED_RUN.format(research=RESEARCH)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage: maskdetect" in result.stdout and "imported" in result.stdout


def test_only_evaluation_imports_the_research_extra() -> None:
    # Lazy imports count too: a product module may not need the extra even inside a function.
    found = []
    for path in sorted((SRC / "maskdetect").rglob("*.py")):
        if (SRC / "maskdetect" / "evaluation") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(SRC)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in RESEARCH]
    assert not found, "the research extra imported outside maskdetect.evaluation:\n" + "\n".join(found)
