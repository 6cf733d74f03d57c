"""``DistributedDataParallel`` under ``torchrun``: joining the group, sharing the data, and
averaging over the processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler


@dataclass
class DistState:
    """This process's place in the group (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    created_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> tuple[DistState, torch.device]:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistState(), device
    created = False
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return DistState(dist.get_rank(), dist.get_world_size(), created), device


def shared_seed(seed: int, device: torch.device) -> int:
    """Rank 0's ``seed`` on every rank (so that all ranks agree on the data order)."""
    seed_t = torch.tensor([seed], dtype=torch.int64,
                          device=device if device.type == "cuda" else "cpu")
    dist.broadcast(seed_t, src=0)
    return int(seed_t.item())


def distributed_loader(loader: DataLoader, seed: int) -> DataLoader:
    """The same loader, but each process draws its own share through a DistributedSampler."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise ValueError(
            "distributed training needs a torch DataLoader built with batch_size= "
            "(not a custom batch_sampler)"
        )
    sampler = DistributedSampler(
        loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
        drop_last=loader.drop_last,
    )
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler,
        num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False,
    )


def global_mean(total: torch.Tensor, count: int, ddp: DistState, device: torch.device) -> float:
    """Mean over all processes (just total / count without DDP)."""
    if ddp.world_size > 1:
        both = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=device)])
        dist.all_reduce(both)
        total, count = both[0], int(both[1].item())
    return float(total) / max(count, 1)
