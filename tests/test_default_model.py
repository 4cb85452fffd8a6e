"""The bundled model: it loads with its preprocessing and labels the shipped sample's faces sensibly.

The sample photos were among its training photos, so this guards the bundle (a wrong file, a broken
export, a crop-policy mismatch), not its quality: docs/model-card.md reports that, on unseen data.
"""

from __future__ import annotations

import numpy as np

from maskdetect.checkpoint import load_checkpoint, preprocessing_of
from maskdetect.data.sample import sample_data_dir
from maskdetect.data.voc_set import load_voc_faces
from maskdetect.faces.nms import match_faces
from maskdetect.labels import CLASSES, normalise_label
from maskdetect.predict import Predictor
from maskdetect.runtime import DEFAULT_MODEL, resolve_checkpoint


def test_bundled_model_carries_its_preprocessing():
    classifier = resolve_checkpoint(None)
    assert classifier == resolve_checkpoint(DEFAULT_MODEL) == DEFAULT_MODEL / "classifier.pt"
    checkpoint = load_checkpoint(classifier)
    assert checkpoint["arch"] == "mobilenet_v2"
    prep = preprocessing_of(checkpoint)
    assert prep.classes == CLASSES and prep.input_size == 224


def test_bundled_model_labels_sample_faces():
    voc = sample_data_dir() / "andrewmvd"
    predictor = Predictor()
    right = total = 0
    for stem in ("maksssksksss307", "maksssksksss698", "maksssksksss94"):
        image, truth = load_voc_faces(voc / "annotations" / f"{stem}.xml", voc / "images")
        results = predictor(image)
        matches = match_faces(
            np.array([box for box, _ in truth]), np.array([r.box for r in results]).reshape(-1, 4),
            np.array([r.detection_score for r in results]),
        )
        for (_, label), match in zip(truth, matches, strict=True):
            if match >= 0:
                total += 1
                right += results[match].label == normalise_label(label)
    assert total >= 10
    assert right / total >= 0.8
