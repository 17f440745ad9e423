"""Training: learning happens, resume is exact, files are valid, bad input is one clear error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import helpers
import numpy as np
import pytest
import torch
from helpers import make_game_frames, shared_path

import models
import retrocolor
from dataset.color import AB_SCALE, DMG_LEVELS_L, posterize_l, rgb_to_l, rgb_to_lab
from dataset.loader import load_frames
from models import schedule
from models.checkpoint import load_model
from models.data import (
    Augment,
    TensorData,
    build_batch,
    holdout_split,
    posterize_tensor,
    remap_tensor,
    sample_params,
)
from models.metrics import LutBaseline, frame_metrics
from models.train import TrainConfig, flatten_state, train, unflatten_state
from utils.errors import UserError
from utils.images import write_png

W, H = 48, 40


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_game(root: Path, name: str, n: int, seed: int, twins: int = 0, w: int = W, h: int = H) -> Path:
    """Game folder ``root/name`` of ``n`` small synthetic frames ``fNNNN.png``; the first ``twins``
    get DMG twins (CIE L bands) in dmg/."""
    helpers.write_game(root / name, n, seed, twins, w=w, h=h, twin=helpers.lightness_twin, name="f{:04d}.png")
    return root / name


@pytest.fixture
def data2(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_game(root, "alpha", 10, 1, twins=4)
    write_game(root, "beta", 10, 2)
    return root


def cfg_for(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(arch="v0", data=[data], out=out, epochs=3, batch_size=4, crop=0, lr=3e-3, cache_dir=None,
                show_progress=False, sample_frames=2)
    base.update(kw)
    return TrainConfig(**base)


def _current_umask() -> int:
    import os

    old = os.umask(0o022)
    os.umask(old)
    return old


def log_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(run / "last")
    return model.state_dict()


# ----------------------------------------------------------------------------- learning
def test_loss_falls_and_files_are_valid(data2: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = train(cfg_for(data2, run, epochs=4, preset="reference", lr=1e-3))
    rows = log_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.8 * losses[0], losses
    assert float(rows[-1]["val_mse_ab"]) < float(rows[0]["val_mse_ab"])
    assert set(rows[0]) >= {"epoch", "step", "train_loss", "val_loss", "val_mse_ab", "val_acc10", "lr", "seconds"}
    # Checkpoints load, record their training data and the held-out block.
    for name in ("best", "last"):
        model, meta = load_model(run / name)
        assert meta["arch"] == "v0"
        for suffix in (".safetensors", ".json"):  # finished files get umask permissions, not mkstemp's 0600
            mode = (run / f"{name}{suffix}").stat().st_mode & 0o777
            assert mode == 0o666 & ~_current_umask(), oct(mode)
        assert meta["data"] == [str(data2.resolve())]
        assert meta["holdout"] == {"fraction": 0.1, "gap": 2}
    assert res.best_epoch == int(min(rows, key=lambda r: float(r["val_mse_ab"]))["epoch"])
    assert "best epoch" in str(res) and str(run / "best.safetensors") in str(res)
    # Plots are real PNGs.
    img = cv2.imread(str(run / "loss.png"))
    assert img is not None and img.shape[0] > 100
    for e in (1, 4):
        s = cv2.imread(str(run / "samples" / f"epoch_{e:03d}.png"))
        assert s is not None and s.shape[0] >= 3 * H and s.shape[1] == 2 * W
    st = json.loads((run / "state.json").read_text())
    assert st["epoch"] == 4 and st["arch"] == "v0"


def _one_frame_with_ambiguity() -> np.ndarray:
    """A frame where one lightness means two colours (green tiles, red blocks): no LUT can fit it."""
    f = make_game_frames(1, seed=3, w=32, h=24)[0].repeat(2, 0).repeat(2, 1).copy()
    red = np.array([183, 101, 40], np.uint8)  # same L as the palette's green (40, 140, 60)
    assert abs(float(rgb_to_l(red)) - float(rgb_to_l(np.array([40, 140, 60], np.uint8)))) < 0.01
    f[8:24, 8:24] = red
    f[28:40, 40:56] = red
    return f


def test_alpha_demo_overfits_one_frame(tmp_path: Path) -> None:
    """The articles' "alpha" demo: v0 memorises one frame far beyond what the L->ab LUT can do."""
    f = _one_frame_with_ambiguity()
    write_png(tmp_path / "one" / "f.png", f)
    data = TensorData(load_frames([tmp_path / "one"], size=None, show_progress=False))
    torch.manual_seed(0)
    model = models.create("v0")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    aug = Augment()
    idx = torch.tensor([0])
    for _ in range(600):
        x, y, _ = build_batch(data, idx, sample_params(1, torch.Generator().manual_seed(0), aug, data.hw), aug)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    lab = rgb_to_lab(f)[None]
    with torch.no_grad():
        pred = model(x).permute(0, 2, 3, 1).numpy() * AB_SCALE
    mse = float(frame_metrics(pred, lab[..., 1:])["mse_ab"][0])
    lut = LutBaseline()
    lut.update(lab[..., 0], lab[..., 1:])
    lut_mse = float(frame_metrics(lut.predict(lab[..., 0]), lab[..., 1:])["mse_ab"][0])
    # Measured: model ~0.0004, LUT ~0.0147, gray ~0.054.
    assert mse < 0.0015, mse
    assert mse < lut_mse / 10, (mse, lut_mse)


