"""The training run: `train(config)` reads a split tree and writes checkpoints, metrics and its config.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one line per epoch), ``best.pt`` (lowest
validation loss), ``last.pt`` and ``resume.pt`` (everything needed to continue after a kill: weights,
optimizer, random states, the position in the epoch). All are written atomically by rank 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from maskdetect.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from maskdetect.data.tree import tree_crop_policy
from maskdetect.faces.crop import CropPolicy
from maskdetect.fileio import atomic_write_text
from maskdetect.labels import CLASSES
from maskdetect.models import create_model, input_normalisation
from maskdetect.options import usable_cores
from maskdetect.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from maskdetect.train.augment import eval_transform, train_transform
from maskdetect.train.config import TrainConfig, save_config
from maskdetect.train.dataset import (
    FaceFolder,
    SeededSampler,
    collate_skipping,
    scan_class_folders,
    split_folder,
)
from maskdetect.train.distributed import (
    DistContext,
    ResumableSampler,
    cleanup_distributed,
    setup_distributed,
    sum_across,
)
from maskdetect.train.state import Progress, restore_rng_state, rng_state, seed_everything

log = logging.getLogger(__name__)

RESUME_FILE, BEST_FILE, LAST_FILE = "resume.pt", "best.pt", "last.pt"
METRICS_FILE, CONFIG_FILE = "metrics.jsonl", "config.yaml"


def train(config: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    """Train a classifier on a split tree; under torchrun, with DistributedDataParallel.

    Args:
        config: the run's settings (validated).
        resume: continue the run in ``config.out`` from its ``resume.pt``.

    Returns:
        A summary: epochs run, best epoch, best validation loss, the run directory.

    Raises:
        ValueError / FileNotFoundError: a bad tree, run directory or checkpoint, before training starts.
    """
    config.validate()
    context = setup_distributed(config.device)
    try:
        return _train(config, context, resume)
    finally:
        cleanup_distributed()


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total_steps`.

    >>> [round(lr_factor(s, 2, 6), 2) for s in range(6)]
    [0.5, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def _train(config: TrainConfig, context: DistContext, resume: bool) -> dict[str, Any]:
    # Every check on the user's input comes before any time is spent.
    train_samples = scan_class_folders(split_folder(config.data, "train"), require_all=True)
    val_samples = scan_class_folders(split_folder(config.data, "validation"), require_all=False)
    policy = crop_policy_for(config)
    config = dataclasses.replace(config, crop_scale=policy.scale)  # config.yaml records the one used
    saved = _check_run_dir(Path(config.out), config, resume)
    torch.set_num_threads(_cpu_threads(config, context))
    seed_everything(config.seed + context.rank, config.deterministic)
    run = _Run(config, context, train_samples, val_samples, policy)
    if saved is not None:
        run.restore(saved)
    elif context.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run.run_dir / CONFIG_FILE)
    progress = run.progress
    while progress.epoch < config.epochs and not progress.stopped_early:
        started = time.perf_counter()
        run.train_epoch()
        run.end_epoch(time.perf_counter() - started)
    return {
        "run_dir": str(run.run_dir),
        "epochs": progress.epoch,
        "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_val_loss,
        "stopped_early": progress.stopped_early,
        "history": progress.history,
    }


class _Run:
    """One training run's model, data, optimizer and progress, with a method per phase."""

    def __init__(
        self,
        config: TrainConfig,
        context: DistContext,
        train_samples: list,
        val_samples: list,
        policy: CropPolicy,
    ):
        self.config, self.context = config, context
        self.run_dir = Path(config.out)
        self.preprocessing = _preprocessing_for(config, policy)
        self.train_set = FaceFolder(
            train_samples, train_transform(self.preprocessing, grayscale=config.grayscale), substitute=True
        )
        self.val_set = FaceFolder(val_samples, eval_transform(self.preprocessing))
        counts = self.train_set.class_counts()
        log.info("train %s, validation %s images by class %s", counts, self.val_set.class_counts(), CLASSES)

        self.use_cuda = context.device.type == "cuda"
        self.memory_format = (
            torch.channels_last if self.use_cuda and config.channels_last else torch.contiguous_format
        )
        model = create_model(
            config.model, len(CLASSES), pretrained=config.pretrained, **config.model_kwargs()
        )
        self.model = model.to(context.device, memory_format=self.memory_format)
        self.net = (
            DistributedDataParallel(self.model, device_ids=[context.device] if self.use_cuda else None)
            if context.distributed
            else self.model
        )
        class_weights = torch.tensor([len(self.train_set) / (len(CLASSES) * c) for c in counts])
        self.criterion = nn.CrossEntropyLoss(
            weight=class_weights.to(context.device) if config.balance == "loss" else None,
            label_smoothing=config.label_smoothing,
        )
        self.sampler = ResumableSampler(
            len(self.train_set),
            weights=[1.0 / counts[t] for t in self.train_set.targets]
            if config.balance == "sampler"
            else None,
            seed=config.seed,
            rank=context.rank,
            world_size=context.world_size,
        )
        self.val_sampler = ResumableSampler(
            len(self.val_set), shuffle=False, rank=context.rank, world_size=context.world_size, pad=False
        )
        self.steps_per_epoch = math.ceil(self.sampler.share_size() / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = min(self.total_steps, round(config.warmup_epochs * self.steps_per_epoch))
        self.optimizer = _make_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_cuda and config.amp)
        self.progress = Progress()

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from a resumable state: weights, optimizer, random states, place in the epoch."""
        self.model.load_state_dict(saved["state_dict"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        self.progress = Progress.from_dict(saved["progress"])
        if self.context.is_main:
            restore_rng_state(saved["rng"])
        else:  # other ranks: a fresh seed that still depends only on where the run is
            seed_everything(self.config.seed + self.context.rank + 7919 * (self.progress.global_step + 1))
        log.info(
            "resuming at epoch %d, step %d of %d",
            self.progress.epoch + 1,
            self.progress.step_in_epoch,
            self.steps_per_epoch,
        )

    def _checkpoint(self, **extra: Any) -> dict[str, Any]:
        return make_checkpoint(
            self.model,
            self.config.model,
            self.preprocessing,
            train_args=self.config.to_dict(),
            model_kwargs=self.config.model_kwargs(),
            **extra,
        )

    def snapshot(self) -> None:
        """Write resume.pt (rank 0 only): everything needed to continue after a kill."""
        if self.context.is_main:
            state = self._checkpoint(
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict(),
                progress=self.progress.to_dict(),
                rng=rng_state(),
            )
            save_checkpoint(state, self.run_dir / RESUME_FILE)

    def train_epoch(self) -> None:
        """The rest of the current epoch's batches, from where the progress says it stopped."""
        config, progress = self.config, self.progress
        self.sampler.set_epoch(progress.epoch, skip=progress.step_in_epoch * config.batch_size)
        loader = _loader(
            self.train_set, self.sampler, config, self.context, seed=config.seed * 1009 + progress.epoch
        )
        bar = tqdm(
            loader,
            total=self.steps_per_epoch,
            initial=progress.step_in_epoch,
            disable=not self.context.is_main,
            desc=f"epoch {progress.epoch + 1}/{config.epochs}",
            unit="batch",
            mininterval=1.0,
            dynamic_ncols=True,
        )
        self.net.train()
        for batch in bar:
            if batch is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] = config.lr * lr_factor(
                        progress.global_step, self.warmup_steps, self.total_steps
                    )
                sums = self._step(batch)
                progress.running = [a + b for a, b in zip(progress.running, sums, strict=True)]
                loss, correct, count = progress.running
                bar.set_postfix(loss=f"{loss / max(count, 1):.3f}", acc=f"{correct / max(count, 1):.3f}")
            progress.global_step += 1
            progress.step_in_epoch += 1
            if progress.global_step % config.save_every == 0:
                self.snapshot()
        bar.close()

    def _step(self, batch: tuple) -> tuple[float, float, float]:
        """One optimizer step; returns (loss x count, correct, count) of the batch."""
        images, targets, _ = batch
        device = self.context.device
        images = images.to(device, non_blocking=True, memory_format=self.memory_format)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.use_cuda and self.config.amp):
            logits = self.net(images)
            loss = self.criterion(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        count = targets.numel()
        return float(loss.detach()) * count, float((logits.argmax(1) == targets).sum()), float(count)

    def end_epoch(self, seconds: float) -> None:
        """Validate, decide on early stopping, write the epoch's line, checkpoints and resume state."""
        progress, config = self.progress, self.config
        train_loss, train_correct, train_n = sum_across(progress.running, self.context)
        val_loss, val_acc = validate(self.model, self.val_set, self.val_sampler, config, self.context)
        record = {
            "epoch": progress.epoch + 1,
            "train_loss": train_loss / max(train_n, 1),
            "train_accuracy": train_correct / max(train_n, 1),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": round(seconds, 2),
        }
        progress.epoch += 1
        progress.step_in_epoch = 0
        progress.running = [0.0, 0.0, 0.0]
        progress.history.append(record)
        improved = val_loss < progress.best_val_loss
        if improved:
            progress.best_val_loss, progress.best_epoch = val_loss, progress.epoch
            progress.epochs_without_improvement = 0
        else:
            progress.epochs_without_improvement += 1
        if config.patience and progress.epochs_without_improvement >= config.patience:
            progress.stopped_early = True
            log.info("stopping early: validation loss has not improved for %d epochs", config.patience)
        if self.context.is_main:
            metrics = {k: record[k] for k in ("epoch", "val_loss", "val_accuracy")}
            checkpoint = self._checkpoint(metrics=metrics, epoch=progress.epoch)
            if improved:
                save_checkpoint(checkpoint, self.run_dir / BEST_FILE)
            save_checkpoint(checkpoint, self.run_dir / LAST_FILE)
            lines = "".join(json.dumps(r) + "\n" for r in progress.history)
            atomic_write_text(self.run_dir / METRICS_FILE, lines)
            self.snapshot()
            log.info("epoch %d: %s", progress.epoch, json.dumps(record))


def crop_policy_for(config: TrainConfig) -> CropPolicy:
    """The crop policy a run records: the tree's own, which `--crop-scale` may only repeat.

    A checkpoint that recorded another policy than the one its training faces were cut with would
    be shown differently framed faces at inference, and lose accuracy without a word.

    Raises:
        ValueError: `crop_scale` contradicts the scale the tree's marker records.
    """
    recorded = tree_crop_policy(config.data)
    if config.crop_scale is None:
        return recorded or CropPolicy()
    if recorded is not None and not math.isclose(recorded.scale, config.crop_scale):
        raise ValueError(
            f"{config.data}: its faces were cut with crop scale {recorded.scale}, not {config.crop_scale}; "
            f"leave --crop-scale out to use the tree's, or prepare the tree again with --crop-scale "
            f"{config.crop_scale}"
        )
    return recorded or CropPolicy(scale=config.crop_scale)


def _preprocessing_for(config: TrainConfig, policy: CropPolicy) -> Preprocessing:
    # A model's pretrained weights decide its input normalisation (ImageNet's unless it says otherwise).
    mean, std = input_normalisation(config.model) or (IMAGENET_MEAN, IMAGENET_STD)
    return Preprocessing(input_size=config.input_size, mean=mean, std=std, crop_policy=policy)


def _check_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
    """The saved state to resume from, or None for a fresh run (refusing to overwrite an old one)."""
    state_path = run_dir / RESUME_FILE
    if not resume:
        if state_path.exists() or (run_dir / LAST_FILE).exists():
            raise FileExistsError(
                f"{run_dir}: already holds a run; continue it with --resume or choose another --out"
            )
        return None
    saved = load_checkpoint(state_path)
    missing = [k for k in ("optimizer", "scaler", "progress", "rng") if k not in saved]
    if missing:
        raise ValueError(f"{state_path}: not a resumable state (lacks {', '.join(missing)})")
    if saved["arch"] != config.model:
        raise ValueError(f"{state_path}: was trained as {saved['arch']!r}, but --model is {config.model!r}")
    return saved


def _cpu_threads(config: TrainConfig, context: DistContext) -> int:
    """Torch threads: as set, or the cores left after the loader workers (shared among local processes).

    Oversubscribed cores are far slower than idle ones: on 2 cores, 2 torch threads beside 1 loader
    worker trained several times slower than 1 thread (bench/bench_train.py).
    """
    if config.threads:
        return config.threads
    cores = usable_cores()
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, cores // local_processes - config.workers)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation weights (1-d tensors): decaying them only hurts.
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _loader(
    dataset: FaceFolder, sampler: ResumableSampler, config: TrainConfig, context: DistContext, seed: int
) -> DataLoader:
    # Each sample's augmentation is seeded by its place in the epoch, not by a worker's random state:
    # a run resumed mid-epoch draws the same with --workers 1 as with 0 (a fresh worker would not).
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=SeededSampler(sampler, seed=config.seed * 1009 + context.rank),
        num_workers=config.workers,
        collate_fn=collate_skipping,
        pin_memory=context.device.type == "cuda",
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )


@torch.no_grad()
def validate(
    net: nn.Module, dataset: FaceFolder, sampler: ResumableSampler, config: TrainConfig, context: DistContext
) -> tuple[float, float]:
    """Mean cross-entropy (unsmoothed, unweighted) and accuracy on the validation set, over all ranks.

    Takes the bare model, not the DistributedDataParallel wrapper: ranks see different numbers of
    validation batches, and the wrapper's forward would wait for the others.
    """
    net.eval()
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size * 2,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate_skipping,
    )
    loss_sum = correct = count = 0.0
    use_cuda = context.device.type == "cuda"
    for batch in loader:
        if batch is None:
            continue
        images, targets, _ = batch
        images, targets = images.to(context.device), targets.to(context.device)
        with torch.autocast(
            device_type=context.device.type, dtype=torch.float16, enabled=use_cuda and config.amp
        ):
            logits = net(images)
        loss_sum += float(nn.functional.cross_entropy(logits.float(), targets, reduction="sum"))
        correct += float((logits.argmax(1) == targets).sum())
        count += targets.numel()
    loss_sum, correct, count = sum_across([loss_sum, correct, count], context)
    if count == 0:
        raise ValueError(f"{config.data}: no readable validation images")
    return loss_sum / count, correct / count
