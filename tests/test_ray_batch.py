"""Issue 20: `maskdetect batch` on a local Ray instance (2 CPUs) that this module starts once: Parquet
rows for every face and every failed input, a corrupt image among good ones, and a killed job that,
run again, loses and repeats nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
from PIL import Image
from skimage.data import astronaut

from maskdetect.cli import main
from maskdetect.detect.ray_batch import BatchOptions, run_batch, shard_path
from maskdetect.detect.ray_local import ray_session
from maskdetect.options import ModelOptions

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def ray_address():
    # The local Ray as `batch` starts it: on 127.0.0.1 only (setting Ray's switch here came after
    # Ray's import had read it, so this instance listened beyond loopback), ended with this process.
    with ray_session(ray, None):
        yield ray.get_runtime_context().gcs_address


def _photos(folder: Path, count: int, size: int = 320) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(astronaut()).resize((size, size))
    paths = []
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2021:03:04 09:15:00"  # DateTimeOriginal, on the first photo only
    for i in range(count):
        paths.append(folder / f"p{i:02d}.jpg")
        face.save(paths[-1], exif=exif.tobytes() if i == 0 else b"")
    return paths


def test_a_killed_job_run_again_loses_and_repeats_nothing(ray_address, tmp_path, untrained_checkpoint,
                                                          capsys):
    # 16 photos in one folder, a corrupt and an empty one in another, one shard each; a job on the
    # module's Ray is killed once a shard is written, then run again by the command.
    photos = _photos(tmp_path / "photos" / "day1", 16, size=480)
    corrupt = tmp_path / "photos" / "day2" / "corrupt.jpg"
    corrupt.parent.mkdir()
    corrupt.write_bytes(photos[0].read_bytes()[:200])  # a JPEG cut off after its header
    empty = corrupt.with_name("empty.png")
    empty.write_bytes(b"")
    inputs = [*photos, corrupt, empty]
    out = tmp_path / "out"
    command = ["batch", str(tmp_path / "photos"), "--out", str(out), "--model",
               str(untrained_checkpoint), "--detector", "haar", "--actors", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    job = subprocess.Popen([sys.executable, "-m", "maskdetect", *command, "--shard-size", "1", "--address",
                            ray_address], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180  # a first run also makes the int8 twin (20 s, more when busy)
    try:
        while not list((out / "faces").glob("part-*.parquet")) and time.monotonic() < deadline:
            assert job.poll() is None, job.stderr.read().decode()[-2000:]
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the whole job, as a lost node or kill -9 would end it
        job.wait()
    written = {p.name: p.stat().st_mtime_ns for p in (out / "faces").glob("part-*.parquet")}
    assert 0 < len(written) < len(inputs), "the job should have been killed midway"

    # Run again (the plan keeps shards of 1; two actors now): only the missing shards are detected.
    assert main([*command, "--actors", "2", "--summary-by", "part:-2"]) == 1  # 2 inputs failed
    assert f"this run detected {len(inputs) - len(written)} images" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "faces").glob("part-*.parquet")
            if p.name in written} == written  # finished shards are not done again
    assert not list((out / "faces").glob(".*"))  # no half-written shard left behind
    rows = pd.read_parquet(out / "faces")
    per_image = rows.groupby("path")["faces"].agg(["first", "size"])
    assert sorted(per_image.index) == sorted(map(str, inputs))  # nothing lost
    assert (per_image["size"] == per_image["first"].fillna(0).clip(lower=1)).all()  # nothing twice
    errors = rows.set_index("path")["error"].dropna().to_dict()
    assert set(errors) == {str(corrupt), str(empty)}  # the good photos' shards went on around them
    assert str(corrupt) in errors[str(corrupt)] and "empty file" in errors[str(empty)]
    faces = rows[rows["label"].notna()]
    assert len(faces) >= 16 and faces["label"].isin(["covered", "incorrect", "uncovered"]).all()
    assert (faces["x1"] > faces["x0"]).all() and (faces["width"] == 480).all()
    assert faces[["p_covered", "p_incorrect", "p_uncovered"]].sum(axis=1).round(3).eq(1.0).all()
    assert set(rows.groupby("path")["taken"].first().dropna().items()) == {
        (str(photos[0]), "2021-03-04 09:15:00")}  # from the EXIF, to group by day
    summary = pd.read_csv(out / "summary.csv").set_index("part:-2")
    assert summary.loc["day1", "images"] == 16 and summary.loc["day2", "failed"] == 2
    assert summary.loc["day1", "faces"] == len(faces)

    again = run_batch([], BatchOptions(out, model=ModelOptions(untrained_checkpoint, detector="haar")))
    assert again.shards_run == 0 and again.inputs == len(inputs)


def test_an_output_folder_refuses_another_model(ray_address, tmp_path, untrained_checkpoint):
    photo = _photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    shard_path(out, 0).parent.mkdir(parents=True)
    run_options = BatchOptions(out, model=ModelOptions(untrained_checkpoint, detector="haar"))
    (out / "batch.json").write_text('{"detector": "blazeface"}')
    shard_path(out, 0).write_bytes(b"")  # a finished shard, made with blazeface
    with pytest.raises(ValueError, match="other settings"):
        run_batch(photo, run_options)


def test_each_actor_builds_its_predictor_from_the_batchs_model_options(tmp_path):
    # No Ray needed: what every actor gets (CPU: the options as given, one classifier thread per CPU;
    # GPU: torch, fp32, CUDA), as data that reads back (ShardDetector's ModelOptions.from_dict).
    model = ModelOptions("m.pt", detector="haar", precision="int8", face_threshold=0.4, verify=False)
    cpu = BatchOptions(tmp_path, model=model, cpus_per_actor=3).actor_model()
    assert cpu == ModelOptions("m.pt", detector="haar", precision="int8", face_threshold=0.4, verify=False,
                               classifier_threads=3)
    assert ModelOptions.from_dict(cpu.to_dict()) == cpu
    gpu = BatchOptions(tmp_path, model=model, gpus_per_actor=1).actor_model()
    assert (gpu.backend, gpu.precision, gpu.device, gpu.classifier_threads) == ("torch", "fp32", "cuda", 1)
    assert (gpu.model, gpu.detector, gpu.face_threshold, gpu.verify) == ("m.pt", "haar", 0.4, False)
    assert BatchOptions(tmp_path).model == ModelOptions()  # the bundled model by default


def test_a_file_name_that_is_not_utf8_is_named_and_the_rest_is_detected(ray_address, tmp_path,
                                                                        untrained_checkpoint, capsys):
    # Issue 31.10. Before: UnicodeEncodeError while planning, exit 2, the file not named, nothing done.
    photos = _photos(tmp_path / "photos", 2, size=64)
    os.rename(photos[1], os.fsencode(photos[1].parent) + b"/caf\xe9.jpg")  # a Latin-1 name
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "photos"), "--out", str(out), "--model", str(untrained_checkpoint),
                 "--detector", "haar", "--actors", "1"]) == 1
    err = capsys.readouterr().err
    assert f"left out: {photos[1].parent}/caf\\xe9.jpg: the file name is not UTF-8" in err
    assert pd.read_parquet(out / "faces")["path"].unique().tolist() == [str(photos[0])]
