"""Issue 31.11: the local Ray instance `batch` starts listens on loopback only and ends with its driver,
even when the driver is killed with SIGKILL (the OOM killer, kill -9)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from skimage.data import astronaut

ray = pytest.importorskip("ray")  # the `ray` extra; skipped only where it is absent
import psutil  # noqa: E402 - Ray ships psutil and puts it on the path when imported

SRC = Path(__file__).resolve().parents[1] / "src"


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    return (mapped or address).is_loopback


def _alive(process: psutil.Process) -> bool:
    try:  # is_running also checks the start time: a reused pid is not ours
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_batch_driver_leaves_no_ray_process_and_ray_listened_on_loopback_only(
        tmp_path, untrained_checkpoint):
    # Before: after kill -9 of the driver the dashboard and runtime-env agents ran on (one listening
    # on the host's network address), and the GCS, raylet and workers listened on :: or 0.0.0.0.
    photos = tmp_path / "photos"
    photos.mkdir()
    face = Image.fromarray(astronaut()).resize((160, 160))
    for i in range(60):
        face.save(photos / f"p{i:02d}.jpg")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS"):  # what `batch` does by itself
        env.pop(name, None)
    driver = subprocess.Popen(
        [sys.executable, "-m", "maskdetect", "batch", str(photos), "--out", str(out), "--model",
         str(untrained_checkpoint), "--detector", "haar", "--actors", "1", "--shard-size", "1"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: dict[int, psutil.Process] = {}
    listening: set[tuple[str, int, str]] = set()

    def look() -> None:
        try:
            for child in psutil.Process(driver.pid).children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
        for connection in psutil.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN and connection.pid in {driver.pid, *seen}:
                name = seen[connection.pid].name() if connection.pid in seen else "driver"
                listening.add((connection.laddr.ip, connection.laddr.port, name))

    deadline = time.monotonic() + 180  # a first run also makes the int8 twin
    try:
        while not list((out / "faces").glob("part-*.parquet")):  # a shard is done: the whole cluster is up
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no shard written in 180 s"
            look()
            time.sleep(0.2)
        look()
    finally:
        driver.kill()  # SIGKILL to the driver alone, not its process group
        driver.wait()
    assert any("raylet" in name for *_, name in listening), listening  # the scan saw Ray's servers
    try:
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in seen.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = sorted((p.pid, p.name()) for p in seen.values() if _alive(p))
    finally:
        for process in seen.values():  # this test's own processes, should the check fail
            if _alive(process):
                process.kill()
    exposed = sorted(entry for entry in listening if not _loopback(entry[0]))
    assert not left and not exposed, f"outlived their driver: {left}; listened beyond loopback: {exposed}"
