"""Mask synthesis: placements where they belong, files named and framed as MaskedFace-Net's, skips counted."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from maskdetect.cli import main
from maskdetect.faces import landmarks as lm
from maskdetect.faces.crop import aligned_headshot_box
from maskdetect.synth.masks import KINDS, MaskStyle, random_style
from maskdetect.synth.placement import KNOWN_PLACEMENTS, PLACEMENTS
from maskdetect.synth.render import draw_mask
from maskdetect.synth.runner import SynthOptions, headshot_frame, synthesize

ASTRONAUT_BOX = (175, 65, 265, 185)

# Which parts each placement covers (MaskedFace-Net's definitions; Mask_Neck is ours). The neck is
# looked at 14 px under the chin's lowest point; None: either (Mask_Neck's top edge may sit on the chin).
COVERS = {
    "Mask": {"nose": True, "mouth": True, "chin": True, "neck": False},
    "Mask_Mouth_Chin": {"nose": False, "mouth": True, "chin": True, "neck": False},
    "Mask_Nose_Mouth": {"nose": True, "mouth": True, "chin": False, "neck": False},
    "Mask_Chin": {"nose": False, "mouth": False, "chin": True, "neck": False},
    "Mask_Neck": {"nose": False, "mouth": False, "chin": None, "neck": True},
}
PARTS = {"nose": lm.NOSE_TIP, "mouth": lm.UPPER_LIP_INNER, "chin": lm.CHIN_BOTTOM, "neck": lm.CHIN_BOTTOM}
LOOK_UP = {"chin": 4.0, "neck": -14.0}  # pixels above the landmark


@pytest.fixture(scope="module")
def mesh() -> lm.FaceMesh:
    return lm.FaceMesh()


@pytest.fixture(scope="module")
def astronaut_face(mesh):
    """The astronaut's head and its mesh in the crop's pixels."""
    photo = Image.fromarray(data.astronaut())
    res = mesh.landmarks_in_box(photo, ASTRONAUT_BOX)
    crop = photo.crop((130, 30, 310, 230))
    return crop, res.points - np.array([130, 30, 0], dtype=np.float32)


def _coverage_at(drawn, points, index: int, up: float = 0.0) -> float:
    x, y = points[index, :2]
    return float(drawn.coverage[int(round(y - up)), int(round(x))])


@pytest.mark.parametrize("placement", KNOWN_PLACEMENTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_placements_cover_the_right_parts(astronaut_face, placement, seed):
    crop, points = astronaut_face
    rng = np.random.default_rng(seed)
    style = random_style(rng)
    drawn = draw_mask(crop, points, placement, style, rng)
    assert drawn.image.size == crop.size
    for part, index in PARTS.items():
        # The chin point is the face's lowest: look a few pixels above it, on the chin itself.
        covered = _coverage_at(drawn, points, index, up=LOOK_UP.get(part, 0.0))
        if COVERS[placement][part] is not None:
            assert (covered > 0.9) == COVERS[placement][part], (placement, part, covered, style)
    for eye in lm.EYE_OUTER_CORNERS:
        assert _coverage_at(drawn, points, eye) == 0.0
    # Where the mask is, the pixels changed; where it is not, they did not.
    before, after = np.asarray(crop, dtype=int), np.asarray(drawn.image, dtype=int)
    nose = tuple(int(round(v)) for v in points[lm.NOSE_TIP, :2][::-1])
    changed = np.abs(before[nose] - after[nose]).sum()
    assert (changed > 10) == COVERS[placement]["nose"]
    eye = tuple(int(round(v)) for v in points[lm.EYE_OUTER_CORNERS[0], :2][::-1])
    assert np.abs(before[eye] - after[eye]).sum() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_on_a_small_face(astronaut_face, kind):
    crop, points = astronaut_face
    small = crop.resize((60, 66), Image.BILINEAR)
    scale = np.array([60 / crop.width, 66 / crop.height])
    rng = np.random.default_rng(5)
    style = random_style(rng, kinds=(kind,))
    drawn = draw_mask(small, points[:, :2] * scale, "Mask", style, rng)
    assert drawn.image.size == (60, 66) and drawn.style.kind == kind
    assert 0.1 < drawn.coverage.mean() < 0.5


def test_bad_style_names_the_choices():
    with pytest.raises(ValueError, match="known: surgical, cloth, n95"):
        MaskStyle("bandana", (0, 0, 0))
    with pytest.raises(ValueError, match="known: Mask, Mask_Mouth_Chin"):
        SynthOptions(placements=("Mask_Nose",))


def test_headshot_frame_inverts_aligned_box():
    box = (40.0, 50.0, 90.0, 120.0)
    x0, y0, x1, y1 = headshot_frame(box)
    back = aligned_headshot_box(x1 - x0, y1 - y0)
    assert np.allclose(np.array(back) + [x0, y0, x0, y0], box, atol=0.006)  # boxes are kept to 0.01 px


def _write_voc(root, photo: Image.Image, objects: list[tuple[str, tuple]]) -> None:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    photo.save(root / "images" / "astro.png")
    objs = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    (root / "annotations" / "astro.xml").write_text(
        f"<annotation><filename>astro.png</filename>{objs}</annotation>"
    )


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    objects = [
        ("without_mask", ASTRONAUT_BOX),
        ("with_mask", (10, 10, 60, 60)),  # masked already: passed over
        ("without_mask", (400, 400, 420, 420)),  # 20 px: too small
    ]
    _write_voc(root, Image.fromarray(data.astronaut()), objects)
    out = tmp_path_factory.mktemp("out")
    summary = synthesize(root, out, SynthOptions(seed=3))
    return root, out, summary


def test_voc_run_writes_maskedface_net_layout(voc_run):
    _, out, summary = voc_run
    assert summary.faces_drawn == 1 and summary.images_written == 4
    assert summary.skipped["too_small"] == 1
    assert summary.passed_over == {"not_uncovered_covered": 1}
    expected = {"CMFD/00000/00000_Mask.jpg"} | {f"IMFD/00000/00000_{p}.jpg" for p in PLACEMENTS[1:]}
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")} == expected
    assert (out / "contact_sheet.png").is_file()
    assert json.loads((out / "synth_summary.json").read_text())["faces_drawn"] == 1

    rows = list(csv.DictReader((out / "synth_manifest.csv").open()))
    assert {r["suffix"]: (r["label"], r["subtype"]) for r in rows} == {
        "Mask": ("covered", "correct"),
        "Mask_Mouth_Chin": ("incorrect", "nose_exposed"),
        "Mask_Nose_Mouth": ("incorrect", "chin_exposed"),
        "Mask_Chin": ("incorrect", "nose_mouth_exposed"),
    }
    for row in rows:
        with Image.open(out / row["file"]) as image:
            size = image.size
        box = [float(row[k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1")]
        # The data tools take the face box of these images from aligned_headshot_box: it must match.
        assert np.allclose(aligned_headshot_box(*size), box, atol=1.5), (size, box)
        assert box[2] - box[0] == pytest.approx(ASTRONAUT_BOX[2] - ASTRONAUT_BOX[0], abs=0.01)
        assert row["source_photo"] == "images/astro.png" and row["source_face"] == "0"


def test_same_seed_same_images(voc_run, tmp_path):
    root, out, _ = voc_run
    again = synthesize(root, tmp_path / "again", SynthOptions(seed=3))
    other = synthesize(root, tmp_path / "other", SynthOptions(seed=4))
    assert again.images_written == other.images_written == 4
    name = "IMFD/00000/00000_Mask_Chin.jpg"
    assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        synthesize(root, out, SynthOptions(seed=3))


def test_folder_of_non_faces_is_skipped_and_counted(tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    Image.fromarray(data.chelsea()).save(src / "cat.jpg")
    Image.new("RGB", (100, 100), "grey").save(src / "grey.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    summary = synthesize(src, tmp_path / "out")
    assert summary.faces_drawn == 0 and summary.images_written == 0
    assert summary.skipped == {"low_mesh_score": 2, "unreadable_image": 1}
    assert not list((tmp_path / "out").rglob("*.jpg"))


def test_folder_of_faces_and_cli(tmp_path, capsys):
    src = tmp_path / "faces"
    src.mkdir()
    Image.fromarray(data.astronaut()).crop((120, 20, 320, 240)).save(src / "astro.jpg")
    out = tmp_path / "out"
    assert main(["synth", str(src), str(out), "--placements", "Mask,Mask_Chin", "--kinds", "cloth"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["faces_drawn"] == 1
    assert sorted(p.name for p in out.rglob("*.jpg")) == ["00000_Mask.jpg", "00000_Mask_Chin.jpg"]
    assert main(["synth", str(src), str(tmp_path / "o2"), "--placements", "Mask_Nose"]) == 2
    assert "Mask_Nose" in capsys.readouterr().err


def test_shipped_synth_sample_reads_as_maskedface_net():
    """The data tools' MaskedFace-Net reader takes synth output as is, labels and face boxes included."""
    from pathlib import Path

    from maskdetect.data.maskedface_net import scan_maskedface_net

    root = Path(__file__).resolve().parents[1] / "src/maskdetect/assets/sample/synth"
    rows = list(scan_maskedface_net(root))
    manifest = {r["file"]: r for r in csv.DictReader((root / "synth_manifest.csv").open())}
    assert len(rows) == len(manifest) == 80
    for row in rows:
        ours = manifest[Path(row.path).relative_to(root.resolve()).as_posix()]
        assert (row.label, row.subtype) == (ours["label"], ours["subtype"])
        box = [float(ours[k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1")]
        assert np.allclose(row.box, box, atol=1.5)
    assert sum(r.label == "incorrect" for r in rows) == 60
