"""Upload limits, kept apart from the web stack so that the CLI can show them without importing it."""

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
