"""Images/s of `maskdetect batch` (Ray Data, 1 and 2 actors) beside the threaded `detect`, on the same
photos in one run, and each actor's memory over a long run (JSON on stdout, progress on stderr).

The photos: the first N/2 of andrewmvd-face-mask (sorted by name) and the first N/2 of ilc2021-dev's
JPEGImages, from ../shared/data. The runs, in this order, on one local Ray instance started once:

1. threaded: `detect_files(Predictor(), photos, workers=2, images=False)` (as `maskdetect detect
   --workers 2 --no-images`), model loaded before the clock starts;
2. ray, 2 actors and 3. ray, 1 actor: `run_batch(photos, BatchOptions(actors=...))`, each run's wall
   time with its actors' start (one model load each) and the driver's model check included;
4. memory: 2 actors over the photos repeated to `--memory-images` (links under other names, so each is
   a new input), every actor's resident memory after each shard.

    .venv/bin/python bench/bench_batch.py [--photos 500] [--memory-images 2000] [--shard-size 25]
    .venv/bin/python bench/bench_batch.py --memory-steps   # why an actor's memory rises in steps

The machine is shared: compare figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _photos(count: int) -> list[Path]:
    andrewmvd = sorted((DATA / "andrewmvd-face-mask" / "images").glob("*.jpg"))
    ilc = sorted((DATA / "ilc2021-dev" / "JPEGImages").glob("*.jpg"))
    if not andrewmvd or not ilc:
        sys.exit(f"photos not found under {DATA} (andrewmvd-face-mask/images, ilc2021-dev/JPEGImages)")
    return andrewmvd[: count // 2] + ilc[: count - count // 2]


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _threaded(photos: list[Path], out: Path) -> dict:
    from maskdetect.detect.media import detect_files
    from maskdetect.predict import Predictor

    predictor = Predictor()
    predictor.predict(photos[0])  # warm-up
    start = time.perf_counter()
    summary = detect_files(predictor, photos, out, workers=2, images=False)
    seconds = time.perf_counter() - start
    return {"images": len(photos), "seconds": round(seconds, 1),
            "images_per_s": round(len(photos) / seconds, 3), "faces": sum(summary.counts.values()),
            "failed": len(summary.failures),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _ray(inputs: list[str | Path], out: Path, actors: int, shard_size: int) -> dict:
    from maskdetect.detect.ray_batch import BatchOptions, run_batch

    start = time.perf_counter()
    summary = run_batch(inputs, BatchOptions(out, actors=actors, shard_size=shard_size))
    seconds = time.perf_counter() - start
    memory = {pid: {"shards": a["shards"], "images": a["images"], "busy_s": a["busy_s"],
                    "peak_rss_mb": a["peak_rss_mb"],
                    "rss_mb_first_shard": a["rss_mb"][0], "rss_mb_last_shard": a["rss_mb"][-1],
                    "rss_mb_after_each_shard": a["rss_mb"]} for pid, a in summary.actors.items()}
    return {"actors": actors, "images": summary.images_run, "seconds": round(seconds, 1),
            "images_per_s": round(summary.images_run / seconds, 3), "faces": sum(summary.faces.values()),
            "failed": summary.failed, "per_actor": memory,
            # the wall time no actor spent detecting: Ray's scheduling, actor start, model loads, the tail
            "not_detecting_s": round(seconds - max((a["busy_s"] for a in memory.values()), default=0), 1),
            "output_mb": round(sum(p.stat().st_size for p in (out / "faces").glob("*.parquet")) / 2**20, 3)}


def _memory_steps(photos: list[Path]) -> dict:
    # One Predictor in this process, one inference thread (as an actor): after each photo, its resident
    # memory and the largest batch of face candidates the classifier ran on; where memory stepped up.
    from maskdetect.predict import Predictor

    def resident() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    predictor = Predictor(classifier_threads=1)
    batches: list[int] = []
    run = predictor.classifier.logits_and_features

    def counted(batch):  # the verifier's one batch of every candidate box of a photo
        batches.append(len(batch))
        return run(batch)

    predictor.classifier.logits_and_features = counted
    before, largest, steps = resident(), 0, []
    for index, photo in enumerate(photos):
        seen = len(batches)
        predictor.predict(photo)
        batch, now = max(batches[seen:], default=0), resident()
        if now - before > 20:
            steps.append({"photo": index, "batch": batch, "largest_before": largest,
                          "rss_mb": [round(before), round(now)]})
        largest, before = max(largest, batch), now
    return {"photos": len(photos), "largest_batch": largest, "rss_mb_end": round(before), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--memory-images", type=int, default=2000, help="0 skips the memory run")
    parser.add_argument("--shard-size", type=int, default=25)
    parser.add_argument("--memory-only", action="store_true", help="only the memory run (run 4)")
    parser.add_argument("--memory-steps", action="store_true",
                        help="only: in this process, where memory steps up, beside the candidate batch size")
    args = parser.parse_args()
    import harness

    logging.basicConfig(level=logging.WARNING)
    import ray

    photos = _photos(args.photos)
    if args.memory_steps:
        harness.report("bench_batch/memory_steps", _memory_steps(photos), None, vars(args), indent=1)
        return
    work = Path(tempfile.mkdtemp(prefix="bench_batch."))
    report: dict = {"photos": len(photos), "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    if not args.memory_only:
        _say(f"threaded detect over {len(photos)} photos")
        report["threaded_2_workers"] = _threaded(photos, work / "threaded")
        _say(json.dumps(report["threaded_2_workers"]))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local instance on 127.0.0.1
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    report["ray_init_s"] = round(time.perf_counter() - start, 1)
    if not args.memory_only:
        for actors in (2, 1):
            _say(f"ray, {actors} actor(s)")
            report[f"ray_{actors}_actors"] = _ray(photos, work / f"ray{actors}", actors, args.shard_size)
            _say(json.dumps(report[f"ray_{actors}_actors"]))
        base, two, one = report["threaded_2_workers"], report["ray_2_actors"], report["ray_1_actors"]
        report["ray_2_actors_vs_threaded"] = round(two["images_per_s"] / base["images_per_s"], 3)
        extra = two["seconds"] - base["seconds"]
        report["ray_overhead_per_image_ms"] = round(extra / len(photos) * 1000, 1)
        report["scaling_2_actors_over_1"] = round(two["images_per_s"] / one["images_per_s"], 3)
    if args.memory_images:
        listing = work / "long.txt"
        names = []
        for copy in range(-(-args.memory_images // len(photos))):
            folder = work / "links" / str(copy)
            folder.mkdir(parents=True)
            for photo in photos:
                (folder / photo.name).symlink_to(photo)
                names.append(str(folder / photo.name))
        listing.write_text("\n".join(names[: args.memory_images]) + "\n")
        _say(f"ray, 2 actors, memory over {args.memory_images} images")
        report["memory_run"] = run = _ray([listing], work / "long", 2, args.shard_size)
        for actor in run["per_actor"].values():  # after its first shard (model and buffers in place)
            series = actor["rss_mb_after_each_shard"][1:] or actor["rss_mb_after_each_shard"]
            actor["rss_mb_growth_after_first_shard"] = round(series[-1] - series[0], 1)
            actor["rss_mb_range_after_first_shard"] = round(max(series) - min(series), 1)
    ray.shutdown()
    report["load_avg_at_end"] = os.getloadavg()
    harness.report("bench_batch", report, report.get("threaded_2_workers"), vars(args), indent=1,
                   ratio={k: report[k] for k in ("ray_2_actors_vs_threaded", "scaling_2_actors_over_1")
                          if k in report})


if __name__ == "__main__":
    main()
