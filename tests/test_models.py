"""Model registry contract, ONNX export, MAC counting, losses, v2 weight loading and the GAN critic."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import models
from dataset.color import rgb_to_lab
from models.archs import load_torchvision_resnet18
from models.flops import count_macs
from models.gan import PatchCritic, adversarial_losses
from models.losses import ABBins, class_rebalance_weights, compute_loss
from utils.errors import UserError

ALL = ["fusion", "tile_palette", "tile_palette_large", "tile_palette_small", "unet", "unet_lut", "unet_lut_fast",
       "unet_small", "v0", "v1", "v2"]


def _make(name: str, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return models.create(name, **kw).eval()


def test_registry_lists_all_archs() -> None:
    assert set(ALL) <= set(models.list_models())
    assert all(models.describe()[n] for n in ALL)


@pytest.mark.parametrize("name", ALL)
def test_output_shape_and_range(name: str) -> None:
    m = _make(name)
    with torch.no_grad():
        for shape in [(2, 1, 144, 160), (1, 1, 64, 64)]:
            y = m(torch.rand(shape))
            assert y.shape == (shape[0], 2, shape[2], shape[3])
            assert torch.isfinite(y).all()
        # Blow the weights up: the output must stay a valid ab/128 however badly a net is trained.
        if hasattr(m, "lut_ab"):
            m.lut_ab.normal_()  # zero until init_from_data, and the head's last conv starts at zero
        for p in m.parameters():
            p.mul_(4.0)
        y = m(torch.rand(2, 1, 64, 64))
    assert y.abs().max() <= 1.0
    assert y.abs().max() > 0.5  # the blown-up net really is saturated: the bound was exercised


@pytest.mark.parametrize("name", ALL)
def test_forward_train_matches_forward(name: str) -> None:
    m = _make(name)
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        out = m.forward_train(x)
        assert torch.allclose(out["ab"], m(x), atol=1e-6)
    if name in ("unet", "unet_lut", "unet_lut_fast", "unet_small"):
        q = out["ab_bins"].shape[0]
        assert out["ab_logits"].shape == (2, q, 16, 24)  # logits at 1/4 resolution
        assert out["ab_bins"].shape == (q, 2)


@pytest.mark.parametrize("name", ["fusion", "unet", "unet_lut"])
def test_game_head(name: str) -> None:
    assert "game_logits" not in _make(name).forward_train(torch.rand(1, 1, 64, 64))
    out = _make(name, num_games=5).forward_train(torch.rand(3, 1, 64, 64))
    assert out["game_logits"].shape == (3, 5)


@pytest.mark.parametrize("name", ALL)
def test_registry_figures_are_true(name: str) -> None:
    """The parameter count each register() quotes (and describe() prints) is the model's own."""
    entry = models.entry(name)
    assert entry.params == models.count_params(_make(name))
    assert f"{entry.params / 1e3:.0f}k params" in models.describe()[name]


def test_per_model_training_defaults_live_with_the_model() -> None:
    assert {n: models.entry(n).loss for n in ALL} == {
        "fusion": "mse", "tile_palette": "ce+l1", "tile_palette_large": "ce+l1", "tile_palette_small": "ce+l1",
        "unet": "ce+l1", "unet_lut": "ce+l1", "unet_lut_fast": "ce+l1",
        "unet_small": "ce+l1",
        "v0": "mse", "v1": "mse", "v2": "mse"}
    # fusion sizes its game-classifier head from the training games; the others need nothing.
    assert models.entry("fusion").data_kwargs(["a", "b", "c"]) == {"num_games": 3}
    assert models.entry("fusion").data_kwargs(["a"]) == {}
    assert models.entry("unet").data_kwargs(["a", "b"]) == {}


