"""Detection runs over many inputs: photos, folders, videos, streams, a camera, and millions of photos.

- `media.detect_files`: images, folders, videos and a camera, annotated, one JSON line per image or
  frame (`log` keeps the run's log, `inputs` gathers the files).
- `video.VideoAnalyzer`: one read loop for videos, streams and cameras; `tracks` turns faces into
  people, `timeline` and `video_out` write what a video gives.
- `ray_batch.run_batch`: the same over millions of photos on Ray Data's actors, Parquet out, resumable
  by shard (`batch_inputs` reads the inputs and keeps the shard plan); Ray is the `ray` extra.
- `summary`: faces by class per folder, path component or day, from either's output (CSV and PNG).
- `commands`: the `detect`, `batch`, `summarize` and `export` commands over them.

Scoring all this (evaluate-detect, the VOC set reader, clips with known answers, track scores) is
`maskdetect.evaluation`, which this package never imports.
"""
