"""Stage 3: colorization networks (a small timm-style registry), training and evaluation.

Every model maps ``L / 100`` of shape (B, 1, H, W) to ``ab / 128`` of shape (B, 2, H, W), for any
H and W that are multiples of 8.  ``model(x)`` is what export and inference use; models that
train with extra heads (class logits over ab bins, a game classifier) also provide
``model.forward_train(x) -> dict`` with at least the key ``"ab"``.

    >>> import models
    >>> net = models.create("v1")
    >>> models.list_models()
    ['fusion', 'unet', 'unet_lut', 'unet_lut_fast', 'unet_small', 'v0', 'v1', 'v2']

Importing ``models`` itself is cheap and does not import torch.  Torch-free modules: the
options and CLI (:mod:`models.config`, :mod:`models.cli`, :mod:`models.schedule`), the metrics
and baselines (:mod:`models.metrics`), the router (:mod:`models.router`) and evaluation of ONNX
models (:mod:`models.evaluate`; a checkpoint needs torch).  The registry functions below and
every module with networks, training or export need torch (``pip install 'retrocolor[train]'``);
nothing in ``realtime`` imports ``models``.
"""

from __future__ import annotations

from typing import Any

#: Registry functions, loaded (with torch and the built-in archs) on first use.
_REGISTRY_API = ("create", "list_models", "describe", "count_params", "entry", "register")

__all__ = list(_REGISTRY_API)


def __getattr__(name: str) -> Any:
    """``models.create`` and friends: import the registry and the built-in archs on first use."""
    if name in _REGISTRY_API:
        from models import archs, registry  # noqa: F401 - importing archs runs its @register calls

        value = getattr(registry, name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'models' has no attribute {name!r}")