def test_importing_models_needs_no_torch() -> None:
    """``import models`` and the modules its docstring calls torch-free (the CLI parser among them) import no torch."""
    import subprocess
    import sys

    code = ("import sys, models, models.config, models.cli, models.schedule, models.metrics, models.router, "
            "models.evaluate, retrocolor; retrocolor.build_parser(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_param_counts() -> None:
    assert abs(models.count_params(_make("v0")) - 32_000) / 32_000 < 0.03
    assert abs(models.count_params(_make("v1")) - 974_000) / 974_000 < 0.03
    # v2: torchvision resnet18 conv1..layer2 (1-channel conv1) is 683,072 parameters.
    assert models.count_params(_make("v2")) > 683_072
    assert models.count_params(_make("unet", width=2.0)) > 2 * models.count_params(_make("unet"))
    small = _make("unet_small")
    assert count_macs(small, 144, 160) < 0.7 * count_macs(_make("unet"), 144, 160)
    assert models.count_params(small) == models.count_params(_make("unet", width=0.75))


@pytest.mark.parametrize("name,kw", [("v1", {}), ("fusion", {"width": 32, "num_games": 4}),
                                     ("unet", {"width": 0.75, "bin_size": 0.12, "temperature": 1.0})])
def test_recreatable_from_arch_kwargs(name: str, kw: dict) -> None:
    m = _make(name, **kw)
    assert m.arch == name
    stored = json.loads(json.dumps({"arch": m.arch, "kwargs": m.arch_kwargs}))  # as checkpoints store it
    m2 = models.create(stored["arch"], **stored["kwargs"]).eval()
    m2.load_state_dict(m.state_dict(), strict=True)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))


@pytest.mark.parametrize("name", ALL)
def test_onnx_export_dynamic_shapes(name: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    m = _make(name)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.rand(1, 1, 144, 160),), str(path), opset_version=17, dynamo=False,
                          input_names=["L"], output_names=["ab"],
                          dynamic_axes={"L": {0: "b", 2: "h", 3: "w"}, "ab": {0: "b", 2: "h", 3: "w"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 144, 160), (2, 1, 64, 96)]:
        x = torch.rand(shape)
        with torch.no_grad():
            ref = m(x).numpy()
        got = sess.run(None, {"L": x.numpy()})[0]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-4


def test_unet_lut_fast_exports_without_the_bin_decoder(tmp_path) -> None:
    """unet_lut_fast's output does not depend on the bin logits, so the ONNX graph has no softmax."""
    onnx = pytest.importorskip("onnx")
    ops = {}
    for name in ("unet_lut", "unet_lut_fast"):
        path = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_make(name), (torch.rand(1, 1, 144, 160),), str(path), opset_version=17, dynamo=False,
                              input_names=["L"], output_names=["ab"])
        ops[name] = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Softmax" in ops["unet_lut"] and "Softmax" not in ops["unet_lut_fast"]
    assert ops["unet_lut_fast"].count("Conv") < ops["unet_lut"].count("Conv")


