"""Model files: weights as safetensors plus a small JSON beside them (never pickle).

A checkpoint is the pair ``NAME.safetensors`` + ``NAME.json``.  The JSON says how to rebuild and
use the model (``arch``, ``arch_kwargs``, normalisation, the games it knows, training data and
metrics), so a checkpoint is self-describing and loading it never executes code from the file.

``load_model`` accepts a run folder (its ``best`` checkpoint), either file of the pair, or the
stem, because users will pass whichever they see.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import models
from utils.errors import UserError
from utils.fsio import atomic_path, atomic_write_json

FORMAT = "retrocolor-checkpoint-1"
NORMALISATION = {"input": "L/100", "output": "ab/128", "color": "CIE Lab D65 (sRGB)"}


def save_model(stem: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Write ``stem.safetensors`` then ``stem.json`` atomically; returns the .safetensors path.

    The weights are written first so a JSON never points at weights that are not there.
    """
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    model = getattr(model, "module", model)  # unwrap DDP
    info = {
        "format": FORMAT,
        "arch": getattr(model, "arch", None),
        "arch_kwargs": getattr(model, "arch_kwargs", {}),
        "normalisation": NORMALISATION,
        **(meta or {}),
    }
    if not info["arch"]:
        raise ValueError("model has no .arch: build it with models.create()")
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    st = stem.with_name(stem.name + ".safetensors")
    # The pair is two renames, so a kill can fall between them.  The weights file therefore also
    # carries the JSON (and an id the JSON repeats): a reader that finds the JSON missing or from
    # another save uses the copy that was committed with the weights (see read_meta).
    info["weights_id"] = uuid.uuid4().hex
    with atomic_path(st) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "arch": str(info["arch"]),
                                               "weights_id": info["weights_id"], "meta": json.dumps(info)})
    atomic_write_json(stem.with_name(stem.name + ".json"), info)
    return st


def _embedded(st: Path) -> dict[str, str]:
    """The safetensors header's metadata (``{}`` if unreadable: load_model reports that file)."""
    try:
        with safe_open(str(st), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return {}


def resolve_checkpoint(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Find the (weights, json) pair for a run folder, either file, or a stem."""
    p = Path(path)
    if p.is_dir():
        for name in ("best", "last"):
            if (p / f"{name}.safetensors").is_file():
                p = p / name
                break
        else:
            raise UserError(f"{path}: no checkpoint (best.safetensors or last.safetensors) in this folder")
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    st, js = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    if p.suffix not in ("", ".safetensors", ".json") or (p.suffix == "" and not st.is_file()):
        if p.suffix in (".pt", ".pth", ".ckpt", ".bin", ".pkl"):
            raise UserError(
                f"{path}: pickle checkpoints are not loaded (they can run code); "
                "use a retrocolor .safetensors checkpoint"
            )
    if not st.is_file():
        raise UserError(f"checkpoint not found: {st}")
    if not js.is_file() and "meta" not in _embedded(st):
        raise UserError(f"checkpoint metadata not found: {js} (it must sit beside {st.name})")
    return st, js


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's JSON metadata, validated."""
    st, js = resolve_checkpoint(path)
    emb = _embedded(st)
    meta: Any = None
    if js.is_file():
        try:
            meta = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            if "meta" not in emb:
                raise UserError(f"{js}: unreadable checkpoint metadata ({e})") from None
    stale = isinstance(meta, dict) and "weights_id" in emb and meta.get("weights_id") != emb["weights_id"]
    if (meta is None or stale) and "meta" in emb:
        # Killed between the two renames of save_model: the JSON is missing, torn or from the
        # previous save; the copy committed with the weights is the true one.
        try:
            meta = json.loads(emb["meta"])
        except json.JSONDecodeError:
            raise UserError(f"{st}: unreadable embedded checkpoint metadata") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), str):
        raise UserError(f"{js}: not a retrocolor checkpoint (no 'arch')")
    if not isinstance(meta.get("arch_kwargs", {}), dict):
        raise UserError(f"{js}: 'arch_kwargs' must be an object")
    return meta


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
               expect_arch: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by a checkpoint and load its weights (eval mode).

    Raises UserError for a missing, truncated or mismatched checkpoint, or one of another arch
    than ``expect_arch``.
    """
    st, js = resolve_checkpoint(path)
    meta = read_meta(js)
    if expect_arch is not None and meta["arch"] != expect_arch:
        raise UserError(f"{st}: checkpoint is arch {meta['arch']!r}, not {expect_arch!r}")
    try:
        model = models.create(meta["arch"], **meta.get("arch_kwargs", {}))
    except TypeError as e:
        raise UserError(f"{js}: arch_kwargs do not fit arch {meta['arch']!r} ({e})") from None
    try:
        state = load_file(str(st), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{st}: unreadable or truncated weights file ({' '.join(str(e).split())[:120]})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "shape mismatch"
        raise UserError(f"{st}: weights do not match arch {meta['arch']!r} ({first})") from None
    model.eval()
    return model, meta
