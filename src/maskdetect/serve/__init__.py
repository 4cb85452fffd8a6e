"""The REST API and web page over the Predictor: `create_app(...)` builds the FastAPI app."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the app is wanted, not when the CLI lists its commands.
    if name == "create_app":
        from maskdetect.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'maskdetect.serve' has no attribute {name!r}")
