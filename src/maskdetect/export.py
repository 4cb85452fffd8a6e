"""ONNX export of a checkpoint's classifier, and the ONNX Runtime backend that runs it.

The exported graph maps a normalised N x 3 x S x S batch to N x C logits (dynamic batch axis). The
checkpoint's preprocessing travels in the file's metadata_props, so an ONNX file alone is enough to
run the classifier the way it was trained.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from maskdetect.fileio import atomic_path, file_digest
from maskdetect.preprocess import Preprocessing

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx",)
METADATA_PREPROCESSING = "maskdetect.preprocessing"
METADATA_ARCH = "maskdetect.arch"
EXPORT_VERSION = "1"  # bump when the export recipe changes, so cached files are rebuilt
OPSET = 18


def export_onnx(checkpoint: dict[str, Any], output: str | os.PathLike, source: str = "<checkpoint>") -> Path:
    """Export a checkpoint's classifier to an ONNX file (written atomically).

    Args:
        checkpoint: a loaded checkpoint (`maskdetect.checkpoint.load_checkpoint`).
        output: the .onnx file to write.
        source: how to name the checkpoint in errors.

    Returns:
        The path written.

    >>> from maskdetect.models import create_model
    >>> from maskdetect.checkpoint import make_checkpoint
    >>> ckpt = make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size=32))
    >>> import tempfile, pathlib
    >>> export_onnx(ckpt, pathlib.Path(tempfile.mkdtemp()) / "m.onnx").suffix
    '.onnx'
    """
    import onnx
    import torch

    from maskdetect.checkpoint import model_from_checkpoint, preprocessing_of

    model = model_from_checkpoint(checkpoint, source)
    pre = preprocessing_of(checkpoint)
    example = torch.zeros(2, 3, pre.input_size, pre.input_size)
    # The exporter prints progress on stdout and logs every graph pass: keep the CLI's output clean.
    for name in ("onnx_ir", "onnxscript"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            model, (example,), dynamo=True, verbose=False, opset_version=OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        )
    proto = program.model_proto
    metadata = {
        METADATA_PREPROCESSING: json.dumps(pre.to_dict()),
        METADATA_ARCH: str(checkpoint["arch"]),
        "maskdetect.export_version": EXPORT_VERSION,
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(output) as tmp:
        onnx.save_model(proto, str(tmp))
        tmp.chmod(0o644)
    log.info("exported %s to %s", source, output)
    return Path(output)


def onnx_preprocessing(path: str | os.PathLike) -> Preprocessing:
    """The preprocessing stored in an exported ONNX file's metadata.

    Raises:
        ValueError: the file has no maskdetect preprocessing metadata.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_PREPROCESSING not in props:
        raise ValueError(
            f"{path}: ONNX file has no {METADATA_PREPROCESSING} metadata (not a maskdetect export)"
        )
    return Preprocessing.from_dict(json.loads(props[METADATA_PREPROCESSING]))


class OnnxClassifier:
    """Logits for a batch of normalised face arrays, on ONNX Runtime (CPU).

    Calls are thread-safe (ONNX Runtime sessions are).
    """

    def __init__(self, path: str | os.PathLike, intra_threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_threads:
            options.intra_op_num_threads = intra_threads
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]


def cached_onnx_path(checkpoint_path: str | os.PathLike) -> Path:
    """Where the ONNX export of a checkpoint is cached: beside it if that folder is writable,
    else in the user's cache folder (or the temp folder). The name carries the checkpoint's hash,
    so a changed checkpoint never reuses a stale export.
    """
    checkpoint_path = Path(checkpoint_path)
    name = f"{checkpoint_path.stem}.{file_digest(checkpoint_path)[:16]}.v{EXPORT_VERSION}.onnx"
    beside = checkpoint_path.parent
    if os.access(beside, os.W_OK):
        return beside / name
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(base) / "maskdetect" / "onnx"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return cache / name
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "maskdetect-onnx" / name


def ensure_onnx(checkpoint: dict[str, Any], checkpoint_path: str | os.PathLike) -> Path:
    """The cached ONNX export of a checkpoint file, exporting it first if needed."""
    path = cached_onnx_path(checkpoint_path)
    if not path.is_file():
        log.info("exporting %s to ONNX at %s (once; cached)", checkpoint_path, path)
        export_onnx(checkpoint, path, source=str(checkpoint_path))
    return path
