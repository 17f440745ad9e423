"""The model registry (as timm's): each constructor registers with the defaults that belong to it.

A model's ``register(...)`` call carries everything the rest of the code needs to know about
it, so adding a model means touching only the file that defines it:

* ``description``: one line for ``--help`` and error messages;
* ``loss``: the loss it trains best with under the "ours" preset (``mse`` if not given);
* ``data_kwargs``: constructor arguments the training data decides (e.g. a game-classifier
  head sized to the games in the data), a function of the training games;
* ``params``: its trainable parameter count at default arguments, as quoted in the description
  (tests check it, so the figure cannot go stale).

This module needs torch (``pip install 'retrocolor[train]'``).  It does not import the model
definitions itself: ``models/__init__.py`` imports :mod:`models.archs` before it hands out
:func:`create`, and ``archs`` imports this module, so the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only on the base install
    from utils.errors import UserError

    raise UserError("this command needs PyTorch: pip install 'retrocolor[train]'") from e

from torch import nn

from utils.errors import UserError

Builder = Callable[..., nn.Module]
DataKwargs = Callable[[Sequence[str]], dict[str, Any]]


def _no_data_kwargs(games: Sequence[str]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ModelEntry:
    """One registered model and its defaults (see the module docstring)."""

    name: str
    build: Builder
    description: str
    loss: str = "mse"
    data_kwargs: DataKwargs = _no_data_kwargs
    params: int | None = None

    @property
    def summary(self) -> str:
        """The description with the parameter count, for listings."""
        if self.params is None:
            return self.description
        return f"{self.description} ({self.params / 1e3:.0f}k params)"


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, description: str = "", *, loss: str = "mse", data_kwargs: DataKwargs | None = None,
             params: int | None = None) -> Callable[[Builder], Builder]:
    """Decorator adding a model constructor, with its defaults, to the registry under ``name``."""

    def deco(fn: Builder) -> Builder:
        text = description or (fn.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ModelEntry(name=name, build=fn, description=text, loss=loss,
                                     data_kwargs=data_kwargs or _no_data_kwargs, params=params)
        return fn

    return deco


def entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; unknown names list the known ones (UserError)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown arch {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(_REGISTRY)


def describe() -> dict[str, str]:
    """``{name: one-line description}`` for ``--help`` texts and error messages."""
    return {name: _REGISTRY[name].summary for name in sorted(_REGISTRY)}


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build an untrained model by registry name; unknown names list the known ones."""
    model = entry(name).build(**kwargs)
    model.arch = name  # type: ignore[attr-defined]
    model.arch_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return model


def count_params(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
