"""The int8 classifier gives float32's labels, and the same answers on CPUs with and without AVX-512.

ONNX Runtime picks its int8 kernels by the CPU it runs on: VNNI on this project's machines, AVX2's
VPMADDUBSW (which saturates in int16) on many others. To run the AVX2 path here, a subprocess runs
under qemu-user with a Haswell CPU model (AVX2, no AVX-512: QEMU's TCG emulates none of AVX-512).
The test that this file replaced compared labels on calibration crops, faces and non-faces alike,
on whatever CPU ran it; these compare them on the labelled faces of the bundled sample photos.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from maskdetect.data.voc_set import load_voc_faces
from maskdetect.export import cached_onnx_path
from maskdetect.images import open_image
from maskdetect.quantize import SAMPLE_PHOTOS, int8_path
from maskdetect.runtime import load_classifier, resolve_checkpoint

SAMPLE_XML = SAMPLE_PHOTOS.parent / "annotations"
QEMU = shutil.which("qemu-x86_64")
EMULATED_FACES = 24  # about a minute under emulation

# Logits of one model on the crops in argv[2], written to argv[3]: the same one-thread session on
# either CPU, nothing of maskdetect imported (under emulation every import costs seconds).
RUN_MODEL = textwrap.dedent("""
    import sys
    import numpy as np
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    crops = np.load(sys.argv[2])
    name = session.get_inputs()[0].name
    np.save(sys.argv[3], np.concatenate([session.run(None, {name: crops[i:i + 8]})[0]
                                         for i in range(0, len(crops), 8)]))
""")


@pytest.fixture(scope="module")
def classifiers():
    return load_classifier(precision="fp32"), load_classifier(precision="int8")


@pytest.fixture(scope="module")
def face_crops(classifiers) -> np.ndarray:
    """Every labelled face of 16 px and more on the 50 bundled sample photos, cropped as the
    Predictor crops a detector's box."""
    preprocessing = classifiers[0].preprocessing
    crops = []
    for xml in sorted(SAMPLE_XML.glob("*.xml")):
        image_path, faces = load_voc_faces(xml, SAMPLE_PHOTOS)
        photo = open_image(image_path)
        crops += [preprocessing.face_array(photo, box) for box, _ in faces
                  if min(box[2] - box[0], box[3] - box[1]) >= 16]
    return np.stack(crops).astype(np.float32)


def _int8_file() -> Path:
    path = int8_path(cached_onnx_path(resolve_checkpoint(None)))
    assert path.is_file()  # made by the classifiers fixture
    return path


def _logits_on_avx2(model: Path, crops: np.ndarray, tmp_path: Path) -> np.ndarray:
    script, inputs, outputs = tmp_path / "run_model.py", tmp_path / "crops.npy", tmp_path / "logits.npy"
    script.write_text(RUN_MODEL)
    np.save(inputs, crops)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, str(script), str(model), str(inputs),
                           str(outputs)], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(outputs)


def test_int8_labels_at_least_98_percent_of_faces_as_float32_does(classifiers, face_crops):
    fp32, int8 = classifiers
    assert len(face_crops) >= 100, len(face_crops)
    same = (fp32(face_crops).argmax(1) == int8(face_crops).argmax(1)).mean()
    assert same >= 0.98, same


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the AVX2 kernels are x86-64's")
@pytest.mark.skipif(QEMU is None and not os.environ.get("CI"), reason="qemu-user is not installed "
                    "(scripts/install-test-tools.sh installs it; CI fails without it)")
def test_int8_gives_the_same_answers_on_an_avx2_cpu_without_avx512(classifiers, face_crops, tmp_path):
    assert QEMU is not None, "qemu-x86_64 missing: run scripts/install-test-tools.sh"
    fp32, int8 = classifiers
    # The faces float32 is least sure of: where saturation flips a label first.
    logits = fp32(face_crops)
    top2 = np.sort(logits, axis=1)[:, -2:]
    crops = face_crops[np.argsort(top2[:, 1] - top2[:, 0])[:EMULATED_FACES]]
    here = int8(crops)
    there = _logits_on_avx2(_int8_file(), crops, tmp_path)
    assert (there.argmax(1) == here.argmax(1)).all(), (there.argmax(1), here.argmax(1))
    assert np.abs(there - here).max() < 0.05, np.abs(there - here).max()