# ----------------------------------------------------------------------------- run length and progress
def test_default_schedule_scales_with_the_data() -> None:
    """No --epochs/--steps-per-epoch: enough steps whatever the data size, an early stop, and
    epochs that see small data several times; explicit flags keep their classic meaning."""
    small, big = schedule.plan(66, 32), schedule.plan(5000, 32)
    assert small.auto and big.auto
    assert small.total_steps >= schedule.MIN_TOTAL_STEPS and big.total_steps >= schedule.MIN_TOTAL_STEPS
    assert small.steps_per_epoch * 32 >= 10 * 66  # a tiny game: each epoch is many passes of fresh crops
    assert big.steps_per_epoch == 5000 // 32 and big.epochs == schedule.DEFAULT_EPOCHS  # one pass, 30 epochs
    for n in (10, 66, 300, 1000, 5000, 50_000):
        p = schedule.plan(n, 32)
        assert p.steps_per_epoch >= max(1, n // 32)  # every epoch is at least one pass over the data
        assert p.total_steps >= schedule.MIN_TOTAL_STEPS
        assert schedule.MIN_PATIENCE <= p.patience < p.epochs
    assert [schedule.plan(n, 32).total_steps for n in (66, 5000, 50_000)] == sorted(
        schedule.plan(n, 32).total_steps for n in (66, 5000, 50_000))
    # Explicit flags win; the other one keeps its classic value; no early stop unless asked.
    assert schedule.plan(66, 32, epochs=3) == schedule.Plan(3, 2, 0, auto=False)
    assert schedule.plan(5000, 32, steps_per_epoch=5) == schedule.Plan(schedule.DEFAULT_EPOCHS, 5, 0, auto=False)
    assert schedule.plan(5000, 32, epochs=3, patience=2).patience == 2
    assert schedule.plan(66, 32, patience=0).patience == 0


def test_non_tty_run_prints_one_line_per_epoch(data2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the tqdm bars are hidden (stderr is not a terminal) each epoch prints one line."""
    monkeypatch.delenv("RETROCOLOR_PROGRESS", raising=False)
    train(cfg_for(data2, tmp_path / "run", epochs=2, show_progress=True))
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in lines] == ["epoch 1/2", "epoch 2/2"], err
    assert all("train loss" in ln and "val mse_ab" in ln and " s, ETA " in ln for ln in lines), lines
    assert any(ln.startswith("schedule (as given): 2 epochs") for ln in err), err
    # With bars forced on (as on a terminal) the bars report instead: no epoch lines.
    monkeypatch.setenv("RETROCOLOR_PROGRESS", "1")
    train(cfg_for(data2, tmp_path / "tty", epochs=1, show_progress=True))
    assert not [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch 1/1:")]


def test_early_stop_after_patience_epochs_without_improvement(data2: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """--patience N: the run ends once val mse_ab has not improved for N epochs; a resume of
    such a run has nothing left to do."""
    import models.train as mt

    curve = iter([0.5, 0.4, 0.45, 0.41, 0.3, 0.2, 0.1, 0.05] * 2)
    monkeypatch.setattr(mt, "validate", lambda *a, **k: {"loss": 1.0, "mse_ab": next(curve), "acc10": 0.5})
    run = tmp_path / "run"
    res = train(cfg_for(data2, run, epochs=8, steps_per_epoch=1, patience=2))
    assert res.best_epoch == 2 and res.early_stop_epoch == 4
    assert [r["epoch"] for r in log_rows(run)] == ["1", "2", "3", "4"]
    assert "early stop after epoch 4" in str(res) and "--resume" not in str(res)
    again = train(cfg_for(data2, run, epochs=8, steps_per_epoch=1, patience=2, resume=True))
    assert again.early_stop_epoch == 4 and len(log_rows(run)) == 4


def test_data_scaled_run_takes_several_passes_per_epoch(data2: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --epochs/--steps-per-epoch the plan is scaled to the data (shrunk here to stay fast)."""
    monkeypatch.setattr(schedule, "MIN_TOTAL_STEPS", 10)
    monkeypatch.setattr(schedule, "MIN_EPOCH_STEPS", 6)
    monkeypatch.setattr(schedule, "DEFAULT_EPOCHS", 1)
    run = tmp_path / "auto"
    res = train(cfg_for(data2, run, epochs=None))
    rows = log_rows(run)
    assert res.epochs == 2 and [r["step"] for r in rows] == ["6", "12"]  # 16 frames / batch 4: 1.5 passes
    assert res.best_epoch in (1, 2)


# ----------------------------------------------------------------------------- resume
def test_resume_is_bit_exact(data2: Path, tmp_path: Path) -> None:
    # ours preset: cosine schedule, AdamW, crops, flips, DMG look and twins all in play.
    kw = dict(preset="ours", epochs=4, crop=32, dmg_aug=0.5, twin_prob=0.5, lr=None)
    full = tmp_path / "full"
    train(cfg_for(data2, full, **kw))
    part = tmp_path / "part"
    res = train(cfg_for(data2, part, **kw), on_epoch_end=lambda e: e.epoch >= 2)  # stop as if killed
    assert res.stopped_early and len(log_rows(part)) == 2
    train(cfg_for(data2, part, resume=True, **kw))
    a, b = final_weights(full), final_weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(log_rows(full)) == drop(log_rows(part))


def test_resume_extends_constant_lr_run(data2: Path, tmp_path: Path) -> None:
    """reference preset (constant lr): 4 epochs == 2 epochs, then --resume --epochs 4."""
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg_for(data2, full, preset="reference", epochs=4))
    train(cfg_for(data2, part, preset="reference", epochs=2))
    train(cfg_for(data2, part, preset="reference", epochs=4, resume=True))
    a, b = final_weights(full), final_weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # And it really trained past epoch 2 (the test would pass vacuously otherwise).
    assert [r["epoch"] for r in log_rows(part)] == ["1", "2", "3", "4"]


def test_resume_of_a_run_from_before_the_scaled_schedule_keeps_its_epochs(data2: Path, tmp_path: Path) -> None:
    """A state written before --patience existed (its config has none) resumes with its own epoch
    count, not a newly planned one; a new run resumed without --epochs re-plans identically."""
    from models.state import resume_config

    run = tmp_path / "old"
    saved = TrainConfig(arch="v0", data=[data2], out=run).resolved().to_json()
    saved.pop("patience")
    saved["epochs"] = 30
    cfg = resume_config(TrainConfig(arch="v0", data=[data2], out=run, resume=True), {"config": saved, "cwd": "."})
    assert cfg.epochs == 30
    saved["patience"] = None
    saved["epochs"] = None
    cfg = resume_config(TrainConfig(arch="v0", data=[data2], out=run, resume=True), {"config": saved, "cwd": "."})
    assert cfg.epochs is None and cfg.patience is None


def test_state_flatten_roundtrip() -> None:
    m = models.create("v0")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.rand(2, 1, 16, 16)).mean().backward()
    opt.step()
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten_state({"opt": opt.state_dict(), "np": np.random.get_state(), "t": (1, 2.5, None)}, tensors, "s")
    text = json.dumps(skel)
    back = unflatten_state(json.loads(text), tensors)
    o2 = torch.optim.AdamW(models.create("v0").parameters(), lr=1e-3)
    o2.load_state_dict(back["opt"])
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    assert back["t"] == (1, 2.5, None)
    np.random.set_state(back["np"])


