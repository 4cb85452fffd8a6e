"""The one output shape of every timing script in bench/: `report(...)` prints one JSON object.

    {"bench": name, "figure": {...}, "baseline": {...} | null, "ratio": {...} | null,
     "settings": {...}, "machine": {"cpu": model name, "cores": n, "python": version}}

`figure` holds the script's own measurements, `baseline` the same-run baseline they stand beside
(null where a script has none), `ratio` figure / baseline for each number the two share at the top
level (null without a baseline, or given by the script), `settings` the arguments of the run.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

SHAPE = ("bench", "figure", "baseline", "ratio", "settings", "machine")


def machine() -> dict[str, Any]:
    """The CPU model, its cores and the Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def ratios(figure: dict, baseline: dict) -> dict[str, float]:
    """figure[k] / baseline[k] for each number both have at the top level."""
    out = {}
    for key, value in figure.items():
        base = baseline.get(key)
        if (isinstance(value, int | float) and isinstance(base, int | float)
                and not isinstance(value, bool) and base):
            out[key] = round(value / base, 4)
    return out


def report(name: str, figure: Any, baseline: Any = None, settings: dict | None = None,
           ratio: Any = None, indent: int | None = 2) -> dict:
    """Print (and return) the run's one JSON object; `ratio` defaults to `ratios(figure, baseline)`."""
    if ratio is None and isinstance(figure, dict) and isinstance(baseline, dict):
        ratio = ratios(figure, baseline) or None
    result = {"bench": name, "figure": figure, "baseline": baseline, "ratio": ratio,
              "settings": dict(settings or {}), "machine": machine()}
    print(json.dumps(result, indent=indent, default=str), flush=True)
    return result


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """The best wall time (seconds) of `repeat` calls of `fn`, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result