def test_count_macs_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(), conv,
                        nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(), nn.Linear(4 * 16 * 20, 10))
    macs = count_macs(net, h=16, w=20)
    first = 3 * 8 * 10 * 1 * 9  # stride 2 -> 8x10 output, 3 channels, 1x3x3 kernel each
    second = 8 * 8 * 10 * 3 * 9
    deconv = 8 * 8 * 10 * 4 * 2 * 2  # every input pixel scatters a 4x2x2 kernel
    linear = 4 * 16 * 20 * 10
    assert macs == first + second + deconv + linear
    assert conv.training is True and net.training is True  # mode restored
    # v0 by hand: stride-2 convs at 1/2, 1/4, 1/8; decoder convs at 1/4, 1/2, full.
    px = 144 * 160
    v0 = (px // 4) * (9 * 1 * 8 + 9 * 8 * 8 + 9 * 8 * 16) + (px // 16) * (9 * 16 * 16 + 9 * 16 * 32) \
        + (px // 64) * 9 * 32 * 32 + (px // 16) * 9 * 32 * 32 + (px // 4) * 9 * 32 * 16 + px * 9 * 16 * 2
    assert count_macs(_make("v0")) == v0


# ------------------------------------------------------------------------------------ losses
def _srgb_ab(n: int, seed: int = 0) -> torch.Tensor:
    rgb = np.random.default_rng(seed).integers(0, 256, (n, 3)).astype(np.uint8)
    return torch.from_numpy(rgb_to_lab(rgb)[:, 1:] / 128.0)


def test_abbins_round_trip_within_half_a_bin() -> None:
    bins = ABBins(0.08)
    assert 150 < bins.num_bins < 625  # gamut restriction removed bins, kept plenty
    ab = _srgb_ab(50_000).T.reshape(1, 2, -1, 1)
    err = (bins.decode(bins.encode(ab)) - ab).abs().max()
    assert err <= 0.04 + 1e-6
    rebuilt = ABBins.from_centers(bins.centers)
    assert torch.equal(rebuilt.lut, bins.lut) and rebuilt.num_bins == bins.num_bins


def test_soft_and_lowres_targets() -> None:
    bins = ABBins()
    ab = _srgb_ab(64, seed=1).T.reshape(1, 2, 8, 8)
    idx, wts = bins.soft_encode(ab)
    assert torch.allclose(wts.sum(1), torch.ones(1, 8, 8), atol=1e-5)
    assert torch.equal(idx.gather(1, wts.argmax(1, keepdim=True))[:, 0], bins.encode(ab))
    # A 4x4 cell half red, half blue: the target is bimodal, not the purple average.
    red, blue = torch.tensor([0.6, 0.5]), torch.tensor([0.3, -0.8])
    two = torch.zeros(1, 2, 4, 4)
    two[0, :, :, :2] = red.view(2, 1, 1)
    two[0, :, :, 2:] = blue.view(2, 1, 1)
    z = bins.target_distribution(two, (1, 1), soft=False)[0, :, 0, 0]
    r = bins.encode(red.view(1, 2, 1, 1)).item()
    b = bins.encode(blue.view(1, 2, 1, 1)).item()
    assert z.sum().item() == pytest.approx(1.0) and z[r].item() == pytest.approx(0.5)
    assert z[b].item() == pytest.approx(0.5)


def test_rebalance_weights_favour_rare_colours() -> None:
    bins = ABBins()
    grey = torch.zeros(9000, 2)
    red = torch.tensor([[0.6, 0.5]]).repeat(1000, 1)
    data = torch.cat([grey, red])
    w = class_rebalance_weights(data, bins)
    assert w.shape == (bins.num_bins,)
    g = bins.encode(torch.zeros(1, 2, 1, 1)).item()
    r = bins.encode(torch.tensor([0.6, 0.5]).view(1, 2, 1, 1)).item()
    assert w[r] > w[g]
    assert w.max() > w[r]  # never-seen colours weigh most (pure uniform prior)
    # Same as a (B, 2, H, W) batch, and accepts a model's centres buffer.
    w2 = class_rebalance_weights(data.T.reshape(1, 2, 100, 100), bins.centers)
    assert torch.allclose(w, w2)


def test_weighted_ce_decreases_towards_target_bin() -> None:
    bins = ABBins()
    target = torch.tensor([0.6, 0.5]).view(1, 2, 1, 1).expand(1, 2, 8, 8).contiguous()
    q = bins.encode(target[:, :, :1, :1]).item()
    w = class_rebalance_weights(torch.zeros(100, 2), bins)

    def ce(logits: torch.Tensor, soft: bool) -> float:
        out = {"ab": torch.zeros(1, 2, 8, 8), "ab_logits": logits, "ab_bins": bins.centers}
        loss, parts = compute_loss(out, target, kind="ce", class_weights=w, soft=soft)
        assert parts["total"] == pytest.approx(float(loss))
        return float(loss)

    losses = []
    for s in (0.0, 2.0, 5.0, 10.0):
        logits = torch.zeros(1, bins.num_bins, 2, 2)  # 1/4 resolution of the target
        logits[:, q] = s
        losses.append(ce(logits, soft=False))
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))
    # The rebalancing weight scales the loss: the rare target colour costs more than plain CE.
    assert losses[0] == pytest.approx(float(w[q]) * np.log(bins.num_bins), rel=1e-4)
    # Soft (Zhang) targets: the best logits are the log target distribution itself.
    z = bins.target_distribution(target, (2, 2))
    best = ce(torch.log(z + 1e-12), soft=True)
    assert best < ce(torch.zeros_like(z), soft=True) and best < ce(20.0 * (z == z.max()).float(), soft=True)


