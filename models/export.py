"""Checkpoint -> ONNX for the torch-free player, with a parity check and optional int8 quantisation.

``export_onnx`` writes a self-describing model file: opset 17, input ``L`` (float32 ``L/100``,
``(B, 1, H, W)``), output ``ab`` (float32 ``ab/128``, ``(B, 2, H, W)``), batch, height and width
dynamic where the arch allows, and the checkpoint's whole JSON (arch, normalisation, training
data, held-out metrics, games) in the file's ``metadata_props`` -- so a model file alone says
what it is, and the engine never needs the checkpoint.

Nothing is written unless the exported graph agrees with torch on real frames (max |delta ab|
must be far below 1e-3 in ``ab/128`` units), because a silently wrong export would only show as
slightly wrong colours in a player's window.

With ``int8=True`` the fp32 graph is also statically quantised (QDQ, per-channel weights,
calibrated on real frames) and the speed-up and quality change are measured and reported: int8
is worth shipping only when both are known.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset import color
from models.checkpoint import load_model, resolve_checkpoint
from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_json
from utils.geometry import NATIVE_H, NATIVE_W
from utils.images import list_images, read_gray, read_rgb

OPSET = 17
FORMAT = "retrocolor-onnx-1"
#: fp32 export must match torch this closely (ab/128 units); typical is ~1e-6.
FP32_TOLERANCE = 1e-3


# ----------------------------------------------------------------------------- frames
def _spread(items: Sequence[Path], n: int) -> list[Path]:
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def _image_dirs(root: Path) -> list[Path]:
    """Folders under ``root`` (itself included) that directly hold images, dmg/ twin folders too."""
    dirs = []
    for d in [root, *sorted(p for p in root.rglob("*") if p.is_dir() and not p.name.startswith("."))]:
        try:
            if list_images(d):
                dirs.append(d)
        except OSError:
            continue
    return dirs


def calibration_frames(paths: Sequence[str | os.PathLike[str]], n: int = 64) -> np.ndarray:
    """Up to ``n`` real frames as ``L/100`` float32 ``(N, 1, H, W)``, spread over every image folder.

    Colour frames give their L, monochrome twins (``dmg/``) their grey L: both are real model
    inputs.  Frames are cropped to multiples of 8 and only the most common size is kept, so
    they batch.
    """
    dirs: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            dirs.append(p)
        elif p.is_dir():
            dirs.extend(_image_dirs(p))
        else:
            raise UserError(f"calibration data not found: {p}")
    if not dirs:
        raise UserError("no images found in " + ", ".join(str(p) for p in paths))
    per = max(1, -(-n // len(dirs)))
    files: list[Path] = []
    for d in dirs:
        files.extend([d] if d.is_file() else _spread(list_images(d), per))
    files = _spread(files, n)
    ls: list[np.ndarray] = []
    for f in files:
        try:
            if f.parent.name == "dmg":
                lum = color.gray_to_l(read_gray(f))
            else:
                lum = color.rgb_to_l(read_rgb(f))
        except UserError:
            continue
        h, w = (lum.shape[0] // 8) * 8, (lum.shape[1] // 8) * 8
        if h >= 8 and w >= 8:
            ls.append(lum[:h, :w])
    if not ls:
        raise UserError("no readable calibration images in " + ", ".join(str(p) for p in paths))
    sizes = [x.shape for x in ls]
    common = max(set(sizes), key=sizes.count)
    arr = np.stack([x for x in ls if x.shape == common])
    return color.normalize_l(arr)[:, None]


def _recorded_data(meta: dict[str, Any]) -> list[Path]:
    """Data folders the checkpoint says it was trained or validated on, where they still exist."""
    found: list[Path] = []

    def visit(v: Any) -> None:
        if isinstance(v, str):
            p = Path(v)
            if p.is_dir() and p not in found:
                found.append(p)
        elif isinstance(v, list):
            for x in v:
                visit(x)

    for key in ("val_data", "val", "data", "train_data", "test_data"):
        visit(meta.get(key))
    for sub in ("training", "train", "config", "data"):
        if isinstance(meta.get(sub), dict):
            for key in ("val", "val_data", "data", "train_data"):
                visit(meta[sub].get(key))
    return found


def synthetic_frames(n: int = 8, seed: int = 0) -> np.ndarray:
    """Game-Boy-like L/100 frames (8x8 tiles, 4 shades) when no real frame is at hand."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 4, size=(16, 8, 8))
    out = np.empty((n, 1, NATIVE_H, NATIVE_W), np.float32)
    for i in range(n):
        tmap = rng.integers(0, 16, size=(NATIVE_H // 8, NATIVE_W // 8))
        idx = tiles[tmap].transpose(0, 2, 1, 3).reshape(NATIVE_H, NATIVE_W)
        out[i, 0] = color.normalize_l(color.DMG_LEVELS_L[idx])
    return out


# ----------------------------------------------------------------------------- export
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _torch_export(model: torch.nn.Module, path: Path, dynamic_hw: bool) -> None:
    dummy = torch.zeros(1, 1, NATIVE_H, NATIVE_W)
    axes: dict[int, str] = {0: "batch"}
    if dynamic_hw:
        axes.update({2: "height", 3: "width"})
    try:
        with _quiet(), torch.no_grad():
            # The TorchScript exporter writes opset 17 natively and in under a second; the
            # dynamo exporter is the fallback for torch versions that dropped it.
            torch.onnx.export(model, (dummy,), str(path), input_names=["L"], output_names=["ab"],
                              opset_version=OPSET, dynamic_axes={"L": axes, "ab": axes}, dynamo=False)
        return
    except Exception as first:  # noqa: BLE001 - any exporter failure: try the other exporter
        err: BaseException = first
    try:
        shapes: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=1024)}
        if dynamic_hw:
            shapes[2] = 8 * torch.export.Dim("h8", min=1, max=512)
            shapes[3] = 8 * torch.export.Dim("w8", min=1, max=512)
        with _quiet(), torch.no_grad():
            prog = torch.onnx.export(model, (dummy,), input_names=["L"], output_names=["ab"], opset_version=OPSET,
                                     dynamic_shapes=({**shapes},), dynamo=True)
            prog.save(str(path))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"ONNX export failed: {type(err).__name__}: {' '.join(str(err).split())[:150]}; "
                        f"dynamo exporter: {' '.join(str(e).split())[:150]}") from None