# ----------------------------------------------------------------------------- data pieces
def test_holdout_is_contiguous_tail_with_gap(data2: Path) -> None:
    fs = load_frames([data2], size=None, show_progress=False)
    tr, va = holdout_split(fs, 0.2, gap=1)
    for g in range(2):
        idx = np.nonzero(fs.game == g)[0]
        assert list(va[fs.game[va] == g]) == list(idx[-2:])
        assert list(tr[fs.game[tr] == g]) == list(idx[:-3])


def test_dmg_look_and_twin_inputs(data2: Path) -> None:
    fs = load_frames([data2], size=None, show_progress=False)
    data = TensorData(fs)
    L = data.L[:3].float()
    fixed = posterize_tensor(L, torch.tensor([[25.0, 50.0, 75.0]] * 3))
    assert torch.allclose(fixed[:, 0], torch.from_numpy(posterize_l(L[:, 0].numpy())))
    assert set(np.unique(fixed.numpy())) <= set(DMG_LEVELS_L.tolist())
    # twin_prob=1: frames with a twin get the twin's L, the others their own L.
    aug = Augment(twin_prob=1.0)
    idx = torch.arange(len(data))
    p = sample_params(len(idx), torch.Generator().manual_seed(0), aug, data.hw)
    x, _, _ = build_batch(data, idx, p, aug)
    has = data.has_twin
    assert has.sum() == 4
    assert torch.equal(x[has], data.twin_L[has].float() / 100)
    assert torch.equal(x[~has], data.L[~has].float() / 100)
    # DMG look: 4 levels only, thresholds jittered (not all samples identical to the fixed rule).
    aug = Augment(dmg_aug=1.0)
    p = sample_params(len(idx), torch.Generator().manual_seed(1), aug, data.hw)
    x, _, _ = build_batch(data, idx, p, aug)
    assert set(np.unique((x * 100).numpy()).round(3)) <= set(DMG_LEVELS_L.round(3).tolist())
    assert float(p["thr"].std(0).min()) > 1.0


