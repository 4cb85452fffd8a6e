"""Every code block of README.md and of the docs site's pages runs as written, from the project's root.

The blocks of a document run in order in one working folder that looks like a fresh clone (`src/`,
`scripts/` and `bench/` linked in, `../shared/data` beside it), so an earlier block may make what a
later one reads. The documents are README.md and every page of docs/ (the model card among them).
Bash blocks call `maskdetect` (this interpreter's `-m maskdetect`), python blocks this interpreter.
A block may be marked by an HTML comment on the line before its fence:

- `<!-- docs-test: skip (why) -->`: never run here (an install, a download, a server); listed as skipped.
- `<!-- docs-test: slow -->`: run only under `pytest -m slow` (minutes on the shared data sets).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (
    "README.md",
    *sorted(str(page.relative_to(ROOT)) for page in (ROOT / "docs").glob("*.md")),
)
FENCE = re.compile(
    r"(?:<!--\s*docs-test:\s*(?P<mark>skip|slow)\s*(?:\((?P<why>[^)]*)\))?\s*-->\s*\n)?"
    r"^```(?P<lang>bash|python)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
# `maskdetect` as the README means it: the package this test imports, run by this interpreter.
BASH_PREAMBLE = 'set -euo pipefail\nmaskdetect() { "$DOCS_PYTHON" -m maskdetect "$@"; }\n'


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    lang: str
    code: str
    mark: str | None
    why: str

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(document: str) -> list[Block]:
    """The fenced bash and python blocks of `document`, in order, with their docs-test marks."""
    text = (ROOT / document).read_text()
    return [
        Block(document, text.count("\n", 0, m.start("code")), m["lang"], m["code"], m["mark"], m["why"] or "")
        for m in FENCE.finditer(text)
    ]


def _clone(tmp_path: Path) -> Path:
    # A fresh clone's layout without copying it: the checkout's files linked, ../shared/data beside.
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("src", "scripts", "bench", "pyproject.toml"):
        (clone / name).symlink_to(ROOT / name)
    shared = ROOT.parent / "shared"
    assert (shared / "data").is_dir(), f"{shared / 'data'} is missing: the docs' data sets live there"
    (tmp_path / "shared").symlink_to(shared)
    return clone


def _run(block: Block, cwd: Path) -> None:
    env = {**os.environ, "DOCS_PYTHON": sys.executable, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = ["bash", "-c", BASH_PREAMBLE + block.code] if block.lang == "bash" else [
        sys.executable, "-c", block.code]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    print(f"{block.name}: {time.perf_counter() - start:.1f} s")  # shown with -s: which block costs what
    assert done.returncode == 0, (
        f"{block.name} ({block.lang}) failed with {done.returncode}:\n{block.code}\n"
        f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
    )


def _wanted(block: Block, slow: bool) -> bool:
    return block.mark is None or (slow and block.mark == "slow")


def test_blocks_are_found_and_marked_with_a_reason() -> None:
    found = {document: blocks(document) for document in DOCUMENTS}
    assert len(found["README.md"]) >= 15 and found["docs/model-card.md"] and found["docs/pipeline.md"]
    for block in (b for bs in found.values() for b in bs):
        assert block.mark != "skip" or block.why, f"{block.name}: a skipped block says why"
        placeholder = re.search(r"\b(VOC_DIR|DIR|photos/|clip\.mp4|run\.yaml|model\.pt)\b", block.code)
        assert block.mark == "skip" or not placeholder, f"{block.name} runs but names {placeholder[0]!r}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_blocks_run_as_written(document: str, tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    for block in blocks(document):
        if _wanted(block, slow=False):
            _run(block, clone)


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_blocks_with_the_slow_ones(document: str, tmp_path: Path, request) -> None:
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("the slow blocks (minutes on the shared data sets) run with -m slow")
    clone = _clone(tmp_path)
    for block in blocks(document):
        if _wanted(block, slow=True):
            _run(block, clone)


@pytest.mark.parametrize("block", [b for d in DOCUMENTS for b in blocks(d) if b.mark == "skip"],
                         ids=lambda b: b.name)
def test_skipped_blocks_are_listed(block: Block) -> None:
    pytest.skip(f"{block.name} not run here: {block.why}")