def _session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    from utils.ort import session_options

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def _run(sess: Any, x: np.ndarray, batch: int = 8) -> np.ndarray:
    outs = [sess.run(["ab"], {"L": x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def _torch_run(model: torch.nn.Module, x: np.ndarray, batch: int = 8) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def _dynamic_ok(path: Path) -> bool:
    """Does the exported graph really run at other batch sizes and frame sizes?"""
    try:
        sess = _session(path)
        for shape in ((2, 1, NATIVE_H, NATIVE_W), (1, 1, 96, 128)):
            out = sess.run(["ab"], {"L": np.zeros(shape, np.float32)})[0]
            if out.shape != (shape[0], 2, shape[2], shape[3]):
                return False
    except Exception:  # noqa: BLE001 - a graph that fails at another size is simply not dynamic
        return False
    return True


def _metadata(meta: dict[str, Any], extra: dict[str, Any]) -> dict[str, str]:
    """metadata_props: the full JSON under ``retrocolor``, plus each top-level key on its own."""
    full = {**meta, **extra}
    props = {"retrocolor": json.dumps(full, sort_keys=False, default=str)}
    for k, v in full.items():
        props[str(k)] = v if isinstance(v, str) else json.dumps(v, default=str)
    return props


def _set_metadata(path: Path, props: dict[str, str], description: str) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    proto.producer_name = "retrocolor"
    proto.doc_string = description
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The retrocolor metadata stored in an exported ONNX file (what the checkpoint recorded)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not an ONNX file"
        raise UserError(f"{path}: not an ONNX model ({' '.join(str(e).split())[:120]})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if "retrocolor" in props:
        return json.loads(props["retrocolor"])
    return props


def _latency_ms(paths: Sequence[Path], seconds: float = 1.0, threads: int = 1) -> list[float]:
    """Median single-frame latency at 160x144 of each model (1 thread, as the player runs it).

    The models are timed interleaved, one run each in turn, so a busy machine slows them alike
    and the speed-up stays meaningful.
    """
    sessions = [_session(p, threads) for p in paths]
    x = synthetic_frames(1)
    for s in sessions:
        for _ in range(10):
            s.run(["ab"], {"L": x})
    times: list[list[float]] = [[] for _ in sessions]
    end = time.perf_counter() + seconds * len(sessions)
    while time.perf_counter() < end or len(times[0]) < 20:
        for s, t in zip(sessions, times, strict=True):
            t0 = time.perf_counter()
            s.run(["ab"], {"L": x})
            t.append(time.perf_counter() - t0)
    return [float(np.median(t) * 1e3) for t in times]


def _quantize(fp32: Path, out: Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"L": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="retrocolor-q-") as td:
        pre = Path(td) / "pre.onnx"
        try:
            with _quiet():
                quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing only helps; quantise the raw graph without it
            pre = fp32
        with _quiet():
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def _load_ensemble(checkpoints: Sequence[str | os.PathLike[str]]) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    """Several checkpoints -> one :class:`models.archs.Ensemble`, the first one's metadata and weights path.

    The members must share the normalisation (the ONNX contract); the card lists each member's
    checkpoint, arch and seed, so the file says what it averages.
    """
    from models.archs import Ensemble

    nets, metas, files = [], [], []
    for c in checkpoints:
        net, meta = load_model(c)
        nets.append(net)
        metas.append(meta)
        files.append(resolve_checkpoint(c)[0])
    norms = {json.dumps(m.get("normalisation"), sort_keys=True) for m in metas}
    if len(norms) > 1:
        raise UserError("these checkpoints normalise differently and cannot be averaged: "
                        + ", ".join(str(c) for c in checkpoints))
    members = [{"checkpoint": str(f), "arch": m.get("arch"), "seed": (m.get("config") or {}).get("seed")}
               for f, m in zip(files, metas, strict=True)]
    arches = sorted({str(m.get("arch")) for m in metas})
    meta = {**metas[0], "ensemble": members,
            "description": f"mean of {len(nets)} {'/'.join(arches)} nets ({metas[0].get('description') or ''})"}
    return Ensemble(nets).eval(), meta, files[0]


def export_onnx(
    checkpoint: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    calib: Sequence[str | os.PathLike[str]] | None = None,
    int8: bool = False,
    int8_output: str | os.PathLike[str] | None = None,
    card: bool = True,
    calib_frames: int = 64,
    timing_seconds: float = 1.0,
    temperature: float | None = None,
    tile_snap: bool = False,
    chroma: float | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Export ``checkpoint`` to ``output`` (.onnx), verify it, optionally quantise; returns a report.

    ``checkpoint``: one checkpoint, or a list of two or more, exported as one graph that averages
    their a/b (:class:`models.archs.Ensemble`: for offline use, one forward pass per member).

    ``calib``: folders or files of real frames for the parity check and int8 calibration (else
    the data the checkpoint recorded, else synthetic frames -- int8 refuses synthetic ones).
    ``card``: also write ``output`` with ``.json`` -- the model card ``weights`` lists.
    ``temperature``: the annealed-mean temperature of a bin-decoding net (``unet`` family), lower
    = bolder colours; chosen on validation games (``scripts/unseen.py``), recorded in the card.
    ``tile_snap``: wrap the net in :class:`models.archs.TileSnap` (for 4-shade input only).
    ``chroma``: scale the output a/b by this factor in (0, 1] (:class:`models.archs.ChromaScale`),
    chosen on validation games for a net meant for games it never saw; recorded in the card.
    """
    say = log or (lambda _m: None)
    out = Path(output)
    if out.suffix != ".onnx":
        raise UserError(f"output must be an .onnx file, got {out}")
    q_out = Path(int8_output) if int8_output else out.with_name(out.stem + ".int8.onnx")
    if int8 and q_out.resolve() == out.resolve():
        raise UserError("the int8 output must differ from the fp32 output")
    many = not isinstance(checkpoint, (str, os.PathLike))
    if many and len(checkpoint) == 1:  # type: ignore[arg-type]
        checkpoint, many = checkpoint[0], False  # type: ignore[index]
    if many:
        model, meta, st = _load_ensemble(checkpoint)  # type: ignore[arg-type]
    else:
        model, meta = load_model(checkpoint)  # type: ignore[arg-type]
        st, _ = resolve_checkpoint(checkpoint)  # type: ignore[arg-type]
    if temperature is not None:
        if not hasattr(model, "temperature") or not temperature > 0:
            raise UserError(f"--temperature needs a positive value and a bin-decoding arch ({meta.get('arch')} "
                            "has no temperature)")
        model.temperature = float(temperature)
        meta = {**meta, "arch_kwargs": {**(meta.get("arch_kwargs") or {}), "temperature": float(temperature)}}
    if tile_snap:
        from models.archs import TileSnap

        model = TileSnap(model).eval()
        meta = {**meta, "tile_snap": True}
    if chroma is not None:
        from models.archs import ChromaScale

        try:
            model = ChromaScale(model, chroma).eval()
        except ValueError as e:
            raise UserError(f"--chroma: {e}") from None
        meta = {**meta, "chroma": float(chroma)}

    if calib:
        frames, source = calibration_frames(calib, calib_frames), "calib: " + ", ".join(str(c) for c in calib)
    elif _recorded_data(meta):
        rec = _recorded_data(meta)
        frames, source = calibration_frames(rec, calib_frames), "checkpoint data: " + ", ".join(str(r) for r in rec)
    else:
        frames, source = synthetic_frames(8), "synthetic frames (no --calib and no recorded data found)"
        if int8:
            raise UserError("--int8 needs real calibration frames: pass --calib DIR (a folder of game frames)")

    report: dict[str, Any] = {"checkpoint": str(st), "output": str(out), "arch": meta.get("arch"),
                              "frames": int(len(frames)), "frame_size": [int(frames.shape[3]), int(frames.shape[2])],
                              "frames_source": source}
    with atomic_path(out) as tmp:
        _torch_export(model, tmp, dynamic_hw=True)
        dynamic = _dynamic_ok(tmp)
        if not dynamic:
            _torch_export(model, tmp, dynamic_hw=False)
            if frames.shape[2:] != (NATIVE_H, NATIVE_W):
                frames = synthetic_frames(8)
        export_info = {
            "format": FORMAT,
            "onnx": {"opset": OPSET, "input": "L: float32 L/100 (B,1,H,W)", "output": "ab: float32 ab/128 (B,2,H,W)",
                     "dynamic": ["batch", "height", "width"] if dynamic else ["batch"],
                     "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "source_checkpoint": st.name, "torch": torch.__version__},
        }
        desc = str(meta.get("description") or f"retrocolor {meta.get('arch')} colorizer: L/100 -> ab/128")
        _set_metadata(tmp, _metadata(meta, export_info), desc)
        sess = _session(tmp)
        ref = _torch_run(model, frames)
        got = _run(sess, frames)
        max_abs = float(np.abs(ref - got).max())
        report.update(dynamic=dynamic, parity_max_abs=max_abs, parity_max_abs_lab=max_abs * color.AB_SCALE)
        dyn = "batch/height/width" if dynamic else "batch only"
        say(f"exported {meta.get('arch')} -> {out} (opset {OPSET}, dynamic {dyn})")
        say(f"parity onnxruntime vs torch on {len(frames)} frames ({source}): max |delta ab| = {max_abs:.2e} "
            f"(ab/128 units; {max_abs * color.AB_SCALE:.2e} Lab)")
        if not max_abs < FP32_TOLERANCE:
            raise UserError(f"exported model disagrees with torch: max |delta ab| {max_abs:.2e} >= {FP32_TOLERANCE:g}; "
                            "nothing written")
        if not int8:
            fp32_ms = _latency_ms([tmp], timing_seconds)[0]

        if int8:
            with atomic_path(q_out) as qtmp:
                _quantize(tmp, qtmp, frames)
                qinfo_props = {**export_info, "quantization": {"type": "static int8 QDQ", "per_channel": True,
                                                               "activations": "uint8", "weights": "int8",
                                                               "calibration": source, "frames": int(len(frames))}}
                qsess = _session(qtmp)
                qgot = _run(qsess, frames)
                d = (qgot - got) * color.AB_SCALE
                q = {"path": str(q_out), "mse_ab": float(np.mean(d**2)), "max_abs_ab": float(np.abs(d).max()),
                     "max_abs": float(np.abs(qgot - got).max()),
                     "mse_ab_vs_truth_note": "vs the fp32 model on the calibration frames, Lab units"}
                fp32_ms, q["int8_ms"] = _latency_ms([tmp, qtmp], timing_seconds)
                q["speedup"] = fp32_ms / q["int8_ms"] if q["int8_ms"] > 0 else float("nan")
                qinfo_props["quantization"].update({k: q[k] for k in ("mse_ab", "max_abs_ab", "speedup")})
                _set_metadata(qtmp, _metadata(meta, qinfo_props), desc + " (int8)")
            report["int8"] = q
            report["fp32_ms"] = fp32_ms
            say(f"int8 -> {q_out}: {q['int8_ms']:.2f} ms vs fp32 {fp32_ms:.2f} ms per 160x144 frame "
                f"(speed-up x{q['speedup']:.2f}); vs fp32 on the {len(frames)} calibration frames: "
                f"mse_ab {q['mse_ab']:.3f}, max |delta ab| {q['max_abs_ab']:.2f} (Lab units)")
        else:
            report["fp32_ms"] = fp32_ms
            say(f"fp32 latency: {fp32_ms:.2f} ms per 160x144 frame (onnxruntime, 1 thread)")

    if card:
        card_path = out.with_suffix(".json")
        atomic_write_json(card_path, {
            "name": out.stem,
            "description": desc,
            "arch": meta.get("arch"),
            "arch_kwargs": meta.get("arch_kwargs", {}),
            "normalisation": meta.get("normalisation"),
            "games": meta.get("games"),
            "metrics": meta.get("metrics") or meta.get("test_metrics") or meta.get("val_metrics"),
            "onnx": export_info["onnx"],
            "parity_max_abs": max_abs,
            "fp32_ms": round(fp32_ms, 3),
            "int8": {k: v for k, v in report.get("int8", {}).items() if k != "mse_ab_vs_truth_note"} or None,
            "checkpoint_meta": meta,
        })
        report["card"] = str(card_path)
        say(f"model card -> {card_path}")
    return report