@pytest.mark.parametrize("kind", ["mse", "l1", "huber", "ce", "ce+l1"])
def test_compute_loss_kinds_train_unet(kind: str) -> None:
    m = _make("unet", num_games=3).train()
    x, t = torch.rand(2, 1, 32, 32), torch.rand(2, 2, 32, 32) * 0.6 - 0.3
    out = m.forward_train(x)
    loss, parts = compute_loss(out, t, game=torch.tensor([0, 2]), kind=kind)
    loss.backward()
    assert torch.isfinite(loss) and "game" in parts
    # Every kind reaches the logits: the regression kinds through the in-graph annealed mean.
    assert m.head.weight.grad is not None and m.head.weight.grad.abs().sum() > 0
    assert m.game_head.weight.grad.abs().sum() > 0


def _palette_frames(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, ab) in Lab units, as TensorData holds them: 4 palette colours drawn in random tiles."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.tensor([[224, 248, 208], [136, 192, 112], [200, 60, 60], [8, 24, 32]], dtype=torch.uint8)
    lab = torch.from_numpy(rgb_to_lab(rgb.numpy()[None])[0]).float()  # (4, 3)
    tiles = torch.randint(0, 4, (n, 8, 8), generator=g)
    idx = tiles.repeat_interleave(8, 1).repeat_interleave(8, 2)  # (n, 64, 64)
    px = lab[idx]  # (n, 64, 64, 3)
    return px[..., :1].permute(0, 3, 1, 2).half(), px[..., 1:].permute(0, 3, 1, 2).half()


def test_unet_lut_untrained_is_the_lookup_table() -> None:
    """init_from_data makes an untrained unet_lut predict the mean ab per L: the LUT baseline."""
    from models.metrics import LutBaseline

    L, ab = _palette_frames(6)
    m = _make("unet_lut")
    with torch.no_grad():
        before = m(L[:2].float() / 100.0)
    assert before.abs().max() == 0  # nothing learned, nothing initialised: grey
    m.init_from_data(L, ab)
    with torch.no_grad():
        pred = m(L[:2].float() / 100.0) * 128.0
    lut = LutBaseline(256)
    lut.update(L.float().numpy()[:, 0], ab.float().permute(0, 2, 3, 1).numpy())
    lut.fit_done()
    ref = lut.predict(L[:2].float().numpy()[:, 0])  # (2, H, W, 2) Lab units
    # Every pixel's L names its palette colour exactly, so both tables reproduce the truth.
    assert np.abs(pred.permute(0, 2, 3, 1).numpy() - ref).max() < 0.5
    assert (pred - ab[:2].float()).abs().max() < 0.5
    # Levels no pixel fell in are interpolated, not left at zero.
    filled = torch.unique(torch.round(L.float() / 100.0 * 255).long())
    gap = (int(filled[0]) + int(filled[1])) // 2
    expect = (m.lut_ab[filled[0]] + m.lut_ab[filled[1]]) / 2
    assert torch.allclose(m.lut_ab[gap], expect, atol=0.05)


def test_unet_lut_learns_what_no_lookup_table_can() -> None:
    """Same L, two colours, told apart only by a marker elsewhere on screen: context beats the LUT."""
    g = torch.Generator().manual_seed(0)
    n = 16
    kind = torch.arange(n) % 2  # 0: red scenes (bright marker), 1: blue scenes (dark marker)
    L = torch.full((n, 1, 32, 32), 60.0)
    L[:, :, :8, :] = torch.where(kind.view(-1, 1, 1, 1) == 0, 90.0, 20.0)  # a status bar
    ab = torch.zeros(n, 2, 32, 32)
    ab[:, 0] = torch.where(kind.view(-1, 1, 1) == 0, 40.0, -10.0)
    ab[:, 1] = torch.where(kind.view(-1, 1, 1) == 0, 20.0, -40.0)
    ab[:, :, :8, :] = 0.0
    m = _make("unet_lut").train()
    m.init_from_data(L.half(), ab.half())
    x, y = L / 100.0, ab / 128.0

    def mse() -> float:
        with torch.no_grad():
            return float(((m.eval()(x) - y) ** 2).mean())

    lut_mse = mse()  # the untrained net is the lookup table: it averages red and blue
    assert lut_mse > 0.02
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(200):  # seeds 0-3 get there by step 150 (the bin CE alone would take longer)
        m.train()
        i = torch.randint(0, n, (8,), generator=g)
        loss, _ = compute_loss(m.forward_train(x[i]), y[i], kind="l1")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mse() < 0.2 * lut_mse


