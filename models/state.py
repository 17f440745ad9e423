"""The training state behind an exact ``--resume``: written at each epoch's end, read back whole.

The state is one safetensors file whose metadata carries a JSON skeleton (tensors in
safetensors, structure and scalars in JSON, never pickle); being one file, its atomic rename is
the commit point.  ``state.json`` beside it is a readable copy.  :func:`resume_config` decides
which settings a resumed run takes from the run and which from the new command line.
"""

from __future__ import annotations

import json
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.config import TrainConfig, resume_new_fields
from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_json

STATE_FORMAT = "retrocolor-train-state-1"


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Turn nested state (dicts with any keys, lists, tuples, tensors, numpy arrays, scalars)
    into a JSON skeleton, moving tensors into ``tensors`` under dotted names (no pickle)."""
    if isinstance(obj, torch.Tensor):
        name = prefix
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        name = prefix
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj.astype(np.int64) if obj.dtype == np.uint32 else obj))
        return {"__ndarray__": name, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"__map__": [[flatten_state(k, tensors, f"{prefix}.k{i}"), flatten_state(v, tensors, f"{prefix}.{i}")]
                            for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).replace("torch.", "")}
    raise TypeError(f"cannot serialise {type(obj).__name__} in training state")


def unflatten_state(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skel, list):
        return [unflatten_state(v, tensors) for v in skel]
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__ndarray__" in skel:
            return tensors[skel["__ndarray__"]].numpy().astype(skel["dtype"])
        if "__map__" in skel:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in skel["__map__"]}
        if "__tuple__" in skel:
            return tuple(unflatten_state(v, tensors) for v in skel["__tuple__"])
        if "__dtype__" in skel:
            return getattr(torch, skel["__dtype__"])
    return skel


def rng_state() -> dict[str, Any]:
    """Every global RNG a run touches (torch, CUDA, numpy, Python)."""
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(st["torch"].to(torch.uint8))
    np.random.set_state(tuple(st["numpy"]))  # type: ignore[arg-type]
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in st["cuda"]])


def save_state(run: Path, state: dict[str, Any]) -> None:
    """Write RUN/state.safetensors (authoritative, JSON skeleton in its metadata) and state.json."""
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten_state(state, tensors, "s")
    text = json.dumps({"format": STATE_FORMAT, "state": skel})
    with atomic_path(run / "state.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT, "skeleton": text})
    readable = {k: state[k] for k in ("arch", "epoch", "step", "phase", "best", "config") if k in state}
    atomic_write_json(run / "state.json", {"format": STATE_FORMAT, **readable,
                                           "note": "readable copy; --resume reads state.safetensors"})


def load_state(run: Path) -> dict[str, Any]:
    """Read RUN/state.safetensors; UserError if missing, truncated or not ours."""
    st = run / "state.safetensors"
    if not st.is_file():
        raise UserError(f"--resume: no training state in {run} (state.safetensors missing); start without --resume")
    try:
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(st))
        doc = json.loads(meta.get("skeleton", ""))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{st}: unreadable or truncated training state ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise UserError(f"{st}: not a retrocolor training state")
    try:
        return unflatten_state(doc["state"], tensors)
    except KeyError as e:
        raise UserError(f"{st}: inconsistent training state (missing tensor {e})") from None


def resume_config(cfg: TrainConfig, state: dict[str, Any]) -> TrainConfig:
    """The config a resumed run continues with: the run's own settings, except the fields
    declared ``resume="new"`` (the epoch count to extend a run, the hardware settings, and the
    NoGAN phase that may be added to a finished generator run), which come from ``cfg``.

    UserError when ``cfg`` names another arch or other data than the run.
    """
    run = cfg.out
    saved = state["config"]
    if saved.get("arch") != cfg.arch:
        raise UserError(f"--resume: {run} holds a {saved.get('arch')!r} run, not {cfg.arch!r} "
                        f"(pass --arch {saved.get('arch')})")
    # Relative paths are the run's own: resolved against the folder it was started from, so a
    # resume from elsewhere, or with the same folders written as absolute paths, is the same run.
    base = Path(state.get("cwd") or ".")

    def same(a: list[str] | None, b: list[Path] | None) -> bool:
        return [str((base / p).resolve()) for p in (a or [])] == [str(Path(p).resolve()) for p in (b or [])]

    if not same(saved.get("data"), cfg.data) or not same(saved.get("val"), cfg.val):
        raise UserError(f"--resume: --data/--val differ from the run's ({', '.join(saved.get('data', []))})")
    new = resume_new_fields()
    merged = {**{k: v for k, v in saved.items() if k not in new}, **{k: getattr(cfg, k) for k in new}}
    merged["data"] = [Path(p) for p in cfg.data]  # the same folders (checked above), spelt for this cwd
    merged["val"] = [Path(p) for p in cfg.val] if cfg.val else None
    if cfg.epochs is None and "patience" not in saved:
        # A run started before the data-scaled schedule existed: it keeps the epoch count it was
        # started with (then a preset's 30), so it continues exactly as it would have.
        merged["epochs"] = saved.get("epochs")
    merged["out"] = Path(merged["out"])
    if merged.get("init") is not None:
        merged["init"] = Path(merged["init"])
    if merged.get("crop") is None and merged.get("crop_explicit"):
        merged["crop"] = 0  # the run asked for whole frames (--crop 0), not the preset's crop
    return TrainConfig(**{k: merged[k] for k in (f.name for f in fields(TrainConfig)) if k in merged}).resolved()
