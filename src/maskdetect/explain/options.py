"""The explainers' choices, in a module light enough for the CLI to import when it builds --help."""

from maskdetect.runtime import BACKENDS

METHODS = ("occlusion", "gradcam")
MODES = ("exact", "coarse")
FILLS = ("grey", "mean", "blur")
BORDERS = ("clip", "shift")
# auto: ONNX Runtime where the export works, else torch (Grad-CAM always needs torch's gradients).
EXPLAIN_BACKENDS = ("auto", *BACKENDS)
