"""CIE Lab (D65) conversion and the network normalisation, in one place: the public colour API.

Every stage that turns pixels into model inputs or model outputs into pixels goes through this
module, so training, evaluation, export and the live filter agree to the last bit.  The
constants of the conversion (``SRGB8_TO_LINEAR``, ``RGB_TO_XYZ``, ``XYZ_TO_RGB``, ``WHITE_D65``,
``LAB_EPSILON``, ``LAB_KAPPA``) are public so a faster implementation elsewhere (the live
engine's lookup tables) is built from the same numbers instead of copying them.  The
normalisation helpers take numpy arrays or torch tensors (without importing torch).  Torch-free.

Conventions (as the reference articles): ``L`` in [0, 100] is fed as ``L / 100``; ``a``, ``b`` in
roughly [-128, 127] are predicted as ``ab / 128`` (a ``tanh`` output).  sRGB is gamma-decoded
before the XYZ transform (the standard sRGB -> XYZ(D65) -> Lab chain).
"""

from __future__ import annotations

from typing import Any

import numpy as np

L_SCALE = 100.0
AB_SCALE = 128.0

# sRGB (D65) <-> XYZ matrices (IEC 61966-2-1) and the D65 white point.
RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=np.float64,
)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE_D65 = np.array([0.950456, 1.0, 1.088754], dtype=np.float64)
#: CIE's epsilon and kappa: where the Lab curve switches from the cube root to its linear part.
LAB_EPSILON = 0.008856
LAB_KAPPA = 903.3

#: 8-bit sRGB -> linear light lookup: exact and much faster than pow() per pixel.
SRGB8_TO_LINEAR = np.where(
    np.arange(256) / 255.0 <= 0.04045,
    np.arange(256) / 255.0 / 12.92,
    ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > LAB_EPSILON, np.cbrt(t), (LAB_KAPPA * t + 16.0) / 116.0)


def _f_inv(t: np.ndarray) -> np.ndarray:
    t3 = t**3
    return np.where(t3 > LAB_EPSILON, t3, (116.0 * t - 16.0) / LAB_KAPPA)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., 3)`` -> float32 Lab ``(..., 3)`` with L in [0, 100]."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb_to_lab expects uint8 RGB, got {rgb.dtype}")
    lin = SRGB8_TO_LINEAR[rgb]
    xyz = lin @ RGB_TO_XYZ.T / WHITE_D65
    f = _f(xyz)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([np.clip(L, 0.0, 100.0), a, b], axis=-1).astype(np.float32)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., 3)`` -> float32 L ``(...)`` in [0, 100] (cheaper than full Lab)."""
    lin = SRGB8_TO_LINEAR[np.asarray(rgb, dtype=np.uint8)]
    y = lin @ RGB_TO_XYZ[1]
    return np.clip(116.0 * _f(y) - 16.0, 0.0, 100.0).astype(np.float32)


def gray_to_l(gray: np.ndarray) -> np.ndarray:
    """uint8 grey ``(...)`` (R=G=B) -> float32 L in [0, 100]."""
    return _GRAY_L[np.asarray(gray, dtype=np.uint8)]


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float Lab ``(..., 3)`` -> uint8 sRGB ``(..., 3)``, out-of-gamut values clipped."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = np.stack([_f_inv(fx), _f_inv(fy), _f_inv(fz)], axis=-1) * WHITE_D65
    lin = np.clip(xyz @ XYZ_TO_RGB.T, 0.0, 1.0)
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(lin, 1.0 / 2.4) - 0.055)
    return np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)


def l_ab_to_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Combine L ``(H, W)`` in [0, 100] and ab ``(H, W, 2)`` (un-normalised) into uint8 RGB."""
    return lab_to_rgb(np.concatenate([np.asarray(L)[..., None], np.asarray(ab)], axis=-1))


def _is_tensor(x: Any) -> bool:
    # A torch tensor, recognised without importing torch (this module serves the base install).
    return type(x).__module__.startswith("torch")


def normalize_l(L: Any) -> Any:
    """L in [0, 100] -> network input ``L / 100`` in [0, 1].

    numpy (or anything array-like) -> float32 array; a torch tensor -> a float32 tensor
    (``L.float() / 100``), so training and the numpy pipelines round identically.
    """
    if _is_tensor(L):
        return L.float() / L_SCALE
    return (np.asarray(L, dtype=np.float32) / L_SCALE).astype(np.float32)


def normalize_ab(ab: Any) -> Any:
    """ab in Lab units -> network target ``ab / 128`` in about [-1, 1] (numpy or torch, as :func:`normalize_l`)."""
    if _is_tensor(ab):
        return ab.float() / AB_SCALE
    return (np.asarray(ab, dtype=np.float32) / AB_SCALE).astype(np.float32)


def denormalize_ab(ab_n: Any) -> Any:
    """Network output in [-1, 1] -> ab in Lab units (numpy or torch, as :func:`normalize_l`)."""
    if _is_tensor(ab_n):
        return ab_n.float() * AB_SCALE
    return (np.asarray(ab_n, dtype=np.float32) * AB_SCALE).astype(np.float32)


def posterize_l(L: np.ndarray, thresholds: tuple[float, float, float] = (25.0, 50.0, 75.0)) -> np.ndarray:
    """Quantise L to the 4 lightness levels of a monochrome Game Boy (the ``dmg4`` input).

    The four output levels are the L of grey 0, 85, 170 and 255, exactly what a real DMG twin
    frame (shades 0/85/170/255) converts to, so ``dmg4`` and ``dmg`` inputs share one domain.
    """
    L = np.asarray(L, dtype=np.float32)
    idx = np.digitize(L, np.asarray(thresholds, dtype=np.float32))
    return DMG_LEVELS_L[idx]


_GRAY_L = rgb_to_l(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))
#: L of the four DMG shades 0, 85, 170, 255.
DMG_LEVELS_L = _GRAY_L[[0, 85, 170, 255]].astype(np.float32)
