"""Tiny data sets in the real layouts, written into tmp_path by the data tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def face_image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A random but distinct picture (different seeds give far-apart difference hashes)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BILINEAR)


def write_image(path: Path, seed: int, size: tuple[int, int] = (64, 64), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    face_image(seed, size).save(path, format=fmt or ("PNG" if path.suffix == ".png" else "JPEG"))
    return path


def make_maskedface_net(root: Path, ids: list[int]) -> Path:
    """CMFD/<thousands>/<id>_Mask.jpg and the three IMFD kinds for each FFHQ id."""
    for number, ffhq_id in enumerate(ids):
        folder = f"{ffhq_id // 1000 * 1000:05d}"
        write_image(root / "CMFD" / folder / f"{ffhq_id:05d}_Mask.jpg", 1000 + number)
        for k, suffix in enumerate(("Mask_Mouth_Chin", "Mask_Nose_Mouth", "Mask_Chin")):
            write_image(root / "IMFD" / folder / f"{ffhq_id:05d}_{suffix}.jpg", 2000 + 10 * number + k)
    return root


def make_ffhq_thumbnails(root: Path, ids: list[int]) -> Path:
    for number, ffhq_id in enumerate(ids):
        folder = f"{ffhq_id // 1000 * 1000:05d}"
        write_image(root / "thumbnails128x128" / folder / f"{ffhq_id:05d}.png", 3000 + number, (128, 128))
    return root


def voc_xml(filename: str, size: tuple[int, int], objects: list[tuple[str, tuple[int, ...]]]) -> str:
    parts = [f"<annotation><folder>images</folder><filename>{filename}</filename>",
             f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def make_voc(root: Path, photos: dict[str, list[tuple[str, tuple[int, int, int, int]]]],
             images: str = "images", seed: int = 0, size: tuple[int, int] = (200, 150)) -> Path:
    """A VOC set: one photo per key (file name as the xml says it) with its boxes."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for number, (name, objects) in enumerate(photos.items()):
        write_image(root / images / name, seed + number, size)
        (root / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, size, objects))
    return root


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb's signature)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")
