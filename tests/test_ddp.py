"""Two CPU processes (torchrun, gloo) train one model: ranks stay in sync, only rank 0 writes,
and the result is the single-process run with the same global batch (up to float rounding)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers import ROOT, lightness_twin, write_game
from safetensors.torch import load_file

import models
from models.checkpoint import load_model
from models.train import TrainConfig, train

# --patience: rank 0 decides the early stop for every rank (2 epochs never reach it).
ARGS = ["--arch", "v0", "--preset", "reference", "--epochs", "2", "--batch-size", "4", "--crop", "0",
        "--cache-dir", "none", "--seed", "5", "--patience", "5"]


#: Runs ``retrocolor train`` on one rank, and after the last epoch writes that rank's weights to
#: DIR/rankN.safetensors (through train()'s on_epoch_end hook) so the test can compare ranks.
LAUNCHER = """
import os, sys
sys.path.insert(0, sys.argv[1])
from safetensors.torch import save_file
import retrocolor
from models.train import TrainConfig, train

out_dir, argv = sys.argv[2], sys.argv[3:]
args = retrocolor.build_parser().parse_args(["train", *argv])

def save_rank(e):
    if e.epoch == e.epochs:
        os.makedirs(out_dir, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in e.model.state_dict().items()}
        save_file(tensors, os.path.join(out_dir, f"rank{os.environ['RANK']}.safetensors"))

result = train(TrainConfig.from_args(args), on_epoch_end=save_rank)
if str(result):
    print(result)
"""


def test_two_process_gloo_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name, seed in (("alpha", 1), ("beta", 2)):  # 48x40 frames, as test_train's
        write_game(data / name, 10, seed, w=48, h=40, twin=lightness_twin, name="f{:04d}.png")
    run, dbg = tmp_path / "ddp", tmp_path / "ranks"
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RETROCOLOR_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(launcher), str(ROOT), str(dbg), "--data", str(data), "--out", str(run), *ARGS]
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
