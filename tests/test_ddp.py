"""Two CPU processes (torchrun, gloo) train one model: ranks stay in sync, only rank 0 writes,
and the result is the single-process run with the same global batch (up to float rounding)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import ROOT
from safetensors.torch import load_file
from test_train import write_game

import models
from models.checkpoint import load_model
from models.train import TrainConfig, train

ARGS = ["--arch", "v0", "--preset", "reference", "--epochs", "2", "--batch-size", "4", "--crop", "0",
        "--cache-dir", "none", "--seed", "5"]


def test_two_process_gloo_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_game(data, "alpha", 10, 1)
    write_game(data, "beta", 10, 2)
    run, dbg = tmp_path / "ddp", tmp_path / "ranks"
    env = {**os.environ, "RETROCOLOR_DDP_DEBUG_DIR": str(dbg), "OMP_NUM_THREADS": "1", "RETROCOLOR_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "retrocolor.py"), "train", "--data", str(data), "--out", str(run), *ARGS]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("best epoch") == 1 and "/2: val mse_ab" in proc.stdout

    # Only rank 0 wrote the run folder: one set of files, no leftovers from a second writer.
    names = sorted(p.name for p in run.iterdir())
    assert names == ["best.json", "best.safetensors", "last.json", "last.safetensors", "log.csv", "loss.png",
                     "samples", "state.json", "state.safetensors"]
    assert len((run / "log.csv").read_text().splitlines()) == 3

    # Both ranks ended with identical weights, equal to the checkpoint.
    r0, r1 = load_file(str(dbg / "rank0.safetensors")), load_file(str(dbg / "rank1.safetensors"))
    ckpt = load_model(run / "last")[0].state_dict()
    assert all(torch.equal(r0[k], r1[k]) and torch.equal(r0[k], ckpt[k]) for k in ckpt)

    # Each rank trained on its half of the global batch: the 1-process run with the same global
    # batch reaches the same weights (gradient averaging differs only in float rounding).  Had
    # both ranks used the same half, or each the whole batch, the weights would differ.
    torch.set_num_threads(1)
    single = tmp_path / "single"
    train(TrainConfig(arch="v0", data=[data], out=single, preset="reference", epochs=2, batch_size=4, crop=0,
                      cache_dir=None, seed=5, show_progress=False))
    ref = load_model(single / "last")[0].state_dict()
    assert all(torch.allclose(ref[k], ckpt[k], atol=2e-5, rtol=1e-4) for k in ckpt)
    # The weights did move by far more than that tolerance, so the comparison can fail.
    torch.manual_seed(5)
    init = models.create("v0").state_dict()
    assert max(float((ckpt[k] - init[k]).abs().max()) for k in init) > 1e-2
