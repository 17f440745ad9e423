"""capture.screen on synthetic canvases: detection to within a pixel, native-grid resampling.

Canvases are built like uploads: GB-like frames placed at a sub-pixel position and a
(non-integer) scale with cv2.warpAffine, black bars, a static border and a static logo, then
JPEG-compressed (4:2:0 chroma + DCT artefacts).  No ../shared data needed.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import make_game_frames

from capture.screen import (
    KERNELS,
    NativeSampler,
    ScreenRect,
    detect_screen,
    fit_kernel,
    resample_to_native,
    upscale_matrix,
)
from utils.errors import UserError


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def place(native: np.ndarray, canvas_wh: tuple[int, int], x0: float, y0: float, s: float,
          interp: int = cv2.INTER_NEAREST) -> np.ndarray:
    """Draw ``native`` into a black canvas so that native pixel c covers [x0+c*s, x0+(c+1)*s)."""
    # cv2 puts pixel centres at integer coordinates: X_c = s*u_c + x0 + s/2 - 1/2.
    m = np.float32([[s, 0, x0 + s / 2 - 0.5], [0, s, y0 + s / 2 - 0.5]])
    return cv2.warpAffine(native, m, canvas_wh, flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def jpeg(img: np.ndarray, quality: int = 75) -> np.ndarray:
    """JPEG round trip: 4:2:0 chroma and block artefacts, like a video codec's intra frames."""
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)


