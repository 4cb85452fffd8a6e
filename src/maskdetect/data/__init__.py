"""Data sources, manifests, verification, grouped splits, the ImageFolder tree, caching and downloads."""
