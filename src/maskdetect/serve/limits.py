"""Upload limits, kept apart from the web stack so that the CLI can show them without importing it."""

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# A service decodes several uploads at once, each up to max_pixels x 3 bytes: a lower bound than the
# command line's (maskdetect.images.DEFAULT_MAX_PIXELS, which admits 200 MP phone photos).
SERVE_MAX_PIXELS = 50_000_000
