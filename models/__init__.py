"""Stage 3: colorization networks (a small timm-style registry), training and evaluation.

Every model maps ``L / 100`` of shape (B, 1, H, W) to ``ab / 128`` of shape (B, 2, H, W), for any
H and W that are multiples of 8.  ``model(x)`` is what export and inference use; models that
train with extra heads (class logits over ab bins, a game classifier) also provide
``model.forward_train(x) -> dict`` with at least the key ``"ab"``.

    >>> import models
    >>> net = models.create("v1")
    >>> models.list_models()
    ['fusion', 'unet', 'v0', 'v1', 'v2']

This package needs torch (``pip install retrocolor[train]``); nothing in ``realtime`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only on the base install
    from utils.errors import UserError

    raise UserError("this command needs PyTorch: pip install 'retrocolor[train]'") from e

from torch import nn

from utils.errors import UserError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str = "") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model constructor to the registry under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return deco


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def describe() -> dict[str, str]:
    """``{name: one-line description}`` for ``--help`` texts and error messages."""
    _load_all()
    return dict(sorted(_DESCRIPTIONS.items()))


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build an untrained model by registry name; unknown names list the known ones."""
    _load_all()
    if name not in _REGISTRY:
        raise UserError(f"unknown arch {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    model = _REGISTRY[name](**kwargs)
    model.arch = name  # type: ignore[attr-defined]
    model.arch_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return model


def count_params(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _load_all() -> None:
    # Importing the modules runs their @register decorators.
    from models import archs  # noqa: F401
