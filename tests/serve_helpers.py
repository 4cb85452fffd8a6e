"""Shared pieces of the serve tests: a fake predictor and real photos resized to test sizes."""

from __future__ import annotations

import importlib.util
import io
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from maskdetect.labels import CLASSES

# Debian's chromium, headless as root on a machine with no network (scripts/install-test-tools.sh).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]

ROOT = Path(__file__).resolve().parents[1]
PHOTO_NAMES = ("maksssksksss1.jpg", "maksssksksss100.jpg", "maksssksksss4.jpg", "maksssksksss10.jpg")


@dataclass(frozen=True)
class FakeFace:
    box: tuple[float, float, float, float]
    label: str
    score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    detection_score: float = 0.9

    def to_dict(self) -> dict:
        return {"box": list(self.box), "label": self.label, "score": self.score,
                "probabilities": self.probabilities, "detection_score": self.detection_score}


class FakePredictor:
    """Two faces per image, one covered and one uncovered, placed from the image size."""

    classes = CLASSES
    name = "fake"

    def __init__(self) -> None:
        self.calls = 0
        self.sizes: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, image: Image.Image) -> list[FakeFace]:
        with self.lock:
            self.calls += 1
            self.sizes.append(image.size)
        w, h = image.size
        probs = {"covered": 0.8, "incorrect": 0.1, "uncovered": 0.1}
        return [
            FakeFace((0.1 * w, 0.1 * h, 0.3 * w, 0.4 * h), "covered", 0.8, probs),
            FakeFace((0.5 * w, 0.2 * h, 0.7 * w, 0.5 * h), "uncovered", 0.7, probs),
        ]


def photo_dir(shared_data: Path) -> Path:
    return shared_data / "andrewmvd-face-mask" / "images"


def photo_jpeg(path: Path, size: tuple[int, int] | None = (640, 480), quality: int = 90) -> bytes:
    """A real photo as JPEG bytes, resized to `size` (None keeps its own size)."""
    image = Image.open(path).convert("RGB")
    if size is not None:
        image = image.resize(size, Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR: length at 8, type at 12, data at 16 (width, height as big-endian u32), CRC at 29.
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def make_checkpoint_file(folder: Path) -> Path:
    """A real (untrained, seeded) small CNN checkpoint: the full Predictor path with a fast model.

    The bundled default model is used instead where it exists; this keeps the tests independent of it.
    """
    import torch

    from maskdetect.checkpoint import make_checkpoint, save_checkpoint
    from maskdetect.models import create_model
    from maskdetect.preprocess import Preprocessing

    torch.manual_seed(0)
    path = folder / "small_cnn.pt"
    model = create_model("small_cnn")
    save_checkpoint(make_checkpoint(model, "small_cnn", Preprocessing(input_size=64),
                                    metrics={"note": "untrained test model"}), path)
    return path


def load_bench_module():
    """bench/load_test.py as a module: its load runner and its scan and pixel bombs."""
    if str(ROOT / "bench") not in sys.path:  # as when it runs as a script: `import harness` beside it
        sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("serve_load_test", ROOT / "bench" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class GatedPredictor(FakePredictor):
    """Holds every call until released: lets a test fill the server up."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, image):
        self.entered.set()
        assert self.release.wait(30), "test never released the predictor"
        return super().__call__(image)


def connect(url: str) -> socket.socket:
    """A raw TCP connection to a server's `url` (http://host:port)."""
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    """All a server sends until it closes the connection; socket.timeout if it is still open after
    `limit_s` seconds without a byte."""
    sock.settimeout(limit_s)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def wait_for(condition, limit_s: float = 10.0) -> bool:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
