"""Detection runs over many inputs, and their evaluation.

- `media.detect_files`: images, folders, videos and a camera, annotated, one JSON line per image or
  frame (`log` keeps the run's log, `inputs` gathers the files).
- `evaluate.evaluate_detection` / `evaluate.annotator_agreement`: recall, precision and labels on a
  Pascal VOC photo set.
- `commands`: the `detect`, `export` and `evaluate-detect` commands over them.
"""
