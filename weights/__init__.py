"""Shipped colorization models: ``NAME.onnx`` (+ ``NAME.int8.onnx``) and a ``NAME.json`` model card.

This folder is package data in the wheel, so a player gets working models with ``pip install
retrocolor`` and never needs PyTorch.  Model files are looked up by *name* so commands can say
``--model default`` instead of a path into site-packages.

* :func:`list_models` -- what is shipped, with the one-line purpose from each model card.
* :func:`resolve` -- a name or a path -> the ``.onnx`` file to load.  An existing path always wins
  (users pass their own exports); otherwise the name must be a shipped model.  Names with path
  separators or ``..`` are refused, so a name can never reach outside this folder.
* :data:`DEFAULT` -- the name commands use when no ``--model`` is given.  It resolves to
  ``default.onnx`` when that file exists, else to the model whose card says ``"default": true``,
  else to the only shipped model when there is exactly one.

The model card is plain JSON written by ``retrocolor export``: ``description`` (what the model is
for), ``arch``, ``games``, ``metrics`` and whatever else the checkpoint recorded.  A model without
a card is still listed (its description is then empty).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from utils.errors import UserError

#: The folder holding the shipped models (this package's own directory).
WEIGHTS_DIR = Path(__file__).resolve().parent

#: Name used when the user names no model.
DEFAULT = "default"

_INT8 = ".int8"


def _card(stem: Path) -> dict[str, Any]:
    """The model card beside ``stem.onnx`` or ``{}``; a broken card must not hide the model."""
    card = stem.with_name(stem.name + ".json")
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _shipped(folder: Path | None = None) -> dict[str, Path]:
    """``{name: path}`` of the fp32 models in the weights folder (int8 twins are variants)."""
    folder = WEIGHTS_DIR if folder is None else folder
    try:
        files = sorted(p for p in folder.glob("*.onnx") if p.is_file() and not p.name.startswith("."))
    except OSError:
        return {}
    out: dict[str, Path] = {}
    for p in files:
        if p.stem.endswith(_INT8):
            continue
        out[p.stem] = p
    # An int8 model shipped without its fp32 twin is still a model.
    for p in files:
        if p.stem.endswith(_INT8) and p.stem[: -len(_INT8)] not in out:
            out[p.stem] = p
    return out


def _default_name(shipped: dict[str, Path]) -> str | None:
    if DEFAULT in shipped:
        return DEFAULT
    for name, path in shipped.items():
        if _card(path.with_suffix("")).get("default") is True:
            return name
    fp32 = [n for n in shipped if not n.endswith(_INT8)]
    return fp32[0] if len(fp32) == 1 else None


def list_models(folder: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Shipped models, sorted by name: ``name``, ``path``, ``int8_path`` (or None), ``description``,
    ``default`` (bool) and the full ``card``.  Empty when no model is shipped yet.
    """
    shipped = _shipped(Path(folder) if folder is not None else None)
    default = _default_name(shipped)
    rows = []
    for name, path in shipped.items():
        stem = path.with_suffix("")
        card = _card(stem)
        int8 = stem.with_name(stem.name + _INT8 + ".onnx")
        rows.append({
            "name": name,
            "path": path,
            "int8_path": int8 if int8.is_file() and int8 != path else None,
            "description": str(card.get("description", "")),
            "default": name == default,
            "card": card,
        })
    return rows


def shipped_names() -> list[str]:
    """Names accepted by :func:`resolve` (besides paths), for error messages and ``--help``."""
    shipped = _shipped()
    names = sorted(shipped)
    if _default_name(shipped) is not None and DEFAULT not in names:
        names.insert(0, DEFAULT)
    return names


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith(".onnx") or os.sep in text


def resolve(name_or_path: str | os.PathLike[str], *, int8: bool = False) -> Path:
    """The ``.onnx`` file for a shipped model name or a path.

    An existing file path wins.  Otherwise ``name_or_path`` must be a shipped name (``default``,
    ``NAME`` or ``NAME.int8``); ``int8=True`` picks the int8 twin of a shipped name.  Unknown
    names raise :class:`UserError` listing what is shipped.
    """
    text = os.fspath(name_or_path)
    if not text:
        raise UserError("empty model name")
    p = Path(text).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        raise UserError(f"{text}: is a folder, not an .onnx model file")
    if _looks_like_path(text):
        raise UserError(f"model file not found: {text}")
    if ".." in text or text.startswith(".") or any(c in text for c in ":\0"):
        raise UserError(f"invalid model name {text!r} (names may not contain '..', separators or a leading dot)")
    shipped = _shipped()
    name = text
    if name == DEFAULT:
        default = _default_name(shipped)
        if default is None:
            if not shipped:
                raise UserError("no model is shipped in the weights folder yet; pass --model PATH.onnx "
                                "(make one with: retrocolor export CHECKPOINT -o MODEL.onnx)")
            names = ", ".join(sorted(shipped))
            raise UserError(f"no default model among the shipped ones ({names}); pass --model NAME")
        name = default
    if int8 and not name.endswith(_INT8):
        twin = name + _INT8
        if twin in shipped or (WEIGHTS_DIR / f"{twin}.onnx").is_file():
            return WEIGHTS_DIR / f"{twin}.onnx"
        raise UserError(f"shipped model {name!r} has no int8 version")
    if name in shipped:
        return shipped[name]
    if name.endswith(_INT8) and (WEIGHTS_DIR / f"{name}.onnx").is_file():
        return WEIGHTS_DIR / f"{name}.onnx"
    known = ", ".join(shipped_names()) or "none shipped yet"
    raise UserError(f"unknown model {text!r}: not a file and not a shipped model (shipped: {known})")


def card_for(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card beside an ``.onnx`` file (``NAME.json``; an int8 file shares its fp32 card)."""
    stem = Path(path).with_suffix("")
    card = _card(stem)
    if not card and stem.name.endswith(_INT8):
        card = _card(stem.with_name(stem.name[: -len(_INT8)]))
    return card