def _dmg(shade: torch.Tensor) -> torch.Tensor:
    """Shade indices 0..3 -> L/100 on the 4 DMG levels (as the router's monochrome branch sees them)."""
    from dataset.color import DMG_LEVELS_L

    return torch.tensor(DMG_LEVELS_L / 100, dtype=torch.float32)[shade]


def test_tile_palette_is_one_colour_per_tile_and_shade() -> None:
    """Crisp by construction: every (8x8 tile, shade) group of the output is one colour."""
    m = _make("tile_palette")
    shade = torch.randint(0, 4, (2, 1, 144, 160), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m.forward_train(_dmg(shade))
    ab, group = out["ab"], out["group_index"]
    assert out["group_logits"].shape == (2, out["ab_bins"].shape[0], 4 * 18 * 20)
    for b in range(2):
        for g in (0, 17, 359, 360, 1000, 1439):
            px = ab[b][:, group[b] == g]
            assert px.shape[1] > 0 and torch.allclose(px, px[:, :1].expand_as(px), atol=1e-6)
    # the group index names (shade, tile) as documented: shade * tiles + tile row * 20 + tile column
    ty, tx = 5, 7
    assert group[1, ty * 8 + 3, tx * 8 + 2].item() == shade[1, 0, ty * 8 + 3, tx * 8 + 2].item() * 360 + ty * 20 + tx
    with pytest.raises(ValueError, match="multiples of 8"):
        m(torch.zeros(1, 1, 20, 16))


def test_group_targets_are_the_mean_of_the_pixels() -> None:
    bins = ABBins()
    red, blue = torch.tensor([0.6, 0.5]), torch.tensor([0.3, -0.8])
    ab = torch.zeros(1, 2, 2, 2)
    ab[0, :, 0, 0], ab[0, :, 0, 1], ab[0, :, 1, 0], ab[0, :, 1, 1] = red, blue, red, red
    group = torch.tensor([[[0, 0], [2, 2]]])  # group 1 is empty
    z, count = bins.group_distribution(ab, group, 3, soft=False)
    r, b = (bins.encode(c.view(1, 2, 1, 1)).item() for c in (red, blue))
    assert count.tolist() == [[2.0, 0.0, 2.0]]
    assert z[0, r, 0].item() == pytest.approx(0.5) and z[0, b, 0].item() == pytest.approx(0.5)
    assert z[0, :, 1].sum().item() == 0.0 and z[0, r, 2].item() == pytest.approx(1.0)
    zs, _ = bins.group_distribution(ab, group, 3, soft=True)
    assert torch.allclose(zs.sum(1), torch.tensor([[1.0, 0.0, 1.0]]), atol=1e-5)


def test_tile_palette_learns_colour_from_the_tile_not_the_shade() -> None:
    """Two tiles drawn with the same shades, coloured differently by their pattern: no per-shade lookup can."""
    g = torch.Generator().manual_seed(0)
    n = 16
    stripes = (torch.arange(8) % 2).view(1, 8).expand(8, 8)            # shades 0/1, vertical stripes
    checks = ((torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2)  # shades 0/1, checkerboard
    kind = torch.randint(0, 2, (n, 4, 4), generator=g)                # a 4x4 grid of tiles per frame
    tiles = torch.where(kind[..., None, None] == 0, stripes, checks)   # (n, 4, 4, 8, 8)
    shade = tiles.permute(0, 1, 3, 2, 4).reshape(n, 1, 32, 32) * 3      # shades 0 and 3
    k_px = kind.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None]  # (n, 1, 32, 32)
    y = torch.cat([torch.where(k_px == 0, 0.4, -0.1), torch.where(k_px == 0, 0.3, -0.4)], 1).float()
    y = y * (shade == 3)  # the light shade carries the colour, the dark one stays neutral
    x = _dmg(shade)
    m = _make("tile_palette").train()
    per_shade = torch.stack([y[:, c][shade[:, 0] == 3].mean() for c in range(2)]).view(1, 2, 1, 1) * (shade == 3)
    lut_mse = float(((per_shade - y) ** 2).mean())
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(120):
        loss, _ = compute_loss(m.forward_train(x), y, kind="ce+l1")
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        got = float(((m.eval()(x) - y) ** 2).mean())
    assert got < 0.2 * lut_mse, (got, lut_mse)


def test_compute_loss_errors() -> None:
    out = _make("v0").forward_train(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="ab_logits"):
        compute_loss(out, torch.zeros(1, 2, 16, 16), kind="ce")
    with pytest.raises(ValueError, match="unknown loss"):
        compute_loss(out, torch.zeros(1, 2, 16, 16), kind="wasserstein")


# --------------------------------------------------------------------------- v2 weights
def _torchvision_resnet18_state_dict() -> dict[str, torch.Tensor]:
    """Keys and shapes exactly as torchvision.models.resnet18().state_dict() (no torchvision here)."""
    g = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        sd[f"{prefix}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{prefix}.bias"] = torch.randn(c, generator=g)
        sd[f"{prefix}.running_mean"] = torch.randn(c, generator=g)
        sd[f"{prefix}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(1000)

    sd["conv1.weight"] = torch.randn(64, 3, 7, 7, generator=g)
    bn("bn1", 64)
    cin = 64
    for li, c in enumerate((64, 128, 256, 512), start=1):
        for bi in range(2):
            p = f"layer{li}.{bi}"
            sd[f"{p}.conv1.weight"] = torch.randn(c, cin if bi == 0 else c, 3, 3, generator=g) * 0.05
            bn(f"{p}.bn1", c)
            sd[f"{p}.conv2.weight"] = torch.randn(c, c, 3, 3, generator=g) * 0.05
            bn(f"{p}.bn2", c)
            if bi == 0 and li > 1:
                sd[f"{p}.downsample.0.weight"] = torch.randn(c, cin, 1, 1, generator=g) * 0.05
                bn(f"{p}.downsample.1", c)
        cin = c
    sd["fc.weight"] = torch.randn(1000, 512, generator=g)
    sd["fc.bias"] = torch.randn(1000, generator=g)
    return sd


def test_load_torchvision_resnet18_into_v2() -> None:
    m = _make("v2")
    sd = _torchvision_resnet18_state_dict()
    dec_before = m.dec[0].weight.clone()
    loaded = load_torchvision_resnet18(m, sd)
    assert "layer2.0.downsample.0.weight" in loaded and not any(k.startswith(("layer3", "fc")) for k in loaded)
    assert torch.allclose(m.conv1.weight, sd["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(m.layer2[1].conv2.weight, sd["layer2.1.conv2.weight"])
    assert torch.equal(m.bn1.running_var, sd["bn1.running_var"])
    assert torch.equal(m.dec[0].weight, dec_before)  # the decoder is untouched
    # Grey input as R=G=B through the RGB kernel == L through the summed kernel.
    x = torch.rand(1, 1, 32, 32)
    rgb = nn.functional.conv2d(x.expand(1, 3, 32, 32), sd["conv1.weight"], stride=2, padding=3)
    assert torch.allclose(m.conv1(x), rgb, atol=1e-4)
    del sd["layer1.0.conv1.weight"]
    with pytest.raises(UserError, match="missing"):
        load_torchvision_resnet18(_make("v2"), sd)


# ----------------------------------------------------------------------------------- GAN
def test_patch_critic_and_hinge_losses() -> None:
    torch.manual_seed(0)
    critic = PatchCritic(width=16)
    assert critic(torch.rand(2, 3, 48, 80)).shape == (2, 1, 6, 10)  # one logit per 8x8 tile
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(parametrize.is_parametrized(c, "weight") for c in convs)
    gen = _make("v0").train()
    L = torch.rand(2, 1, 32, 32)
    d_loss, g_loss = adversarial_losses(critic, L, gen(L), torch.rand(2, 2, 32, 32) * 2 - 1)
    # At init the critic says ~0 everywhere: the hinge loss is ~2.
    assert 1.5 < float(d_loss.detach()) < 2.5
    opt_d = torch.optim.SGD(critic.parameters(), lr=0.1)
    opt_d.zero_grad()
    d_loss.backward()
    assert next(gen.parameters()).grad is None  # the fake was detached for the critic
    opt_d.step()  # changes critic weights in place; g_loss must still back-propagate
    critic.zero_grad(set_to_none=True)
    g_loss.backward()
    assert all(p.grad is None for p in critic.parameters())
    assert next(gen.parameters()).grad.abs().sum() > 0
