"""Peak memory of what a checkpoint costs on its first `detect`: the ONNX export and the int8 twin's
calibration (JSON on stdout), by input size, beside the bundled model's 224 px as the baseline.

Each size runs in a fresh process (peak RSS is per process) with an empty model cache, on an untrained
checkpoint of the architecture: what the preprocessing's input-size bound has to keep affordable.

    .venv/bin/python bench/bench_model_memory.py [--arch mobilenet_v2] [--sizes 160 224] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(arch: str, size: int, precision: str = "int8") -> dict:
    """Export (and for int8 quantize) one untrained checkpoint in this process; its peak RSS and time."""
    import os

    from maskdetect.checkpoint import make_checkpoint, save_checkpoint
    from maskdetect.models import create_model
    from maskdetect.preprocess import Preprocessing

    with tempfile.TemporaryDirectory(prefix="bench-model-memory-") as tmp:
        os.environ["MASKDETECT_CACHE_DIR"] = tmp  # nothing cached: the export and the twin are made
        from maskdetect.runtime import load_classifier

        path = Path(tmp) / "model.pt"
        save_checkpoint(make_checkpoint(create_model(arch, pretrained=False), arch,
                                        Preprocessing(input_size=size)), path)
        start = time.perf_counter()
        load_classifier(path, "onnx", precision=precision)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"arch": arch, "precision": precision, "input_size": size, "peak_rss_mb": round(peak_mb),
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224],
                        help="input sizes to measure (above preprocess.INPUT_SIZE_RANGE they are refused)")
    parser.add_argument("--baseline-size", type=int, default=224, help="the bundled model's input size")
    parser.add_argument("--precision", choices=["int8", "fp32"], default="int8",
                        help="int8: export and calibration (a first `detect`); fp32: the export alone")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process: one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.arch, args.one, args.precision)))
        return

    def run(size: int) -> dict:
        command = [sys.executable, __file__, "--arch", args.arch, "--precision", args.precision,
                   "--one", str(size)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    import harness

    baseline = run(args.baseline_size)
    runs = [baseline if size == args.baseline_size else run(size) for size in args.sizes]
    figure = {"peak_rss_mb": {str(r["input_size"]): r["peak_rss_mb"] for r in runs},
              "seconds": {str(r["input_size"]): r["seconds"] for r in runs}}
    ratio = {str(r["input_size"]): round(r["peak_rss_mb"] / baseline["peak_rss_mb"], 3) for r in runs}
    harness.report("bench_model_memory", figure, baseline, vars(args), ratio=ratio)


if __name__ == "__main__":
    main()
