"""Building the CLI imports no heavy or optional stack: `maskdetect train` must not need the web server's
packages, and every command's start-up stays quick."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "torchvision", "onnxruntime", "cv2", "matplotlib", "starlette", "fastapi", "uvicorn",
         "python_multipart", "ai_edge_litert", "prometheus_client")


def test_building_the_parser_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from maskdetect.cli import build_parser\n"
        "build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
