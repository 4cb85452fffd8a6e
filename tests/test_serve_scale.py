"""`maskdetect serve --workers N` and the Dockerfile.

Building the image takes minutes, a 5 GB download and a container engine, so the tests never build
it (`bash scripts/check-image.sh` does, by hand). What they test instead: the image's entry point
(ENTRYPOINT + CMD, its ENV) run as a real process with two workers, answering /healthz, /v1/detect
and /metrics and stopping cleanly on SIGTERM; the image's HEALTHCHECK command run against it
(passing while it serves, failing after); and that the image installs with the script CI runs, as
a user other than root, from files .dockerignore keeps.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import PHOTO_NAMES, photo_dir, photo_jpeg, png_claiming_size

from maskdetect.bundle import MANIFEST, open_bundle
from maskdetect.cli import main
from maskdetect.options import ModelOptions
from maskdetect.serve import server as server_module
from maskdetect.serve.commands import PORT_ENV, WORKERS_ENV
from maskdetect.serve.server import OPTIONS_ENV, ServeOptions, app_from_env

ROOT = Path(__file__).resolve().parents[1]


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def instruction(keyword: str) -> list[str]:
    return [arguments for key, arguments in dockerfile() if key == keyword]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in instruction("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def healthcheck_command() -> str:
    (arguments,) = instruction("HEALTHCHECK")
    return arguments.split(" CMD ", 1)[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scraped(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_the_image_entry_point_serves_with_two_workers_and_stops_cleanly(tmp_path, untrained_checkpoint,
                                                                        shared_data):
    port = free_port()
    environment = dict(os.environ)
    # `docker run -e MASKDETECT_PORT=...`; this checkout's python and `maskdetect` first on PATH, as the
    # image's virtual environment is; a temp folder of our own to see the metrics folder come and go.
    environment.update({name: value for name, value in image_env().items() if name != "PATH"})
    environment.update({PORT_ENV: str(port), "TMPDIR": str(tmp_path),
                        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])})
    (entry,) = instruction("ENTRYPOINT")
    command = [*json.loads(entry), *(json.loads(instruction("CMD")[0]) if instruction("CMD") else [])]
    # `docker run IMAGE --workers 2 ...`: arguments after the image name follow the entry point.
    command += ["--workers", "2", "--model", str(untrained_checkpoint), "--detector", "blazeface-fast"]
    url = f"http://127.0.0.1:{port}"

    def healthcheck() -> int:
        return subprocess.run(["sh", "-c", healthcheck_command()], env=environment, capture_output=True,
                              timeout=30).returncode

    log = tmp_path / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 150
        while healthcheck() != 0:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no /healthz answer within 150 s"
            time.sleep(0.5)
        metrics_dirs = list(tmp_path.glob("maskdetect-metrics-*"))
        assert len(metrics_dirs) == 1

        photo = photo_jpeg(photo_dir(shared_data) / PHOTO_NAMES[1])
        faces = 0
        for _ in range(6):  # a connection each: the kernel hands them to either worker
            files = {"image": ("p.jpg", photo, "image/jpeg")}
            response = httpx.post(url + "/v1/detect", files=files, timeout=60)
            assert response.status_code == 200, response.text
            faces += sum(response.json()["counts"].values())
        assert httpx.get(url + "/nowhere").status_code == 404
        # The hardening holds in every worker: bombs and broken files refused before decoding.
        for _ in range(2):
            bomb = httpx.post(url + "/v1/detect", content=png_claiming_size(20_000, 20_000),
                              headers={"Content-Type": "image/png"}, timeout=30)
            assert bomb.status_code == 413, bomb.text
        files = {"image": ("cut.jpg", photo[:300], "image/jpeg")}
        cut = httpx.post(url + "/v1/detect", files=files, timeout=30)
        assert cut.status_code == 422, cut.text
        text = httpx.get(url + "/metrics").text
        assert scraped(text, "maskdetect_http_requests_total", route="/v1/detect", status="200") == 6
        assert sum(scraped(text, "maskdetect_faces_total", label=label)
                   for label in ("covered", "incorrect", "uncovered", "other")) == faces
        assert scraped(text, "maskdetect_errors_total", kind="not_found") == 1
        assert scraped(text, "maskdetect_errors_total", kind="image_too_large") == 2
        assert scraped(text, "maskdetect_errors_total", kind="bad_image") == 1
        # Two workers, each with its own process and its own metrics file.
        workers = {path.name.split("_")[-1] for path in metrics_dirs[0].glob("counter_*.db")}
        assert len(workers) == 2, workers
        output = log.read_text()
        assert "with 2 workers" in output and output.count("Application startup complete") == 2
    finally:
        process.send_signal(signal.SIGTERM)  # what `docker stop` sends
        returncode = process.wait(timeout=60)
    assert returncode == 0, log.read_text()[-3000:]
    assert log.read_text().count("Finished server process") == 2
    assert not list(tmp_path.glob("maskdetect-metrics-*"))  # removed at exit
    assert healthcheck() != 0  # the image's health check fails once nothing answers
    with socket.socket() as sock:  # the port is free again: no worker left listening
        # SO_REUSEADDR: closed connections may linger in TIME_WAIT; a listener would still refuse the bind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_the_image_installs_with_the_ci_script_as_a_user_not_root():
    runs = " && ".join(instruction("RUN"))
    assert "bash scripts/install.sh" in runs
    assert "bash scripts/install.sh" in (ROOT / "scripts" / "test.sh").read_text()  # the script CI runs
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert instruction("FROM") == ["python:3.11-slim"]
    keywords = [key for key, _ in dockerfile()]
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("COPY") < keywords.index("RUN", keywords.index("USER"))
    assert json.loads(instruction("ENTRYPOINT")[0])[:2] == ["maskdetect", "serve"]
    assert instruction("EXPOSE") == [image_env()[PORT_ENV]]
    assert "/healthz" in healthcheck_command()


def test_dockerignore_keeps_what_the_install_reads():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
                   for pattern in patterns for prefix in prefixes)

    install = (ROOT / "scripts" / "install.sh").read_text()
    copied = [source for arguments in instruction("COPY")
              for source in [word for word in arguments.split() if not word.startswith("--")][:-1]]
    assert all(name in copied for name in ("requirements.lock", "requirements-nodeps.txt", "pyproject.toml",
                                           "README.md", "scripts/install.sh", "src"))
    assert all(name in install for name in ("requirements.lock", "requirements-nodeps.txt", "pyproject.toml"))
    bundle = open_bundle()  # the bundled model: its manifest and every part it names
    parts = [bundle.root / MANIFEST, bundle.classifier, *(entry.path for entry in bundle.verifiers)]
    needed = [*copied, "src/maskdetect/cli.py", "src/maskdetect/serve/static/index.html",
              *(part.relative_to(ROOT).as_posix() for part in parts)]
    assert "src/maskdetect/assets/models/default/verifiers/blazeface.int8.json" in needed
    assert [path for path in needed if ignored(path) or not (ROOT / path).exists()] == []
    for path in (".venv/bin/python", ".git/HEAD", "src/maskdetect/__pycache__/cli.cpython-311.pyc",
                 "src/maskdetect/assets/models/default.abc.v3.onnx", "tests/conftest.py"):
        assert ignored(path), path


def test_workers_must_be_a_positive_number(monkeypatch, capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err
    monkeypatch.setenv(WORKERS_ENV, "two")
    assert main(["serve"]) == 2
    assert "$MASKDETECT_WORKERS must be a whole number, got 'two'" in capsys.readouterr().err
    monkeypatch.setenv(WORKERS_ENV, "-1")
    assert main(["serve"]) == 2
    assert "$MASKDETECT_WORKERS must be at least 1, got -1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="several workers need a fixed port"):
        ServeOptions(workers=2, port=0)


def test_port_and_workers_come_from_options_then_environment(monkeypatch):
    served = []
    monkeypatch.setattr("maskdetect.serve.commands.serve", served.append)
    monkeypatch.setenv(PORT_ENV, "9123")
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert main(["serve", "--detector", "blazeface-fast"]) == 0
    assert (served[-1].port, served[-1].workers, served[-1].model.detector) == (9123, 3, "blazeface-fast")
    assert main(["serve", "--port", "9000", "--workers", "2"]) == 0
    assert (served[-1].port, served[-1].workers) == (9000, 2)
    monkeypatch.delenv(PORT_ENV)
    monkeypatch.delenv(WORKERS_ENV)
    assert main(["serve"]) == 0
    assert (served[-1].port, served[-1].workers, served[-1].host) == (8000, 1, "127.0.0.1")


def test_worker_options_travel_as_json(monkeypatch):
    model = ModelOptions("models/mine", detector="blazeface-fast", precision="fp32", candidate_threshold=0.3,
                         face_threshold=0.4, verify=False)
    options = ServeOptions(port=8001, workers=2, model=model, cors_origins=("http://a.example",))
    assert ServeOptions.from_json(options.to_json()) == options
    assert isinstance(ServeOptions.from_json(options.to_json()).model, ModelOptions)
    with pytest.raises(ValueError, match="keys among"):
        ServeOptions.from_json('{"workers": 2, "colour": "red"}')
    with pytest.raises(ValueError, match=r"unknown keys \['threshold'\]"):
        ServeOptions.from_json('{"workers": 2, "model": {"threshold": 0.4}}')
    monkeypatch.delenv(OPTIONS_ENV, raising=False)
    with pytest.raises(RuntimeError, match="MASKDETECT_SERVE_OPTIONS is not set"):
        app_from_env()
    assert f"{server_module.__name__}:{app_from_env.__name__}" == server_module.FACTORY


def test_the_environment_is_restored_after_serving(monkeypatch):
    monkeypatch.setenv("MASKDETECT_TEST_VALUE", "before")
    with server_module._environment({"MASKDETECT_TEST_VALUE": "during", "MASKDETECT_TEST_NEW": "x"}):
        assert os.environ["MASKDETECT_TEST_VALUE"] == "during"
    assert os.environ["MASKDETECT_TEST_VALUE"] == "before" and "MASKDETECT_TEST_NEW" not in os.environ


def test_a_bad_checkpoint_is_one_clear_error_before_any_worker_starts(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    port = free_port()
    assert main(["serve", "--workers", "2", "--port", str(port), "--model", str(bad)]) == 2
    error = capsys.readouterr().err
    assert f"{bad}: neither a maskdetect checkpoint nor an ONNX export" in error
    with socket.socket() as sock:  # nothing listened
        sock.bind(("127.0.0.1", port))
