"""Detection runs over many inputs, and their evaluation.

- `media.detect_files`: images, folders, videos and a camera, annotated, one JSON line per image or
  frame (`log` keeps the run's log, `inputs` gathers the files).
- `evaluate.evaluate_detection` / `evaluate.annotator_agreement`: recall, precision and labels on a
  Pascal VOC photo set.
- `ray_batch.run_batch`: the same over millions of photos on Ray Data's actors, Parquet out, resumable
  by shard (`batch_inputs` reads the inputs and keeps the shard plan); Ray is the `ray` extra.
- `summary`: faces by class per folder, path component or day, from either's output (CSV and PNG).
- `commands`: the `detect`, `batch`, `summarize`, `export` and `evaluate-detect` commands over them.
"""