def test_val_input_twin_validates_on_the_monochrome_twins(data2: Path) -> None:
    """--val-input twin: validation keeps the frames that have a twin and feeds the twin's L."""
    from models.train import val_inputs

    fs = load_frames([data2], size=None, show_progress=False)
    full = val_inputs(fs)
    twin = val_inputs(fs, "twin")
    has = np.flatnonzero(fs.has_dmg)
    assert len(full) == 20 and len(twin) == len(has) == 4
    assert torch.equal(twin.L, full.twin_L[has])  # the twin's shades, not the frame's own L
    assert torch.equal(twin.ab, full.ab[has])  # the colour frame's ab stays the target
    assert not torch.equal(twin.L, full.L[has])
    no_twins = fs.subset(np.flatnonzero(~fs.has_dmg))
    with pytest.raises(UserError, match="no monochrome twins"):
        val_inputs(no_twins, "twin")


def test_unknown_palette_remap(data2: Path) -> None:
    """l_remap: L through a random monotone curve (order and edges kept, values changed), ab untouched."""
    data = TensorData(load_frames([data2], size=None, show_progress=False))
    idx = torch.arange(len(data))
    # The curve itself: knots hit exactly, linear in between, monotone.
    ys = torch.tensor([[0.0, 10.0, 10.0, 60.0, 90.0]])
    L = torch.tensor([0.0, 12.5, 25.0, 40.0, 50.0, 87.5, 100.0]).view(1, 1, 1, -1)
    assert torch.allclose(remap_tensor(L, ys).flatten(), torch.tensor([0.0, 5.0, 10.0, 10.0, 10.0, 75.0, 90.0]),
                          atol=1e-3)
    aug = Augment(l_remap=1.0)
    p = sample_params(len(idx), torch.Generator().manual_seed(0), aug, data.hw)
    x, y, _ = build_batch(data, idx, p, aug)
    x0, y0, _ = build_batch(data, idx, sample_params(len(idx), torch.Generator().manual_seed(0), Augment(), data.hw),
                            Augment())
    assert torch.equal(y, y0)  # the target is still the true colour
    assert (x - x0).abs().mean() > 0.02  # the lightness values really changed
    for i in range(len(idx)):  # ... but never their order: brighter stays at least as bright
        a, b = x0[i].flatten(), x[i].flatten()
        order = torch.argsort(a)
        assert bool((b[order][1:] >= b[order][:-1] - 1e-5).all())
    # Off (the presets' default), it draws nothing: runs without it replay their old random streams.
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert "remap" not in sample_params(4, g1, Augment(), data.hw)
    torch.rand((4, 8), generator=g2, dtype=torch.float64)  # the one draw sample_params made before l_remap
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_gan_phase_runs(data2: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = train(cfg_for(data2, run, epochs=1, gan=True, gan_critic_steps=2, steps_per_epoch=2, crop=32))
    assert res.gan_path is not None and res.gan_path.is_file()
    phases = [r["phase"] for r in log_rows(run)]
    assert phases == ["generator", "critic", "gan"]
    assert all(r["critic_loss"] for r in log_rows(run)[1:])
    g, _ = load_model(run / "gan")
    b, _ = load_model(run / "best")
    assert any(not torch.equal(g.state_dict()[k], b.state_dict()[k]) for k in b.state_dict())


def test_fusion_and_unet_train_a_step(data2: Path, tmp_path: Path) -> None:
    """Each arch with its preferred loss (unet: ce+l1 with rebalancing; fusion: mse + game CE)."""
    for arch in ("unet", "unet_lut", "fusion"):
        run = tmp_path / arch
        train(cfg_for(data2, run, arch=arch, epochs=1, steps_per_epoch=1, crop=32, lr=None, batch_size=2))
        _, meta = load_model(run / "last")
        assert meta["loss"] == {"unet": "ce+l1", "unet_lut": "ce+l1", "fusion": "mse"}[arch]
        assert np.isfinite(float(log_rows(run)[0]["val_mse_ab"]))


def test_init_starts_from_a_checkpoint(data2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--init: fine-tuning starts from another run's weights (matching tensors), not from scratch."""
    src = tmp_path / "src"
    train(cfg_for(data2, src, arch="unet_lut", epochs=1, steps_per_epoch=2, crop=32, lr=None, batch_size=2))
    donor, _ = load_model(src / "last")
    dst = tmp_path / "dst"
    res = train(cfg_for(data2, dst, arch="unet_lut_fast", epochs=1, steps_per_epoch=1, crop=32, lr=1e-12,
                        batch_size=2, init=src / "last.safetensors"))
    got, _ = load_model(dst / "last")
    own = got.state_dict()
    same = [k for k, v in donor.state_dict().items() if k in own and torch.allclose(own[k], v, atol=1e-6)]
    assert "lut_ab" in same and "stem.weight" in same and "head2.weight" in same
    assert len(same) == len(own)  # fast = unet_lut minus the edge conv: every tensor it has came over
    assert any("initialised" in n and "unet_lut" in n for n in res.notes)
    # A checkpoint with nothing in common is one clear error.
    v0 = tmp_path / "v0"
    train(cfg_for(data2, v0, epochs=1, steps_per_epoch=1))
    capsys.readouterr()
    one_line_error(capsys, retrocolor.main(["train", "--arch", "unet", "--data", str(data2), "--out",
                                            str(tmp_path / "x"), "--init", str(v0 / "last.safetensors"),
                                            "--cache-dir", "none"]), "no weights fit")


def test_unet_lut_run_starts_as_the_lookup_table(data2: Path, tmp_path: Path) -> None:
    """A fresh unet_lut run initialises its table from the training frames; a resumed run keeps its own."""
    run = tmp_path / "lut"
    train(cfg_for(data2, run, arch="unet_lut", epochs=1, steps_per_epoch=1, lr=1e-12, batch_size=2))
    model, _ = load_model(run / "last")
    fs = load_frames([data2], size=None, show_progress=False)
    lab = rgb_to_lab(fs.rgb)
    x = torch.from_numpy(lab[..., 0].astype(np.float32) / 100.0)[:, None]
    with torch.no_grad():
        pred = model(x).permute(0, 2, 3, 1).numpy() * AB_SCALE
    lut = LutBaseline(256)
    lut.update(lab[..., 0], lab[..., 1:])
    lut_mse = float(((lut.predict(lab[..., 0]) - lab[..., 1:]) ** 2).mean())
    gray_mse = float((lab[..., 1:] ** 2).mean())
    net_mse = float(((pred - lab[..., 1:]) ** 2).mean())
    assert net_mse < 1.5 * lut_mse + 1.0 and net_mse < 0.5 * gray_mse, (net_mse, lut_mse, gray_mse)
    # --resume must not re-initialise the table over the trained one.
    from models.train import load_state, save_state
    state = load_state(run)
    state["model"]["lut_ab"] = torch.zeros_like(state["model"]["lut_ab"])
    save_state(run, state)
    train(cfg_for(data2, run, arch="unet_lut", epochs=2, steps_per_epoch=1, lr=1e-12, batch_size=2, resume=True))
    resumed, _ = load_model(run / "last")
    assert resumed.lut_ab.abs().max() < 1e-6


@pytest.mark.shared
def test_train_on_real_slice(tmp_path: Path) -> None:
    gbc = shared_path("data", "gbc")
    run = tmp_path / "run"
    res = train(TrainConfig(arch="v0", data=[gbc / "big2small", gbc / "aevilia"], out=run, epochs=1, batch_size=4,
                            steps_per_epoch=2, crop=64, limit_per_game=20, cache_dir=None, show_progress=False))
    assert res.best_val["mse_ab"] < 0.2
    assert load_model(run)[1]["games"] == ["big2small", "aevilia"]


# ----------------------------------------------------------------------------- bad input
def cli(*argv: str) -> int:
    return retrocolor.main(["train", "--cache-dir", "none", *argv])


def one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("retrocolor: error:") and "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


def test_bad_inputs_are_one_line_errors(data2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o")
    one_line_error(capsys, cli("--arch", "v0", "--data", str(tmp_path / "nope"), "--out", out), "not found")
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, cli("--arch", "v0", "--data", str(tmp_path / "empty"), "--out", out), "no frames")
    one_line_error(capsys, cli("--arch", "nosuch", "--data", str(data2), "--out", out), "unknown arch", "v0", "unet")
    mixed = tmp_path / "mixed"
    write_game(mixed, "a", 3, 1)
    write_png(mixed / "a" / "zz.png", make_game_frames(1, 5, w=64, h=40)[0])
    one_line_error(capsys, cli("--arch", "v0", "--data", str(mixed), "--out", out), "mixed sizes")
    one_line_error(capsys, cli("--arch", "v0", "--data", str(data2), "--out", out, "--resume"), "no training state")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    one_line_error(capsys, cli("--arch", "v0", "--data", str(data2), "--out", str(tmp_path / "full")), "not empty")
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"
    one_line_error(capsys, cli("--arch", "v0", "--data", str(data2), "--out", out, "--crop", "20"), "multiple of 8")


def test_corrupt_png_is_skipped_and_reported(data2: Path, tmp_path: Path) -> None:
    (data2 / "beta" / "f0003.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    res = train(cfg_for(data2, tmp_path / "run", epochs=1, steps_per_epoch=1))
    assert any("f0003.png" in n and "skipped" in n for n in res.notes), res.notes
    assert "f0003.png" in str(res)


def test_resume_errors(data2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(cfg_for(data2, run, epochs=1, steps_per_epoch=1))
    one_line_error(capsys, cli("--arch", "unet", "--data", str(data2), "--out", str(run), "--resume"), "'v0' run")
    st = run / "state.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    one_line_error(capsys, cli("--arch", "v0", "--data", str(data2), "--out", str(run), "--resume", "--epochs", "2"),
                   "truncated")
    with pytest.raises(UserError, match="unreadable or truncated"):
        train(cfg_for(data2, run, resume=True, epochs=2))


def test_resume_accepts_the_same_data_spelt_from_another_folder(data2: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started with a relative --data resumes with the same folder as an absolute path, from elsewhere."""
    monkeypatch.chdir(data2.parent)
    run = tmp_path / "run"
    train(cfg_for(Path(data2.name), run, epochs=1, steps_per_epoch=1))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = train(cfg_for(data2.resolve(), run, resume=True, epochs=2, steps_per_epoch=1))
    assert len(log_rows(run)) == 2 and res.best_epoch in (1, 2)
    with pytest.raises(UserError, match="differ from the run's"):
        train(cfg_for(tmp_path / "elsewhere", run, resume=True, epochs=3, steps_per_epoch=1))
