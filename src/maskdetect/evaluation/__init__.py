"""Evaluation and research scoring of the detection pipeline: the product never imports it.

- `detection.evaluate_detection` / `detection.annotator_agreement`: recall, precision and labels on a
  Pascal VOC photo set (read by `maskdetect.data.voc_set`); `false_alarms` reports and draws what
  matched no face.
- `clips`: videos with known answers, a virtual camera moved over labelled photos; `track_score`
  scores a tracker on them (MOTA, IDF1, people by class; py-motmetrics, the `research` extra).
- `commands`: the `evaluate-detect` command.

A pipeline (ARCHITECTURE.md): it uses the core (`Predictor`) and what lies below, never `detect/`;
`track_score` takes the tracker's tracks by their shape, not by importing them.
"""
