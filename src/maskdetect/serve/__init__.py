"""The REST API and web page over the Predictor: `create_app(...)` builds the FastAPI app."""

from maskdetect.serve.app import create_app

__all__ = ["create_app"]
