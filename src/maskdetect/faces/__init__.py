"""Face detectors, landmarks, and the crop policy shared by training and inference."""
