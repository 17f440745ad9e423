"""NoGAN (DeOldify): after the generator is trained, pre-train a critic on real vs generated
colour, then a short adversarial phase at a lower learning rate.

Runs on the same process group as the generator run (DDP wraps the generator's training
forward; the critic's gradients are averaged by hand).  The generator after the adversarial
phase is written to RUN/gan.*, leaving best.* as the pre-GAN generator.  Not resumable
mid-phase: a killed GAN phase is rerun from the generator checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from models import ddp, runfolder
from models.checkpoint import save_model
from models.config import GAN_LR_FACTOR, GAN_WEIGHT
from models.data import epoch_generator
from utils.progress import progress

if TYPE_CHECKING:
    from models.train import Run

#: Offset of the NoGAN phases' data generators, away from the generator run's epochs.
_GEN_OFFSET = 10_000
#: The critic's Adam learning rate.
CRITIC_LR = 2e-4


def _batches(r: Run, phase: int, count: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``count`` batches cycling over one shuffled pass of the data (generator ``phase``)."""
    gen = epoch_generator(r.cfg.seed, _GEN_OFFSET + phase)
    perm = torch.randperm(r.batches.frames, generator=gen)
    gbs = r.batches.size
    for s in range(count):
        j = s % max(1, r.batches.frames // gbs)
        yield r.batches.build(r.data, perm[j * gbs:(j + 1) * gbs], gen, r.aug, r.d, r.device)


def _phase_steps(r: Run, wanted: int) -> int:
    return min(wanted, r.cfg.steps_per_epoch) if r.cfg.steps_per_epoch else wanted


@dataclass
class _Critic:
    """The patch critic, its optimiser, and the DDP gradient averaging it needs."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer

    def step(self, d: ddp.Dist, loss: torch.Tensor) -> None:
        # Not DDP-wrapped (gan.generator_loss calls it functionally): gradients averaged by hand.
        self.opt.zero_grad(set_to_none=True)
        loss.float().backward()
        ddp.average_gradients(d, self.net)
        self.opt.step()


def nogan(r: Run) -> Path:
    """The NoGAN phases after the generator run ``r``; returns RUN/gan.safetensors."""
    from models import gan
    from models.train import TrainForward

    torch.manual_seed(r.cfg.seed + 1)
    net = gan.PatchCritic().to(r.device)
    critic = _Critic(net, torch.optim.Adam(net.parameters(), lr=CRITIC_LR, betas=(0.5, 0.99)))
    gopt = torch.optim.Adam(r.model.parameters(), lr=float(r.cfg.lr or 1e-3) * GAN_LR_FACTOR, betas=(0.5, 0.99))
    fwd = ddp.wrap(r.d, TrainForward(r.model), r.device)
    vm = _pretrain_critic(r, critic)
    for ge in range(1, int(r.cfg.gan_epochs) + 1):
        vm = _adversarial_epoch(r, ge, fwd, critic, gopt)
    if r.d.main:
        meta = {**r.meta_base, "epoch": r.plan.epochs, "phase": "gan",
                "val_metrics": {k: vm[k] for k in ("loss", "mse_ab", "acc10")}}
        runfolder.write_log(r.out, r.log_rows)
        runfolder.plot(r.out, [row for row in r.log_rows if row.get("train_loss") is not None])
        save_model(r.out / "gan", r.model, meta)
    ddp.barrier(r.d)
    return r.out / "gan.safetensors"


def _pretrain_critic(r: Run, critic: _Critic) -> dict[str, float]:
    """Phase 1: the critic learns real vs generated colour against the frozen generator."""
    from models import gan
    from models.train import _validate_main

    t0 = time.time()
    c_sum, steps = 0.0, _phase_steps(r, max(1, int(r.cfg.gan_critic_steps)))
    for x, y, _ in progress(_batches(r, 0, steps), total=steps, desc="critic", disable=r.quiet):
        with torch.no_grad(), r.amp.autocast():
            fake = r.model(x).float()
        with r.amp.autocast():
            loss = gan.critic_loss(critic.net, x, fake, y)
        critic.step(r.d, loss)
        c_sum += float(loss.detach())
    vm = _validate_main(r)
    c_mean = ddp.all_mean(r.d, c_sum / steps, r.device)
    r.log_rows.append({"epoch": r.plan.epochs + 1, "step": steps, "phase": "critic", "train_loss": None,
                       "val_loss": vm["loss"], "val_mse_ab": vm["mse_ab"], "val_acc10": vm["acc10"], "lr": CRITIC_LR,
                       "seconds": round(time.time() - t0, 3), "critic_loss": c_mean})
    return vm


def _adversarial_epoch(r: Run, ge: int, fwd: torch.nn.Module, critic: _Critic,
                       gopt: torch.optim.Optimizer) -> dict[str, float]:
    """Phase 2, epoch ``ge``: generator on reconstruction + GAN_WEIGHT x adversarial loss, critic alongside."""
    from models import gan
    from models.losses import compute_loss
    from models.train import _validate_main

    t0 = time.time()
    gsteps = _phase_steps(r, max(1, r.batches.frames // r.batches.size))
    g_sum, c_sum = 0.0, 0.0
    for x, y, g in progress(_batches(r, ge, gsteps), total=gsteps, desc=f"gan {ge}/{r.cfg.gan_epochs}",
                            disable=r.quiet):
        with r.amp.autocast():
            out = fwd(x)
        out = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in out.items()}
        rec, _ = compute_loss(out, y, game=g, kind=str(r.cfg.loss), class_weights=r.class_weights)
        with r.amp.autocast():
            adv = gan.generator_loss(critic.net, x, out["ab"])
        gl = rec + GAN_WEIGHT * adv.float()
        gopt.zero_grad(set_to_none=True)
        gl.backward()
        gopt.step()
        with r.amp.autocast():
            cl = gan.critic_loss(critic.net, x, out["ab"].detach(), y)
        critic.step(r.d, cl)
        g_sum += float(gl.detach())
        c_sum += float(cl.detach())
    vm = _validate_main(r)
    g_mean = ddp.all_mean(r.d, g_sum / gsteps, r.device)
    r.log_rows.append({"epoch": r.plan.epochs + 1 + ge, "step": gsteps, "phase": "gan", "train_loss": g_mean,
                       "val_loss": vm["loss"], "val_mse_ab": vm["mse_ab"], "val_acc10": vm["acc10"],
                       "lr": gopt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 3),
                       "critic_loss": ddp.all_mean(r.d, c_sum / gsteps, r.device)})
    return vm