def make_canvases(n: int, seed: int, canvas_wh: tuple[int, int], x0: float, y0: float, s: float,
                  interp: int = cv2.INTER_NEAREST, decorate: bool = True,
                  quality: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    natives = make_game_frames(n, seed)
    rng = np.random.default_rng(seed)
    out = []
    w, h = canvas_wh
    for f in natives:
        c = place(f, canvas_wh, x0, y0, s, interp)
        if decorate:
            # A static grey frame around the screen, and a static logo in the bottom-left border.
            bx0, by0 = int(np.floor(x0)) - 4, int(np.floor(y0)) - 4
            bx1, by1 = int(np.ceil(x0 + 160 * s)) + 3, int(np.ceil(y0 + 144 * s)) + 3
            cv2.rectangle(c, (bx0, by0), (bx1, by1), (90, 90, 110), 2)
            cv2.putText(c, "LP", (3, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (200, 200, 40), 2)
        out.append(jpeg(c, quality or int(rng.integers(70, 90))))
    return out, natives


CASES = [
    # canvas, x0, y0, scale, upscaler
    ((640, 360), 160.0, 36.0, 2.0, cv2.INTER_NEAREST),
    ((640, 360), 120.0, 0.0, 2.5, cv2.INTER_LINEAR),  # touches top and bottom edges
    ((480, 300), 37.3, 11.6, 1.7, cv2.INTER_LINEAR),
    ((700, 560), 70.4, 25.2, 3.3, cv2.INTER_NEAREST),
    ((560, 480), 23.0, 17.0, 3.0, cv2.INTER_LINEAR),
    ((854, 480), 140.55, 3.1, 2.9, cv2.INTER_CUBIC),
    ((760, 680), 15.2, 12.8, 4.5, cv2.INTER_NEAREST),
]


#: The kernel detect_screen must name for each cv2 upscaler (cv2's cubic is a = -0.75, ours -0.5:
#: still far closer than bilinear).
KERNEL_OF = {cv2.INTER_NEAREST: "nearest", cv2.INTER_LINEAR: "bilinear", cv2.INTER_CUBIC: "bicubic"}


@pytest.mark.parametrize("canvas,x0,y0,s,interp", CASES)
def test_detect_screen_within_a_pixel(canvas: tuple[int, int], x0: float, y0: float, s: float, interp: int) -> None:
    frames, _ = make_canvases(10, seed=int(s * 10), canvas_wh=canvas, x0=x0, y0=y0, s=s, interp=interp)
    r = detect_screen(frames)
    assert abs(r.x - x0) < 1 and abs(r.y - y0) < 1, r
    assert abs(r.w - 160 * s) < 1 and abs(r.h - 144 * s) < 1, r
    assert abs(r.scale - s) < 0.01
    assert r.kernel == KERNEL_OF[interp], r  # the upscaler is told apart by its fit residual


def test_detect_random_placements() -> None:
    rng = np.random.default_rng(7)
    for trial in range(4):
        s = float(rng.uniform(1.6, 4.0))
        cw, ch = int(160 * s + rng.integers(20, 200)), int(144 * s + rng.integers(0, 60))
        x0 = float(rng.uniform(0, cw - 160 * s))
        y0 = float(rng.uniform(0, ch - 144 * s))
        frames, _ = make_canvases(8, seed=trial, canvas_wh=(cw, ch), x0=x0, y0=y0, s=s,
                                  interp=int(rng.choice([cv2.INTER_NEAREST, cv2.INTER_LINEAR])))
        r = detect_screen(frames)
        err = max(abs(r.x - x0), abs(r.y - y0), abs(r.w - 160 * s), abs(r.h - 144 * s))
        assert err < 1, (trial, s, x0, y0, r)


def test_native_scale_screen_in_black_canvas() -> None:
    frames, _ = make_canvases(8, seed=3, canvas_wh=(320, 240), x0=40, y0=50, s=1.0, decorate=False)
    r = detect_screen(frames)
    assert (round(r.x), round(r.y), round(r.w), round(r.h)) == (40, 50, 160, 144)


def _smooth_noise_video(n: int, wh: tuple[int, int], seed: int) -> list[np.ndarray]:
    """A 'talking head': smooth, moving, full-frame content with no pixel grid."""
    rng = np.random.default_rng(seed)
    w, h = wh
    base = cv2.GaussianBlur(rng.integers(0, 256, (h // 4 + 40, w // 4 + 40, 3)).astype(np.uint8), (0, 0), 4)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    out = []
    for i in range(n):
        crop = base[i * 2:i * 2 + h // 4, i * 3:i * 3 + w // 4]
        out.append(jpeg(cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)))
    return out


def test_talking_head_is_refused() -> None:
    with pytest.raises(UserError, match="no game screen found"):
        detect_screen(_smooth_noise_video(10, (640, 360), 0))


def test_smooth_video_in_a_10_9_box_is_refused() -> None:
    # Same aspect and black borders as a real screen: only the missing pixel grid gives it away
    # (or, where JPEG's 8x8 blocks fake a weak grid, the fact that no 10:9 grid of it fits).
    inner = _smooth_noise_video(10, (400, 360), 1)
    frames = [cv2.copyMakeBorder(f, 0, 0, 120, 120, cv2.BORDER_CONSTANT, value=0) for f in inner]
    with pytest.raises(UserError, match="no game screen found"):
        detect_screen(frames)


def test_static_video_is_refused() -> None:
    frames, _ = make_canvases(1, seed=0, canvas_wh=(640, 360), x0=160, y0=36, s=2)
    with pytest.raises(UserError, match="nothing changes"):
        detect_screen(frames * 6)


@pytest.mark.parametrize("x0,y0,s", [(160.0, 36.0, 2.0), (120.0, 0.0, 2.5), (21.7, 9.4, 3.3), (5.0, 3.0, 4.0)])
def test_resample_recovers_native_frames(x0: float, y0: float, s: float) -> None:
    # Nearest upscale + sensor-like noise (the synthetic tiles are per-pixel random colours, which
    # 4:2:0 JPEG cannot carry at all; the real-video fidelity is tested in test_longplay_e2e).
    natives = make_game_frames(3, seed=11)
    rng = np.random.default_rng(0)
    wh = (int(160 * s + 2 * x0) + 1, int(144 * s + 2 * y0) + 1)
    rect = ScreenRect(x0, y0, 160 * s, 144 * s)
    sampler = NativeSampler(rect, (wh[1], wh[0]))
    for native in natives:
        canvas = place(native, wh, x0, y0, s).astype(np.float64) + rng.normal(0, 4, (wh[1], wh[0], 3))
        canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        out = sampler(canvas)
        assert out.shape == (144, 160, 3) and out.dtype == np.uint8
        good = psnr(out, native)
        assert good > 36, good
        # A grid shifted by half a native pixel, or one native pixel too wide, must be far worse.
        shifted = resample_to_native(canvas, ScreenRect(x0 + s / 2, y0, 160 * s, 144 * s))
        wider = resample_to_native(canvas, ScreenRect(x0, y0, 161 * s, 145 * s))
        assert psnr(shifted, native) < good - 10
        assert psnr(wider, native) < good - 10


def test_sampler_exact_on_clean_nearest_upscale() -> None:
    natives = make_game_frames(2, seed=5)
    for s in (2.0, 2.5, 3.0, 3.75):
        canvas = place(natives[0], (int(160 * s) + 10, int(144 * s) + 10), 5.0, 5.0, s)
        out = resample_to_native(canvas, ScreenRect(5.0, 5.0, 160 * s, 144 * s))
        assert np.array_equal(out, natives[0]), s


def test_sampler_grey_and_shape_checks() -> None:
    rect = ScreenRect(0, 0, 320, 288)
    sampler = NativeSampler(rect, (288, 320))
    grey = np.zeros((288, 320), np.uint8)
    grey[:, 160:] = 200
    out = sampler(grey)
    assert out.shape == (144, 160) and out[:, :80].max() == 0 and out[:, 80:].min() == 200
    with pytest.raises(ValueError):
        sampler(np.zeros((100, 100, 3), np.uint8))


def test_rect_edges_outside_the_frame_are_clamped() -> None:
    # A sub-pixel rect that sticks out of the canvas by a fraction must still sample cleanly.
    natives = make_game_frames(1, seed=2)
    canvas = place(natives[0], (400, 360), 0.0, 0.0, 2.5)
    out = resample_to_native(canvas, ScreenRect(-0.3, -0.2, 400.4, 360.3))
    assert psnr(out, natives[0]) > 30


# --------------------------------------------------------------------------- upscale kernels
@pytest.mark.parametrize("interp,kernel,s", [
    (cv2.INTER_NEAREST, "nearest", 2.0), (cv2.INTER_NEAREST, "nearest", 3.0),  # (2.5x nearest: ties)
    (cv2.INTER_LINEAR, "bilinear", 2.0), (cv2.INTER_LINEAR, "bilinear", 2.5), (cv2.INTER_LINEAR, "bilinear", 3.0)])
def test_upscale_matrix_matches_cv2(interp: int, kernel: str, s: float) -> None:
    # The model frame = A_y @ native @ A_x.T must be what cv2 draws (same pixel-centre convention).
    native = make_game_frames(1, seed=4)[0, :, :, 1].astype(np.float64)
    x0, y0 = 10.0, 6.0
    wh = (int(160 * s + 2 * x0), int(144 * s + 2 * y0))
    drawn = place(native.astype(np.uint8), wh, x0, y0, s, interp).astype(np.float64)
    ay = upscale_matrix(kernel, y0, 144 * s, 144, wh[1])
    ax = upscale_matrix(kernel, x0, 160 * s, 160, wh[0])
    model = ay @ native @ ax.T
    inside = np.ix_(ay.any(1), ax.any(1))
    # cv2's fixed-point interpolation rounds; the edges of a bilinear screen fade into the black
    # canvas in cv2 (we replicate the edge cell, as a scaler does before the frame is placed).
    core = (slice(int(y0 + 2 * s), int(y0 + 142 * s)), slice(int(x0 + 2 * s), int(x0 + 158 * s)))
    assert np.abs(model - drawn)[core].max() <= 1.0
    assert (model[~ay.any(1)] == 0).all() and (model[inside] >= 0).all()
    for k in KERNELS:  # every kernel conserves brightness inside the screen
        a = upscale_matrix(k, x0, 160 * s, 160, wh[0])
        assert np.allclose(a[a.any(1)].sum(1), 1.0)


@pytest.mark.parametrize("x0,y0,s", [(120.0, 0.0, 2.5), (13.4, 7.7, 3.0), (6.0, 5.0, 4.0)])
def test_bilinear_upscale_is_inverted(x0: float, y0: float, s: float) -> None:
    # A bilinear upscale blurs every cell into its neighbours: cell averages (the nearest
    # sampler) stay blurred, the inverted kernel gets the native pixels back to within the noise.
    natives = make_game_frames(3, seed=12)
    rng = np.random.default_rng(1)
    wh = (int(160 * s + 2 * x0) + 2, int(144 * s + 2 * y0) + 2)
    rect = ScreenRect(x0, y0, 160 * s, 144 * s, kernel="bilinear")
    frames = [np.clip(place(n, wh, x0, y0, s, cv2.INTER_LINEAR) + rng.normal(0, 2, (wh[1], wh[0], 3)), 0, 255)
              .astype(np.uint8) for n in natives]
    assert fit_kernel(frames, rect.with_kernel("nearest"))[0] == "bilinear"
    inverse = NativeSampler(rect, (wh[1], wh[0]))
    averages = NativeSampler(rect.with_kernel("nearest"), (wh[1], wh[0]))
    shifted = NativeSampler(ScreenRect(x0 + s / 2, y0, 160 * s, 144 * s, kernel="bilinear"), (wh[1], wh[0]))
    core = (slice(2, -2), slice(2, -2))  # warpAffine fades the edge cells into the black canvas
    for frame, native in zip(frames, natives, strict=True):
        good = psnr(inverse(frame)[core], native[core])
        assert good > 40, good  # noise-free: 50-65 dB
        assert psnr(averages(frame)[core], native[core]) < good - 15
        assert psnr(shifted(frame)[core], native[core]) < good - 20


def test_fit_kernel_nearest_and_refused_kernel() -> None:
    natives = make_game_frames(3, seed=13)
    frames = [place(n, (400, 340), 20.0, 10.0, 2.0) for n in natives]
    kernel, residual = fit_kernel(frames, ScreenRect(20, 10, 320, 288))
    assert kernel == "nearest" and residual["nearest"] < 0.5 < residual["bilinear"]
    # nearest and area agree exactly on whole-pixel cells: the simpler one wins the tie
    assert residual["area"] == pytest.approx(residual["nearest"], abs=1e-3)
    with pytest.raises(UserError, match="unknown upscale kernel"):
        ScreenRect(0, 0, 320, 288, kernel="lanczos")
    with pytest.raises(ValueError):
        NativeSampler(ScreenRect(0, 0, 320, 288), (288, 320), kernel="lanczos")
