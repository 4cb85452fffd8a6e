"""Model registry: `create_model(name, num_classes=3, pretrained=...)` and `list_models()`."""

from maskdetect.models.registry import create_model, input_normalisation, list_models, register_model

__all__ = ["create_model", "input_normalisation", "list_models", "register_model"]
