"""Explanations: where a classifier looks (occlusion, Grad-CAM), overlays, and how much of the heat
falls on the nose and mouth."""
