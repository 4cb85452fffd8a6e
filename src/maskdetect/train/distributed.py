"""One process or many: torchrun's environment, the process group, and sharded, resumable sampling."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` takes CUDA when present; ``cuda`` without a GPU is an error naming the choices.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; choices: auto, cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def setup_distributed(device_preference: str) -> DistContext:
    """Join torchrun's process group when launched by it (WORLD_SIZE > 1): nccl on GPU, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined the %s process group", rank, world_size, backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_across(values: Sequence[float], context: DistContext) -> list[float]:
    """Element-wise sums of numbers over all processes (the numbers themselves when alone)."""
    if not context.distributed:
        return list(values)
    tensor = torch.tensor(
        list(values), dtype=torch.float64, device=context.device if context.device.type == "cuda" else "cpu"
    )
    dist.all_reduce(tensor)
    return tensor.tolist()


class ResumableSampler(Sampler[int]):
    """Seeded sampling that shards over processes and can start part-way through an epoch.

    Each epoch's order depends only on (seed, epoch), so a resumed run sees the same order and
    skips the batches already done. With `weights`, indices are drawn with replacement in
    proportion to them (a class-balanced sampler); otherwise each epoch is a permutation. Every
    process takes every world_size-th index of the same order (padded to equal lengths).

    >>> sampler = ResumableSampler(10, shuffle=False, rank=1, world_size=2)
    >>> list(sampler)
    [1, 3, 5, 7, 9]
    """

    def __init__(
        self,
        num_items: int,
        *,
        weights: Sequence[float] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ):
        if num_items < 1:
            raise ValueError(f"cannot sample from {num_items} items")
        self.num_items = num_items
        self.weights = torch.as_tensor(weights, dtype=torch.double) if weights is not None else None
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self.skip = 0  # indices of this process's share already consumed in this epoch

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Choose the epoch's order; `skip` items of this process's share are left out (resume)."""
        self.epoch = epoch
        self.skip = skip

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(
                self.weights, self.num_items, replacement=True, generator=generator
            ).tolist()
        if self.shuffle:
            return torch.randperm(self.num_items, generator=generator).tolist()
        return list(range(self.num_items))

    def share_size(self) -> int:
        """How many indices this process gets in a whole epoch."""
        if self.pad:
            return math.ceil(self.num_items / self.world_size)
        return len(range(self.rank, self.num_items, self.world_size))

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        if self.pad:
            total = math.ceil(len(order) / self.world_size) * self.world_size
            order = (order * math.ceil(total / len(order)))[:total]
        share = order[self.rank :: self.world_size]
        return iter(share[self.skip :])

    def __len__(self) -> int:
        return max(0, self.share_size() - self.skip)
