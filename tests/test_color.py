"""dataset.color: the one Lab conversion every stage shares must be accurate and invertible.

If it drifted, training targets, evaluation and the live filter would disagree; these tests pin
it to textbook values and to a lossless round trip over every colour a Game Boy Color can show.
"""

from __future__ import annotations

import numpy as np
import pytest

from dataset.color import (
    AB_SCALE,
    DMG_LEVELS_L,
    L_SCALE,
    denormalize_ab,
    gray_to_l,
    l_ab_to_rgb,
    lab_to_rgb,
    normalize_ab,
    normalize_l,
    posterize_l,
    rgb_to_l,
    rgb_to_lab,
)


def gbc_colours() -> np.ndarray:
    """All 2^15 GBC colours (5 bits per channel) as the console's 8-bit expansion (c<<3 | c>>2)."""
    c = np.arange(32, dtype=np.uint16)
    c8 = ((c << 3) | (c >> 2)).astype(np.uint8)
    r, g, b = np.meshgrid(c8, c8, c8, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 3)


def test_round_trip_all_gbc_colours_is_lossless() -> None:
    rgb = gbc_colours()
    assert len(np.unique(rgb, axis=0)) == 2**15
    lab = rgb_to_lab(rgb)
    back = lab_to_rgb(lab)
    # Lab -> RGB -> Lab moves no colour by a visible amount (< 1 Lab unit; in fact the uint8
    # round trip is exact, which the training targets rely on).
    err = np.abs(rgb_to_lab(back).astype(np.float64) - lab).max()
    assert err < 1.0
    assert np.array_equal(back, rgb)


def test_round_trip_dense_rgb_grid() -> None:
    v = np.arange(0, 256, 5, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1).reshape(-1, 3)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("rgb", "lab"),
    [
        ((255, 255, 255), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((255, 0, 0), (53.24, 80.09, 67.20)),
        ((0, 255, 0), (87.73, -86.18, 83.18)),
        ((0, 0, 255), (32.30, 79.19, -107.86)),
        ((128, 128, 128), (53.59, 0.0, 0.0)),
    ],
)
def test_known_values(rgb: tuple[int, int, int], lab: tuple[float, float, float]) -> None:
    got = rgb_to_lab(np.array([rgb], np.uint8))[0]
    np.testing.assert_allclose(got, lab, atol=0.05)


def test_white_and_black_exact() -> None:
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]], np.uint8))
    assert abs(lab[0, 0] - 100.0) < 1e-3 and np.abs(lab[0, 1:]).max() < 1e-3
    assert abs(lab[1, 0]) < 1e-6 and np.abs(lab[1, 1:]).max() < 1e-6


def test_rgb_to_lab_rejects_non_uint8() -> None:
    with pytest.raises(TypeError):
        rgb_to_lab(np.zeros((2, 3), np.float32))


def test_rgb_to_l_and_gray_to_l_match_full_lab() -> None:
    rgb = gbc_colours()
    np.testing.assert_allclose(rgb_to_l(rgb), rgb_to_lab(rgb)[:, 0], atol=1e-4)
    g = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(gray_to_l(g), rgb_to_lab(np.repeat(g[:, None], 3, 1))[:, 0], atol=1e-4)
    assert np.all(np.diff(gray_to_l(g)) > 0)  # strictly increasing: no two greys share an L


def test_posterize_maps_dmg_greys_to_exactly_their_levels() -> None:
    shades = np.array([0, 85, 170, 255], np.uint8)
    L = gray_to_l(shades)
    assert np.array_equal(posterize_l(L), L)  # bit-exact: dmg and dmg4 inputs share one domain
    assert np.array_equal(DMG_LEVELS_L, L)
    np.testing.assert_allclose(DMG_LEVELS_L, [0.0, 36.15, 69.61, 100.0], atol=0.05)


def test_posterize_outputs_only_four_levels_and_is_monotonic() -> None:
    L = np.linspace(0, 100, 1001, dtype=np.float32)
    p = posterize_l(L)
    assert set(np.unique(p).tolist()) == set(DMG_LEVELS_L.tolist())
    assert np.all(np.diff(p) >= 0)
    # Thresholds sit between levels: each input goes to a level no more than one band away.
    assert np.abs(p - L).max() < 40


def test_normalisation_round_trip_and_ranges() -> None:
    L = np.array([0.0, 50.0, 100.0], np.float32)
    np.testing.assert_allclose(normalize_l(L), L / L_SCALE)
    assert normalize_l(L).min() == 0.0 and normalize_l(L).max() == 1.0
    ab = np.array([[-128.0, 127.0], [0.0, 12.5]], np.float32)
    np.testing.assert_allclose(denormalize_ab(normalize_ab(ab)), ab, atol=1e-5)
    assert np.abs(normalize_ab(ab)).max() <= 1.0
    assert AB_SCALE == 128.0


def test_l_ab_to_rgb_recombines_a_frame() -> None:
    rng = np.random.default_rng(0)
    img = gbc_colours()[rng.integers(0, 2**15, size=144 * 160)].reshape(144, 160, 3)
    lab = rgb_to_lab(img)
    assert np.array_equal(l_ab_to_rgb(lab[..., 0], lab[..., 1:]), img)


def test_normalisation_is_the_same_on_torch_tensors() -> None:
    """Training normalises torch tensors, evaluation and the engine numpy arrays: same bits."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    L = (rng.random((4, 1, 8, 8)) * 100).astype(np.float16)  # as TensorData stores them
    ab = (rng.random((4, 2, 8, 8)) * 255 - 128).astype(np.float16)
    for fn, x in ((normalize_l, L), (normalize_ab, ab), (denormalize_ab, ab.astype(np.float32) / 128)):
        t = fn(torch.from_numpy(x))
        assert t.dtype == torch.float32
        assert np.array_equal(t.numpy(), fn(x)), fn.__name__
