"""``retrocolor evaluate``: a model and the gray / lookup-table baselines on the same frames.

The model may be a retrocolor checkpoint (``models.checkpoint.load_model``), an ONNX file (run
with onnxruntime: first input ``L/100`` (B, 1, H, W) float32, first output ``ab/128``
(B, 2, H, W)), or a shipped model name (``weights.resolve``).  Metrics are computed at native
resolution with :mod:`models.metrics` (definitions there); "overall" is the mean over all
evaluated frames, so games with more frames weigh more.

Inputs (``input_mode``):

* ``L``    the colour frame's own lightness;
* ``dmg4`` that L posterised to the 4 DMG shades with the fixed thresholds (25, 50, 75);
* ``dmg``  the L of the real monochrome twin; frames without a twin are skipped and counted.

The LUT baseline is fitted on the same kind of input (posterised / twin L), so in the dmg modes
it is the fair 4-entry table such an input allows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dataset.color import denormalize_ab, gray_to_l, l_ab_to_rgb, normalize_l, posterize_l, rgb_to_lab
from dataset.loader import FrameSet, load_frames
from models.metrics import (
    BOOT_DEFAULT,
    METRIC_KEYS,
    LookAccumulator,
    LutBaseline,
    MetricAccumulator,
    boot_palette_ab,
    dmg_shade,
    frame_metrics,
    frame_metrics_weighted,
    gray_predict,
    rgb_to_lab_fast,
)
from utils.errors import UserError
from utils.fsio import atomic_write_json
from utils.progress import progress

INPUT_MODES = ("L", "dmg4", "dmg")
#: The LUT is a 256-entry mean; it converges long before this many frames (spread evenly).
LUT_MAX_FRAMES = 4000
#: Frames per game shown in ``--grid``.
GRID_PER_GAME = 4

Predictor = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- model loading
def _torch_predictor(model: Any, batch_size: int) -> Predictor:
    import torch

    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        outs = []
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size]))
                if ph or pw:
                    t = torch.nn.functional.pad(t, (0, pw, 0, ph), mode="replicate")
                outs.append(model(t)[..., :h, :w].float().numpy())
        return np.concatenate(outs)

    return run


def _is_router(sess: Any) -> bool:
    """True for a ``models.router`` graph (it routes a whole batch by one decision)."""
    try:
        meta = json.loads(dict(sess.get_modelmeta().custom_metadata_map).get("retrocolor", "{}"))
    except (json.JSONDecodeError, AttributeError, TypeError):
        return False
    return isinstance(meta, dict) and meta.get("router") is True


def _onnx_predictor(path: Path) -> Predictor:
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a base dependency
        raise UserError("evaluating an ONNX model needs onnxruntime: pip install onnxruntime") from None
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise UserError(f"{path}: not a loadable ONNX model ({' '.join(str(e).split())[:160]})") from None
    ins, outs_ = sess.get_inputs(), sess.get_outputs()
    if len(ins) != 1:
        raise UserError(f"{path}: ONNX model has {len(ins)} inputs; a colorizer takes one (L/100, shape B,1,H,W)")
    inp = ins[0]
    out_name = outs_[0].name
    shape = list(inp.shape)
    if len(shape) != 4:
        raise UserError(f"{path}: ONNX input {inp.name!r} has shape {shape}; expected (B, 1, H, W)")
    if inp.type != "tensor(float)":
        raise UserError(f"{path}: ONNX input {inp.name!r} is {inp.type}; expected tensor(float) L/100")
    if isinstance(shape[1], int) and shape[1] != 1:
        raise UserError(f"{path}: ONNX input {inp.name!r} has {shape[1]} channels; expected 1 (lightness)")
    oshape = list(outs_[0].shape)
    if len(oshape) != 4 or (isinstance(oshape[1], int) and oshape[1] != 2):
        raise UserError(f"{path}: ONNX output {out_name!r} has shape {oshape}; expected (B, 2, H, W) ab")
    fixed_b = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    if fixed_b is None and _is_router(sess):
        fixed_b = 1  # a router decides per call, so each frame must be routed on its own
    fixed_hw = tuple(shape[2:]) if all(isinstance(v, int) and v > 0 for v in shape[2:]) else None

    def run(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[-2:]
        if fixed_hw is not None and fixed_hw != (h, w):
            raise UserError(f"{path}: ONNX model takes {fixed_hw[1]}x{fixed_hw[0]} frames, data are {w}x{h}")
        ph, pw = ((-h) % 8, (-w) % 8) if fixed_hw is None else (0, 0)
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
        step = fixed_b or 64
        outs = []
        for s in range(0, x.shape[0], step):
            chunk = np.ascontiguousarray(x[s:s + step], dtype=np.float32)
            n = chunk.shape[0]
            if fixed_b is not None and n < fixed_b:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed_b - n, 0)])
            try:
                y = sess.run([out_name], {inp.name: chunk})[0]
            except Exception as e:  # noqa: BLE001 - onnxruntime's errors are untyped pybind classes
                raise UserError(f"{path}: the ONNX model fails on a {w}x{h} batch "
                                f"({' '.join(str(e).split())[:160]})") from None
            y = np.asarray(y, np.float32)
            if y.ndim != 4 or y.shape[1] != 2:
                raise UserError(f"{path}: the ONNX model returned shape {tuple(y.shape)}; expected (B, 2, H, W) ab")
            outs.append(y[:n, :, :h, :w])
        return np.concatenate(outs)

    return run


def load_predictor(model: str | os.PathLike[str], batch_size: int = 16) -> tuple[Predictor, dict[str, Any]]:
    """A function ``x = L/100 (B, 1, H, W) -> ab/128 (B, 2, H, W)`` (numpy) and model info.

    ``info`` holds ``kind`` (checkpoint / onnx), ``path`` and ``meta`` (the checkpoint's JSON, or
    an ONNX file's JSON model card beside it when there is one).
    """
    p = Path(model)
    if not p.exists() and p.suffix not in (".onnx", ".safetensors", ".json"):
        try:
            from weights import resolve  # type: ignore[attr-defined]
        except ImportError:
            resolve = None
        if resolve is not None:
            try:
                p = Path(resolve(str(model)))
            except UserError:
                raise
            except (KeyError, LookupError, FileNotFoundError, ValueError):
                pass
    if p.suffix.lower() == ".onnx":
        if not p.is_file():
            raise UserError(f"model file not found: {p}")
        meta: dict[str, Any] = {}
        card = p.with_suffix(".json")
        if card.is_file():
            try:
                loaded = json.loads(card.read_text(encoding="utf-8"))
                meta = loaded if isinstance(loaded, dict) else {}
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                meta = {}
        return _onnx_predictor(p), {"kind": "onnx", "path": str(p), "meta": meta}
    if not p.exists() and not p.with_name(p.name + ".safetensors").exists():
        raise UserError(f"model not found: {model} (expected a checkpoint, an .onnx file or a shipped model name)")
    from models.checkpoint import load_model

    net, meta = load_model(p)
    return _torch_predictor(net, batch_size), {"kind": "checkpoint", "path": str(p), "meta": meta}


# ----------------------------------------------------------------------------- inputs
def input_l(mode: str, L_true: np.ndarray, dmg: np.ndarray | None) -> np.ndarray:
    """The network input lightness (Lab units) for ``mode`` from the true L and the twin grey."""
    if mode == "L":
        return L_true
    if mode == "dmg4":
        return posterize_l(L_true)
    if mode == "dmg":
        if dmg is None:
            raise ValueError("dmg mode needs twins")
        return gray_to_l(dmg)
    raise UserError(f"unknown input mode {mode!r}; known: {', '.join(INPUT_MODES)}")


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def _training_frames(meta: dict[str, Any], with_dmg: bool) -> tuple[FrameSet | None, str]:
    """The model's own training frames from checkpoint metadata, minus its validation block.

    An exported model's card keeps the checkpoint's metadata under ``checkpoint_meta``.
    """
    if not meta.get("data") and isinstance(meta.get("checkpoint_meta"), dict):
        meta = meta["checkpoint_meta"]
    data = meta.get("data")
    if not isinstance(data, list) or not data:
        return None, "no training data recorded in the model's metadata (pass --baseline-train)"
    missing = [d for d in data if not Path(d).is_dir()]
    if missing:
        return None, f"the model's training data {missing[0]} is not on this machine (pass --baseline-train)"
    fs = load_frames(data, with_dmg=with_dmg, size=None, limit_per_game=meta.get("limit_per_game"), show_progress=False)
    hold = meta.get("holdout")
    if isinstance(hold, dict):
        from models.data import holdout_split

        train_idx, _ = holdout_split(fs, float(hold.get("fraction", 0.1)), int(hold.get("gap", 2)))
        fs = fs.subset(train_idx)
    return fs, "model training data: " + ", ".join(str(d) for d in data)


def fit_lut(fs: FrameSet, mode: str, bins: int = 256, max_frames: int = LUT_MAX_FRAMES) -> tuple[LutBaseline, int]:
    """Fit the LUT baseline on ``fs`` with the input of ``mode``; returns (lut, frames used)."""
    idx = np.arange(len(fs))
    if mode == "dmg":
        if fs.has_dmg is None or not fs.has_dmg.any():
            raise UserError("--input dmg: the LUT training frames have no monochrome twins (pass --baseline-train)")
        idx = idx[fs.has_dmg]
    if idx.size > max_frames:
        idx = idx[np.linspace(0, idx.size - 1, max_frames).round().astype(np.int64)]
    lut = LutBaseline(bins)
    for s, e in _chunks(idx.size, 128):
        sel = idx[s:e]
        lab = rgb_to_lab_fast(fs.rgb[sel])
        dmg = fs.dmg[sel] if fs.dmg is not None else None
        lut.update(input_l(mode, lab[..., 0], dmg), lab[..., 1:])
    lut.fit_done()
    return lut, int(idx.size)


# ----------------------------------------------------------------------------- grid
def image_grid(blocks: list[tuple[str, list[list[np.ndarray]]]], label_h: int = 14) -> np.ndarray:
    """Stack labelled blocks of image rows (uint8 RGB, equal sizes) into one RGB image.

    Each block is ``(label, rows)``: a label strip, then its rows (e.g. input / prediction /
    truth) of frames side by side.  Short rows are padded with black.
    """
    import cv2

    if not blocks or not blocks[0][1] or not blocks[0][1][0]:
        raise ValueError("image_grid needs at least one image")
    h, w = blocks[0][1][0][0].shape[:2]
    cols = max(len(r) for _, rows in blocks for r in rows)
    parts: list[np.ndarray] = []
    for label, rows in blocks:
        strip = np.zeros((label_h, cols * w, 3), np.uint8)
        cv2.putText(strip, label[:80], (2, label_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                    cv2.LINE_AA)
        parts.append(strip)
        for r in rows:
            row = np.zeros((h, cols * w, 3), np.uint8)
            for j, im in enumerate(r):
                im = im if im.ndim == 3 else np.repeat(im[..., None], 3, 2)
                row[:, j * w:(j + 1) * w] = im
            parts.append(row)
    return np.concatenate(parts, 0)


def l_to_gray_rgb(L: np.ndarray) -> np.ndarray:
    """An L image (Lab units) shown as grey sRGB."""
    return l_ab_to_rgb(L, np.zeros(L.shape + (2,), np.float32))


# ----------------------------------------------------------------------------- evaluate
def _model_metrics(look: LookAccumulator, ab_pred: np.ndarray, ab_true: np.ndarray, L_true: np.ndarray,
                   L_in: np.ndarray, rgb: np.ndarray, games: np.ndarray,
                   shade: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-frame metrics of one batch, and its share of each game's look (run in a worker thread).

    The look is judged on what a player sees: the *input* lightness with the predicted colour.
    """
    shown = np.stack([l_ab_to_rgb(L_in[i], ab_pred[i]) for i in range(len(L_in))])
    look.add(games, shown, ab_pred, rgb, ab_true, shade)
    return frame_metrics(ab_pred, ab_true, L_true, rgb), games


def _median(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.median(v)) if v else None


def by_game_summary(per_game: dict[str, Any]) -> dict[str, Any]:
    """Step 7's figures over games (each game counts once, however many frames it has)."""
    games = list(per_game.values())
    if not games:
        return {}
    out: dict[str, Any] = {
        "games": len(games),
        "median_ratio_to_gray": _median([g["ratio_to_gray"] for g in games]),
        # A game whose Color version is itself grey (grey's error 0) has no ratio; no model beats grey there.
        "share_below_gray": float(np.mean([g["mse_ab"] < g["baselines"]["gray"]["mse_ab"] for g in games])),
        "grey_truth_games": sum(g["ratio_to_gray"] is None for g in games),
        "median_colourfulness_ratio": _median([g["look"]["colourfulness_ratio"] for g in games]),
        "median_hist_js_ratio": _median([g["look"]["hist_js_ratio"] for g in games]),
        "median_tile_uniformity": _median([g["look"]["tile_uniformity"] for g in games]),
        "median_tile_uniformity_truth": _median([g["look"]["tile_uniformity_truth"] for g in games]),
    }
    for key in ("lut", "boot_default", "boot_best", "scheme_best"):
        ratios = []
        below = []
        for g in games:
            b = g["baselines"].get(key)
            gray = g["baselines"]["gray"]["mse_ab"]
            if b and gray:
                ratios.append(b["mse_ab"] / gray)
                below.append(g["mse_ab"] < b["mse_ab"])
        if ratios:
            out[f"{key}_median_ratio_to_gray"] = _median(ratios)
            out[f"share_below_{key}"] = float(np.mean(below))
    return out


def evaluate(model: str | os.PathLike[str], data: Sequence[str | os.PathLike[str]], input_mode: str = "L",
             baseline_train: Sequence[str | os.PathLike[str]] | None = None,
             json_path: str | os.PathLike[str] | None = None, grid_path: str | os.PathLike[str] | None = None,
             limit_per_game: int | None = None, batch_size: int = 64, show_progress: bool = True,
             schemes: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Evaluate ``model`` and the baselines on ``data``; returns the report (see module docstring).

    ``schemes`` (a :mod:`dataset.schemes` file) adds, for 4-shade input, the baseline of a player
    who picks the best of those colour schemes for each game (with hindsight, as the boot ROM's
    best palette is picked), beside the boot ROM's palettes.

    The report has ``overall``, ``baselines`` {gray, lut}, ``per_game`` {GAME: {... ,
    baselines}} (each with mse_ab, delta_e, acc10, psnr, n_frames) plus model / input / skip
    information; ``json_path`` gets exactly that as JSON.
    """
    if input_mode not in INPUT_MODES:
        raise UserError(f"unknown input mode {input_mode!r}; known: {', '.join(INPUT_MODES)}")
    if limit_per_game is not None and limit_per_game <= 0:
        raise UserError("--limit-per-game must be positive")
    predict, info = load_predictor(model)
    if info["kind"] == "checkpoint":
        # Leave one core to the metrics worker thread (two busy OpenMP threads on two cores
        # plus numpy measured ~1.7x slower than one).
        import torch

        old_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(old_threads, (os.cpu_count() or 2) - 1)))
        try:
            return _evaluate(predict, info, data, input_mode, baseline_train, json_path, grid_path, limit_per_game,
                             batch_size, show_progress, schemes)
        finally:
            torch.set_num_threads(old_threads)
    return _evaluate(predict, info, data, input_mode, baseline_train, json_path, grid_path, limit_per_game,
                     batch_size, show_progress, schemes)


def _evaluate(predict: Predictor, info: dict[str, Any], data: Sequence[str | os.PathLike[str]], input_mode: str,
              baseline_train: Sequence[str | os.PathLike[str]] | None, json_path: str | os.PathLike[str] | None,
              grid_path: str | os.PathLike[str] | None, limit_per_game: int | None, batch_size: int,
              show_progress: bool, schemes: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    with_dmg = input_mode == "dmg"
    fs = load_frames(data, with_dmg=with_dmg, size=None, limit_per_game=limit_per_game, show_progress=show_progress)
    skipped_unreadable = [f"{p}: {why}" for p, why in fs.skipped]
    no_twin: dict[str, int] = {}
    if with_dmg:
        has = fs.has_dmg if fs.has_dmg is not None else np.zeros(len(fs), bool)
        for g, name in enumerate(fs.games):
            k = int(((fs.game == g) & ~has).sum())
            if k:
                no_twin[name] = k
        if not has.any():
            raise UserError("--input dmg: none of the frames has a monochrome twin (GAME/dmg/NAME.png)")
        fs = fs.subset(np.nonzero(has)[0])

    # The LUT baseline.
    lut: LutBaseline | None = None
    lut_info: dict[str, Any] = {}
    if baseline_train:
        bfs = load_frames(baseline_train, with_dmg=with_dmg, size=None, show_progress=False)
        source = "--baseline-train: " + ", ".join(str(d) for d in baseline_train)
    else:
        bfs, source = _training_frames(info["meta"], with_dmg)
    if bfs is not None and len(bfs):
        lut_mode = input_mode
        if input_mode == "dmg" and (bfs.has_dmg is None or not bfs.has_dmg.any()):
            # A model trained on a colour longplay has no twins to fit on: the table a user could
            # build from those frames is the one of their 4-shade look, which is what twins are.
            lut_mode = "dmg4"
            source += " (no monochrome twins there: fitted on their 4-shade look)"
        lut, used = fit_lut(bfs, lut_mode)
        lut_info = {"source": source, "fit_frames": used, "filled_bins": lut.filled_bins, "bins": lut.bins}
    else:
        lut_info = {"source": None, "note": source}

    acc = {"model": MetricAccumulator(), "gray": MetricAccumulator(), "lut": MetricAccumulator()}
    look = LookAccumulator()
    # The boot ROM's palettes colour 4-shade input only: the baselines of a monochrome game.
    boot_ab = boot_palette_ab() if input_mode in ("dmg", "dmg4") else {}
    boot_acc = {name: MetricAccumulator() for name in boot_ab}
    # So do colour schemes: a player's pick among palettes homebrew Color games use.
    scheme_pal: dict[str, np.ndarray] = {}
    if schemes is not None and not boot_ab:
        raise UserError("--schemes scores palettes on monochrome input: use it with --input dmg or dmg4")
    if schemes is not None:
        from dataset.schemes import load as load_schemes

        # a scheme lists shade 0 = black first; dmg_shade (the boot palettes' index) is 0 = lightest
        scheme_pal = {str(i): np.asarray(s["ab"], np.float32)[::-1]
                      for i, s in enumerate(load_schemes(schemes)["schemes"], 1)}
    scheme_acc = {name: MetricAccumulator() for name in scheme_pal}
    grid_pick: dict[int, np.ndarray] = {}
    if grid_path is not None:
        for g in range(len(fs.games)):
            idx = np.nonzero(fs.game == g)[0]
            if idx.size:
                grid_pick[g] = idx[np.linspace(0, idx.size - 1, min(GRID_PER_GAME, idx.size)).round().astype(np.int64)]
    wanted = {int(i) for v in grid_pick.values() for i in v}
    grid_imgs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    bar = progress(total=len(fs), desc="evaluating", unit="frame", disable=None if show_progress else True)
    pool = ThreadPoolExecutor(max_workers=1)
    pending: Future[tuple[dict[str, np.ndarray], np.ndarray]] | None = None
    for s, e in _chunks(len(fs), batch_size):
        rgb = fs.rgb[s:e]
        n = e - s
        dmg = fs.dmg[s:e] if (fs.dmg is not None and input_mode == "dmg") else None
        # One pass over the pixels: the distinct (frame, colour[, twin shade]) triples.  Lab,
        # the input L and both baselines are computed per distinct triple, then gathered.
        key = (np.arange(n, dtype=np.uint64)[:, None, None] << np.uint64(32)) | (
            (rgb[..., 0].astype(np.uint64) << np.uint64(16)) | (rgb[..., 1].astype(np.uint64) << np.uint64(8))
            | rgb[..., 2].astype(np.uint64))
        if dmg is not None:
            key |= dmg.astype(np.uint64) << np.uint64(24)
        uniq, inv, count = np.unique(key.ravel(), return_inverse=True, return_counts=True)
        inv = inv.reshape(rgb.shape[:3])
        f_u = (uniq >> np.uint64(32)).astype(np.int64)
        rgb_u = np.stack([(uniq >> np.uint64(s_)) & np.uint64(255) for s_ in (16, 8, 0)], -1).astype(np.uint8)
        lab_u = rgb_to_lab(rgb_u)
        dmg_u = ((uniq >> np.uint64(24)) & np.uint64(255)).astype(np.uint8) if dmg is not None else None
        Lin_u = input_l(input_mode, lab_u[:, 0], dmg_u)
        L_true, ab_true, L_in = lab_u[inv, 0], lab_u[inv, 1:], Lin_u[inv]
        x = normalize_l(L_in)[:, None]
        y = predict(x)
        if y.ndim != 4 or y.shape[0] != x.shape[0] or y.shape[1] != 2 or y.shape[2:] != x.shape[2:]:
            raise UserError(f"model output has shape {tuple(y.shape)}; expected (B, 2, H, W) ab/128 "
                            f"for input {tuple(x.shape)}")
        ab_pred = denormalize_ab(np.moveaxis(y, 1, -1))
        games = fs.game[s:e]
        # The model's metrics (its PSNR rebuild is per pixel: the slowest part) run in a worker
        # thread while the next batch goes through the model; numpy and torch release the GIL.
        if pending is not None:
            acc["model"].add(*pending.result())
        shade = dmg_shade(L_in) if boot_ab else np.round(L_in * 2).astype(np.int16)
        pending = pool.submit(_model_metrics, look, ab_pred, ab_true, L_true, L_in, rgb, games, shade)
        if boot_ab:
            shade_u = dmg_shade(Lin_u)
            for name, pal in boot_ab.items():
                boot_acc[name].add(frame_metrics_weighted(f_u, count, pal[shade_u], lab_u[:, 1:], lab_u[:, 0], rgb_u,
                                                          n), games)
            for name, pal in scheme_pal.items():
                scheme_acc[name].add(frame_metrics_weighted(f_u, count, pal[shade_u], lab_u[:, 1:], lab_u[:, 0],
                                                            rgb_u, n), games)
        acc["gray"].add(frame_metrics_weighted(f_u, count, gray_predict(Lin_u), lab_u[:, 1:], lab_u[:, 0], rgb_u, n),
                        games)
        if lut is not None:
            acc["lut"].add(frame_metrics_weighted(f_u, count, lut.predict(Lin_u), lab_u[:, 1:], lab_u[:, 0], rgb_u, n),
                           games)
        for j in range(n):
            if s + j in wanted:
                grid_imgs[s + j] = (l_to_gray_rgb(L_in[j]), l_ab_to_rgb(L_in[j], ab_pred[j]), rgb[j])
        bar.update(n)
    if pending is not None:
        acc["model"].add(*pending.result())
    pool.shutdown()
    bar.close()

    def nan_to_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    per_model = acc["model"].per_group()
    per_gray = acc["gray"].per_group()
    per_lut = acc["lut"].per_group() if lut is not None else {}
    per_boot = {name: a.per_group() for name, a in boot_acc.items()}
    per_scheme = {name: a.per_group() for name, a in scheme_acc.items()}
    per_game: dict[str, Any] = {}
    for g, name in enumerate(fs.games):
        if g not in per_model:
            continue
        baselines: dict[str, Any] = {"gray": nan_to_none(per_gray[g]),
                                     "lut": nan_to_none(per_lut[g]) if g in per_lut else None}
        if per_boot:
            baselines["boot_default"] = nan_to_none(per_boot[BOOT_DEFAULT][g])
            best = min(per_boot, key=lambda p: per_boot[p][g]["mse_ab"])
            baselines["boot_best"] = {**nan_to_none(per_boot[best][g]), "palette": best}
        if per_scheme:
            best = min(per_scheme, key=lambda p: per_scheme[p][g]["mse_ab"])
            baselines["scheme_best"] = {**nan_to_none(per_scheme[best][g]), "scheme": int(best)}
        gray_mse = per_gray[g]["mse_ab"]
        per_game[name] = {
            **nan_to_none(per_model[g]),
            "ratio_to_gray": per_model[g]["mse_ab"] / gray_mse if gray_mse > 0 else None,
            "look": look.summary(g),
            "baselines": baselines,
        }
    meta = info["meta"]
    report: dict[str, Any] = {
        "overall": nan_to_none(acc["model"].overall()),
        "baselines": {
            "gray": nan_to_none(acc["gray"].overall()),
            "lut": nan_to_none(acc["lut"].overall()) if lut is not None else None,
        },
        "per_game": per_game,
        "by_game": by_game_summary(per_game),
        "model": {"path": info["path"], "kind": info["kind"], "arch": meta.get("arch")},
        "input_mode": input_mode,
        "averaging": "overall = mean over all evaluated frames; per_game = mean over that game's frames",
        "lut": lut_info,
        "skipped": {"no_twin": no_twin, "no_twin_total": int(sum(no_twin.values())), "unreadable": skipped_unreadable},
        "data": [str(d) for d in data],
    }
    if json_path is not None:
        atomic_write_json(json_path, report)
    if grid_path is not None and grid_imgs:
        from utils.images import write_png

        blocks = []
        for g, idx in grid_pick.items():
            imgs = [grid_imgs[int(i)] for i in idx]
            blocks.append((f"{fs.games[g]}  (rows: input / prediction / truth)",
                           [[t[0] for t in imgs], [t[1] for t in imgs], [t[2] for t in imgs]]))
        write_png(grid_path, image_grid(blocks))
        report["grid"] = str(grid_path)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table: overall model vs baselines, then one line per game."""

    def fmt(m: dict[str, Any] | None) -> str:
        if m is None:
            return "   (n/a)"
        vals = []
        for k in METRIC_KEYS:
            v = m.get(k)
            if v is None:
                vals.append(f"{'-':>8}")
            elif k == "acc10":
                vals.append(f"{100 * v:7.1f}%")
            elif k == "mse_ab":
                vals.append(f"{v:8.5f}")
            else:
                vals.append(f"{v:8.2f}")
        return " ".join(vals) + f" {m.get('n_frames', 0):7d}"

    head = f"{'':28} {'mse_ab':>8} {'deltaE':>8} {'acc10':>8} {'psnr':>8} {'frames':>7}"
    model = report.get("model", {})
    lines = [f"model: {model.get('path')} ({model.get('kind')}, arch {model.get('arch')}), "
             f"input {report.get('input_mode')}"]
    sk = report.get("skipped", {})
    if sk.get("no_twin_total"):
        lines.append(f"skipped {sk['no_twin_total']} frames without a monochrome twin")
    if sk.get("unreadable"):
        lines.append(f"skipped {len(sk['unreadable'])} unreadable files (first: {sk['unreadable'][0]})")
    lut = report.get("lut", {})
    if lut.get("source"):
        lines.append(f"LUT baseline fitted on {lut.get('fit_frames')} frames ({lut['source']})")
    elif lut.get("note"):
        lines.append(f"LUT baseline: not computed: {lut['note']}")
    lines.append(head)
    lines.append(f"{'model (overall)':28} {fmt(report['overall'])}")
    lines.append(f"{'gray baseline':28} {fmt(report['baselines']['gray'])}")
    lines.append(f"{'LUT baseline':28} {fmt(report['baselines']['lut'])}")
    if len(report.get("per_game", {})) > 1:
        lines.append("per game (model | LUT mse_ab):")
        for name, m in report["per_game"].items():
            lm = (m.get("baselines") or {}).get("lut")
            tail = f" | {lm['mse_ab']:.5f}" if lm and lm.get("mse_ab") is not None else ""
            lines.append(f"  {name[:26]:26} {fmt(m)}{tail}")
    bg = report.get("by_game") or {}
    if bg and len(report.get("per_game", {})) > 1:
        lines.append("")
        lines.append(format_by_game(report))
    lines.append("(overall = mean over all frames; mse_ab on ab/128; deltaE = CIE76 over a/b; "
                 "acc10 = pixels with deltaE < 10; psnr of true L + predicted ab vs true RGB)")
    return "\n".join(lines)


def format_by_game(report: dict[str, Any]) -> str:
    """Per game, what a player would judge: error against grey's, colour, histogram, crispness."""

    def f(v: Any, spec: str = ".2f") -> str:
        return "-" if v is None else format(v, spec)

    per_game = report["per_game"]
    boot = any("boot_best" in g["baselines"] for g in per_game.values())
    sch = any("scheme_best" in g["baselines"] for g in per_game.values())
    head = f"{'game':26} {'mse/gray':>8} {'colour':>7} {'histJS':>7} {'tiles':>6} {'truth':>6}"
    if sch:
        head += f" {'scheme/gray':>11} {'(#)':>4}"
    if boot:
        head += f" {'boot/gray':>9} {'best/gray':>9}  best palette"
    lines = ["by game (mse/gray: model mse_ab / grey's; colour: colourfulness / truth's; "
             "histJS: a/b histogram JS distance / grey's; tiles: tile uniformity, truth's beside it):", head]
    for name, g in per_game.items():
        lk, gray = g["look"], g["baselines"]["gray"]["mse_ab"]
        row = (f"{name[:26]:26} {f(g['ratio_to_gray']):>8} {f(lk['colourfulness_ratio']):>7} "
               f"{f(lk['hist_js_ratio']):>7} {f(lk['tile_uniformity']):>6} {f(lk['tile_uniformity_truth']):>6}")
        if sch:
            sb = g["baselines"]["scheme_best"]
            row += f" {f(sb['mse_ab'] / gray if gray else None):>11} {sb['scheme']:>4}"
        if boot:
            bd, bb = g["baselines"]["boot_default"], g["baselines"]["boot_best"]
            row += (f" {f(bd['mse_ab'] / gray if gray else None):>9} {f(bb['mse_ab'] / gray if gray else None):>9}"
                    f"  {bb['palette']}")
        lines.append(row)
    bg = report["by_game"]
    lines.append(f"over {bg['games']} games (medians): mse/gray {f(bg['median_ratio_to_gray'])}, below grey on "
                 f"{100 * bg['share_below_gray']:.0f}%; colourfulness {f(bg['median_colourfulness_ratio'])} of the "
                 f"truth's; histogram JS {f(bg['median_hist_js_ratio'])} of grey's; tile uniformity "
                 f"{f(bg['median_tile_uniformity'])} (truth {f(bg['median_tile_uniformity_truth'])})")
    if boot:
        lines.append(f"boot ROM palettes (mse/gray, median): default {f(bg.get('boot_default_median_ratio_to_gray'))}, "
                     f"best per game with hindsight {f(bg.get('boot_best_median_ratio_to_gray'))}; the model beats "
                     f"the default on {100 * bg.get('share_below_boot_default', 0):.0f}% of games and the "
                     f"hindsight-best on {100 * bg.get('share_below_boot_best', 0):.0f}%")
    if sch:
        lines.append(f"colour schemes (mse/gray, median): the best of them per game, with hindsight (what a player "
                     f"picking by eye can get at most), {f(bg.get('scheme_best_median_ratio_to_gray'))}; the model "
                     f"beats it on {100 * bg.get('share_below_scheme_best', 0):.0f}% of games")
    return "\n".join(lines)
