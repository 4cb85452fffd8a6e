"""ONNX export of a checkpoint's classifier: the one recipe, and its per-user cache.

The exported graph maps a normalised N x 3 x S x S batch to N x C logits (dynamic batch axis). The
checkpoint's preprocessing travels in the file's metadata_props, so an ONNX file alone is enough to
run the classifier the way it was trained (`maskdetect.runtime.load_classifier` runs it).

The recipe is torch's TorchScript exporter: on the bundled MobileNetV2 it exports in 1-3 s where the
dynamo exporter takes 8-13 s, with the same outputs (max |diff| to eager torch 7e-7 for both). The
dynamo exporter is the fallback where the TorchScript one raises.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from maskdetect.fileio import atomic_path, file_digest, user_cache_dir
from maskdetect.preprocess import Preprocessing

log = logging.getLogger(__name__)

METADATA_PREPROCESSING = "maskdetect.preprocessing"
METADATA_ARCH = "maskdetect.arch"
EXPORT_VERSION = "3"  # bump when the export recipe changes, so cached files are rebuilt
OPSET = 18
_DYNAMIC_BATCH = {0: "batch"}


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

    model = with_features(model_from_checkpoint(checkpoint, source))
    pre = preprocessing_of(checkpoint)
    example = torch.zeros(2, 3, pre.input_size, pre.input_size)
    try:
        proto = onnx.load_model_from_string(_torchscript_export(model, example))
    except (TypeError, RuntimeError, AttributeError, ValueError) as err:
        log.info("TorchScript ONNX export of %s failed (%s); trying the dynamo exporter", source, err)
        proto = _dynamo_export(model, example)
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


def last_linear(model: Any) -> Any:
    """The model's last `nn.Linear` (its classifier head), or None: its input is the face's features.

    >>> from torch import nn
    >>> last_linear(nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Linear(8, 3))).out_features
    3
    """
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def with_features(model: Any) -> Any:
    """The model as a module returning (logits, features): the features are what its last linear
    layer reads (for MobileNetV2 the pooled 1280 values), which the face verifier weighs.
    A model without a linear head comes back unchanged (logits only).

    >>> from torch import nn
    >>> import torch
    >>> logits, features = with_features(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))(torch.zeros(2, 4))
    >>> tuple(logits.shape), tuple(features.shape)
    ((2, 3), (2, 4))
    """
    from torch import nn

    head = last_linear(model)
    if head is None:
        return model

    class WithFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.eval()

        def forward(self, x: Any) -> tuple[Any, Any]:
            seen: list[Any] = []
            hook = head.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0]))
            try:
                logits = self.model(x)
            finally:
                hook.remove()
            return logits, seen[-1].flatten(1)

    return WithFeatures().eval()


def _torchscript_export(model: Any, example: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation and tracer warnings say nothing to a user
        outputs = ["logits", "features"] if isinstance(model(example), tuple) else ["logits"]
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=outputs,
            dynamic_axes={name: _DYNAMIC_BATCH for name in ("input", *outputs)},
        )
    return buffer.getvalue()


def _dynamo_export(model: Any, example: Any) -> Any:
    import torch

    # The exporter prints progress on stdout and logs every graph pass: keep the CLI's output clean.
    for name in ("onnx_ir", "onnxscript"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            model, (example,), dynamo=True, verbose=False, opset_version=OPSET,
            input_names=["input"],
            output_names=["logits", "features"][: 2 if isinstance(model(example), tuple) else 1],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        )
    return program.model_proto


def onnx_preprocessing(path: str | os.PathLike) -> Preprocessing:
    """The preprocessing stored in an exported ONNX file's metadata, once its weights are checked.

    Raises:
        ValueError: the file is not ONNX, has no maskdetect preprocessing metadata, or a weight that
            is not finite (NaN or infinity: a model that labels every face alike with a NaN score).
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf and onnx raise several kinds for bytes that are not ONNX
        raise ValueError(
            f"{path}: not a readable ONNX file ({type(err).__name__}); "
            "expected an ONNX file written by `maskdetect export`"
        ) from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_PREPROCESSING not in props:
        raise ValueError(
            f"{path}: ONNX file has no {METADATA_PREPROCESSING} metadata; "
            "expected an ONNX file written by `maskdetect export`"
        )
    _check_finite_weights(model, path)
    return Preprocessing.from_dict(json.loads(props[METADATA_PREPROCESSING]))


def _check_finite_weights(model: Any, path: str | os.PathLike) -> None:
    import numpy as np
    from onnx import numpy_helper

    for weight in model.graph.initializer:
        if weight.data_location == weight.EXTERNAL:  # never written by `export`; not read from here
            continue
        values = numpy_helper.to_array(weight)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(f"{path}: weight {weight.name!r} holds values that are not finite (NaN or "
                             "infinity): the weights of a diverged or damaged model")


def cached_onnx_path(checkpoint_path: str | os.PathLike) -> Path:
    """Where the ONNX export of a checkpoint is cached: the per-user cache (`fileio.user_cache_dir`),
    never beside the checkpoint. The name carries the checkpoint's hash and the export recipe's
    version, so a changed checkpoint never reuses a stale export.
    """
    name = f"{file_digest(checkpoint_path)[:16]}.v{EXPORT_VERSION}.onnx"
    return user_cache_dir("onnx") / name


def ensure_onnx(checkpoint: dict[str, Any], checkpoint_path: str | os.PathLike) -> Path:
    """The cached ONNX export of a checkpoint file, exporting it first if needed."""
    path = cached_onnx_path(checkpoint_path)
    if not path.is_file():
        log.info("exporting %s to ONNX at %s (once; cached)", checkpoint_path, path)
        export_onnx(checkpoint, path, source=str(checkpoint_path))
    return path
