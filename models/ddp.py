"""Distributed data parallel (DDP) plumbing: this process's rank, the process group, reductions.

A run launched by torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) trains on every rank;
each rank takes its slice of every *global* batch, DDP averages the gradients (gloo on CPU,
nccl on CUDA), and only rank 0 validates and writes files.  Without torchrun everything here is
a no-op for the single process, so the training loop has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from utils.errors import UserError


@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_dist(device_pref: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if there is one; the device this process trains on."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise UserError(f"--device {device_pref}: CUDA is not available on this machine")
    if device_pref not in ("auto", "cpu") and not device_pref.startswith("cuda"):
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device_pref!r}")
    if world > 1:
        import torch.distributed as dist

        if want_cuda:
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        return Dist(rank, world, local), device
    if want_cuda:
        return Dist(), torch.device(device_pref if device_pref.startswith("cuda") else "cuda")
    return Dist(), torch.device("cpu")


def shutdown(d: Dist) -> None:
    """Leave the process group (if this run joined one)."""
    if d.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(d: Dist) -> None:
    """Wait for every rank (rank 0 writes files the others must not overtake)."""
    if d.active:
        import torch.distributed as dist

        dist.barrier()


def all_mean(d: Dist, value: float, device: torch.device) -> float:
    """The mean of ``value`` over the ranks."""
    if not d.active:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / d.world


def main_decides(d: Dist, flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (decisions from rank-0-only state, e.g. the early stop)."""
    if not d.active:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def average_gradients(d: Dist, module: nn.Module) -> None:
    """Average ``module``'s gradients over the ranks by hand (for a module DDP does not wrap)."""
    if not d.active:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= d.world


def wrap(d: Dist, module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` under DDP when the run has several ranks, else ``module`` itself."""
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)
