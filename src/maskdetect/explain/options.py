"""The explainers' choices, in a module light enough for the CLI to import when it builds --help."""

METHODS = ("occlusion", "gradcam")
MODES = ("exact", "coarse")
FILLS = ("grey", "mean", "blur")
BORDERS = ("clip", "shift")
