"""The documentation site (mkdocs.yml, docs/) builds with `mkdocs build --strict`, without one warning.

A broken link or anchor between pages, a page left out of the nav or a nav entry with no page fails
the build (mkdocs.yml's `validation`). docs/architecture.md is a link to the root's ARCHITECTURE.md,
so that page's links must resolve from docs/ too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")


def test_site_builds_strictly_without_warnings(tmp_path: Path) -> None:
    assert MKDOCS.is_file(), f"{MKDOCS} is missing: scripts/install.sh installs requirements-docs.txt"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's notice about its successor
    done = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert done.returncode == 0 and not warnings, f"mkdocs build --strict failed:\n{output[-4000:]}"
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()  # the link was followed
    assert (tmp_path / "site" / "images" / "annotated-sample.jpg").is_file()
