"""Upload limits, kept apart from the web stack so that the CLI can show them without importing it."""

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# A service decodes several uploads at once, each up to max_pixels x 3 bytes: a lower bound than the
# command line's (maskdetect.images.DEFAULT_MAX_PIXELS, which admits 200 MP phone photos).
SERVE_MAX_PIXELS = 50_000_000
# A body must be complete within BODY_TIMEOUT_S and, after BODY_GRACE_S, keep arriving at
# MIN_BODY_RATE bytes/s: a 10 MB photo over a 1 Mbit/s uplink takes 80 s; a client that sends a few
# bytes and waits is cut off after the grace.
BODY_TIMEOUT_S = 120.0
BODY_GRACE_S = 5.0
MIN_BODY_RATE = 16 * 1024
# Decoded images waiting for the model, in pixels (3 bytes each as RGB, and about as much again for
# the detector's copies): two images at the pixel limit, then a request waits or gets 503.
DECODED_PIXELS_BUDGET = 2 * SERVE_MAX_PIXELS
BUDGET_WAIT_S = 10.0
# Images over this many pixels (a 16 MP phone photo is 4656x3496) run in a lane of their own.
LARGE_IMAGE_PIXELS = 20_000_000
