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
# Every connection: its request headers must be in within HEADER_TIMEOUT_S of the connection opening
# (or of the previous answer), be at most MAX_HEADER_BYTES in all and MAX_HEADERS in number (431
# past them; browsers send under 4 KB in about 20 headers); each worker holds MAX_CONNECTIONS open
# at most (a quarter of Linux's usual 1,024 file descriptors) and answers more with 503.
HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_CONNECTIONS = 256
# A multipart form carries one image: a few parts at most. Past MAX_FORM_PARTS the body is refused
# (400) before the rest is parsed: a 10 MB body holds over a million empty parts.
MAX_FORM_PARTS = 100
