"""The three classes, their order and colours, and every data set's label names mapped onto them."""

from __future__ import annotations

COVERED = "covered"
INCORRECT = "incorrect"
UNCOVERED = "uncovered"

# The order is the model's output order and ImageFolder's (alphabetical) order: keep them equal.
CLASSES: tuple[str, ...] = (COVERED, INCORRECT, UNCOVERED)

# RGB colours for boxes and plots: green worn right, amber worn wrong, red absent.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    COVERED: (46, 160, 67),
    INCORRECT: (230, 145, 20),
    UNCOVERED: (210, 40, 40),
}

# Every label name seen in the sources, lower-cased, to one of the three classes.
_ALIASES: dict[str, str] = {
    "covered": COVERED,
    "with_mask": COVERED,
    "mask": COVERED,
    "cmfd": COVERED,
    "correct": COVERED,
    "incorrect": INCORRECT,
    "with_incorrect_mask": INCORRECT,
    "mask_weared_incorrect": INCORRECT,
    "mask_worn_incorrectly": INCORRECT,
    "imfd": INCORRECT,
    "uncovered": UNCOVERED,
    "without_mask": UNCOVERED,
    "no_mask": UNCOVERED,
    "nomask": UNCOVERED,
}

# MaskedFace-Net's file-name suffixes: which class and which way the mask is worn.
MASKEDFACE_SUBTYPES: dict[str, tuple[str, str]] = {
    "Mask": (COVERED, "correct"),
    "Mask_Mouth_Chin": (INCORRECT, "nose_exposed"),
    "Mask_Nose_Mouth": (INCORRECT, "chin_exposed"),
    "Mask_Chin": (INCORRECT, "nose_mouth_exposed"),
    # Not in MaskedFace-Net: `maskdetect synth`'s mask pulled down onto the neck.
    "Mask_Neck": (INCORRECT, "nose_mouth_exposed"),
}


def normalise_label(name: str) -> str:
    """Map a data set's label name onto one of the three classes.

    Args:
        name: a label as a source writes it, e.g. ``"mask_weared_incorrect"``.

    Returns:
        ``"covered"``, ``"incorrect"`` or ``"uncovered"``.

    Raises:
        ValueError: the name is not known; the message lists the known ones.

    >>> normalise_label("with_mask")
    'covered'
    >>> normalise_label("Mask_Weared_Incorrect")
    'incorrect'
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return _ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown label {name!r}; known labels: {', '.join(sorted(_ALIASES))}") from None


def class_index(name: str) -> int:
    """The model output index of a class name (after normalising it).

    >>> class_index("without_mask")
    2
    """
    return CLASSES.index(normalise_label(name))
