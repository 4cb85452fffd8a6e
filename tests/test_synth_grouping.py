"""Masks drawn on a photo's face must share that photo's split group, or they leak across splits."""

from __future__ import annotations

import shutil

from maskdetect.data.sample import sample_data_dir
from maskdetect.data.sources import build_manifest
from maskdetect.synth.runner import SynthOptions, synthesize


def test_shipped_synthetic_faces_group_with_their_source_photos():
    sample = sample_data_dir()
    build = build_manifest(voc=[sample / "andrewmvd"], maskedface_net=[sample / "synth"])
    photo_groups = {row.group for row in build.rows if row.source == "voc"}
    synth_groups = {row.group for row in build.rows if row.source == "maskedface_net"}
    assert synth_groups and synth_groups <= photo_groups


def test_synth_writes_the_source_photo_group(tmp_path):
    # One sample photo with large bare faces, as its own VOC set.
    sample = sample_data_dir() / "andrewmvd"
    voc = tmp_path / "photos"
    for sub, name in [("images", "maksssksksss110.jpg"), ("annotations", "maksssksksss110.xml")]:
        (voc / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / sub / name, voc / sub / name)
    out = tmp_path / "synth"
    summary = synthesize(voc, out, SynthOptions(placements=("Mask", "Mask_Chin")))
    assert summary.faces_drawn >= 1

    build = build_manifest(voc=[voc], maskedface_net=[out])
    groups = {row.group for row in build.rows}
    assert groups == {"photos/maksssksksss110"}
