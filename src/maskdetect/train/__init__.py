"""Training and evaluation: the loop, checkpoints of a run, metrics and plots.

`maskdetect.train.loop.train` and `maskdetect.train.evaluate.evaluate_checkpoint` are the entry
points; `maskdetect.train.commands` wraps them as `maskdetect train` and `maskdetect evaluate`.
"""
