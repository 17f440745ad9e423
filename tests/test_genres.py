"""Genre groups: index tags, clusters learned from frames, placing a new frame, train --genre."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import retrocolor
from dataset.genres import DIM, assign, cluster_games, descriptor, from_index, games_of, kmeans, load_genres
from models.checkpoint import load_model
from models.train import TrainConfig, train
from utils.errors import UserError
from utils.images import write_png

GREYS = np.array([0, 85, 170, 255], np.uint8)  # shade 0 (black) .. 3 (white)


def _sky_frame(rng: np.random.Generator) -> np.ndarray:
    """White sky above, dark ground below: a platformer's look."""
    s = np.full((144, 160), 3, np.uint8)
    s[96 + rng.integers(0, 8):] = 0
    return s


def _busy_frame(rng: np.random.Generator) -> np.ndarray:
    """Every tile drawn in all four shades: a puzzle board's look."""
    return rng.integers(0, 4, size=(144, 160)).astype(np.uint8)


def _write(root: Path, name: str, maker, n: int = 12, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        grey = GREYS[maker(rng)]
        write_png(root / name / f"f{i:04d}.png", np.repeat(grey[..., None], 3, axis=-1))
        write_png(root / name / "dmg" / f"f{i:04d}.png", grey)


@pytest.fixture
def four_games(tmp_path: Path) -> Path:
    root = tmp_path / "games"
    _write(root, "sky-a", _sky_frame, seed=1)
    _write(root, "sky-b", _sky_frame, seed=2)
    _write(root, "busy-a", _busy_frame, seed=3)
    _write(root, "busy-b", _busy_frame, seed=4)
    return root


def test_descriptor_measures_where_shades_sit_and_tile_texture() -> None:
    flat = np.full((144, 160), 3, np.uint8)
    d = descriptor(flat)[0]
    assert d.shape == (DIM,)
    assert np.allclose(d[:36].reshape(9, 4), [0, 0, 0, 1])  # every cell all white
    assert d[36] == 1.0 and d[37] == 0.0  # every tile one shade, none with 3+
    sky = _sky_frame(np.random.default_rng(0))
    d = descriptor(sky)[0].reshape(-1)[:36].reshape(3, 3, 4)
    assert np.allclose(d[0, :, 3], 1) and np.all(d[2, :, 0] > 0.8)  # white on top, black at the bottom
    with pytest.raises(UserError):
        descriptor(np.zeros((16, 16), np.uint8))


def test_kmeans_finds_two_blobs() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(5, 0.1, (20, 3))])
    cent, lab = kmeans(x, 2, seed=0)
    assert len(set(lab[:20])) == 1 and len(set(lab[20:])) == 1 and lab[0] != lab[20]
    assert np.allclose(sorted(cent[:, 0]), [0, 5], atol=0.2)
    with pytest.raises(UserError):
        kmeans(x, 41)


def test_clusters_group_look_alike_games_and_place_a_new_frame(four_games: Path) -> None:
    doc = cluster_games([four_games], 2, show_progress=False)
    groups = sorted(sorted(g) for g in doc["groups"].values())
    assert groups == [["busy-a", "busy-b"], ["sky-a", "sky-b"]]
    names = list(doc["groups"])
    rng = np.random.default_rng(9)
    sky_cluster = names[assign(np.stack([_sky_frame(rng) for _ in range(3)]), doc)]
    busy_cluster = names[assign(_busy_frame(rng), doc)]
    assert "sky-a" in doc["groups"][sky_cluster] and "busy-a" in doc["groups"][busy_cluster]
    # the document survives JSON (what `dataset genres` writes) and still places frames
    again = json.loads(json.dumps(doc))
    assert names[assign(_sky_frame(rng), again)] == sky_cluster


def test_index_tags_and_the_cli(four_games: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "index.tsv"
    index.write_text("slug\tmode\tgenre\nsky-a\tdual\tPlatform,Adventure\nsky-b\tdual\tPlatform\n"
                     "busy-a\tdual\tPuzzle\nother\tdmg\tRPG\n", encoding="utf-8")
    doc = from_index([four_games], index)
    assert doc["groups"] == {"Adventure": ["sky-a"], "Platform": ["sky-a", "sky-b"], "Puzzle": ["busy-a"]}
    assert doc["untagged"] == ["busy-b"]
    out = tmp_path / "g.json"
    assert retrocolor.main(["dataset", "genres", str(four_games), "-o", str(out), "--index", str(index)]) == 0
    assert "Platform: 2 games" in capsys.readouterr().out
    assert games_of(load_genres(out), "Puzzle") == ["busy-a"]
    with pytest.raises(UserError, match="no genre 'Racing'"):
        games_of(load_genres(out), "Racing")
    # neither or both of --index / --clusters: one line, exit 2
    assert retrocolor.main(["dataset", "genres", str(four_games), "-o", str(out)]) == 2
    assert "either --index" in capsys.readouterr().err
    with pytest.raises(UserError, match="index not found"):
        from_index([four_games], tmp_path / "nope.tsv")
    bad = tmp_path / "bad.json"
    bad.write_text("[1]", encoding="utf-8")
    with pytest.raises(UserError, match="not a genres file"):
        load_genres(bad)


def test_train_genre_trains_on_that_group_only(four_games: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gfile = tmp_path / "g.json"
    assert retrocolor.main(["dataset", "genres", str(four_games), "-o", str(gfile), "--clusters", "2"]) == 0
    doc = load_genres(gfile)
    name = next(k for k, v in doc["groups"].items() if "sky-a" in v)
    run = tmp_path / "run"
    train(TrainConfig(arch="v0", data=[four_games], out=run, epochs=1, steps_per_epoch=1, batch_size=2, crop=32,
                      cache_dir=None, show_progress=False, sample_frames=1, genre=name, genres=gfile))
    _, meta = load_model(run / "best")
    assert sorted(meta["games"]) == ["sky-a", "sky-b"]
    assert meta["config"]["genre"] == name
    capsys.readouterr()
    rc = retrocolor.main(["train", "--arch", "v0", "--data", str(four_games), "--out", str(tmp_path / "x"),
                          "--genre", "nope", "--genres", str(gfile), "--cache-dir", "none"])
    assert rc == 2 and "no genre 'nope'" in capsys.readouterr().err
    rc = retrocolor.main(["train", "--arch", "v0", "--data", str(four_games), "--out", str(tmp_path / "y"),
                          "--genre", name, "--cache-dir", "none"])
    assert rc == 2 and "go together" in capsys.readouterr().err


def test_a_shipped_net_comes_back_as_a_checkpoint_to_fine_tune(tmp_path: Path) -> None:
    """scripts/unseen.py init --onnx: weights/unseen.onnx rebuilt in torch paints what the ONNX paints / chroma."""
    import sys

    import onnxruntime as ort
    import torch

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "scripts"))
    from unseen import init_from_onnx

    onnx_path = root / "weights" / "unseen.onnx"
    ckpt = init_from_onnx(tmp_path / "init", onnx_path)
    net, meta = load_model(ckpt)
    chroma = json.loads(onnx_path.with_suffix(".json").read_text())["decode"]["chroma"]
    x = np.random.default_rng(1).choice(np.asarray([0.0, 0.35, 0.7, 1.0], np.float32), size=(1, 1, 144, 160))
    x = x.astype(np.float32)
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(x)).numpy()
    want = ort.InferenceSession(str(onnx_path)).run(None, {"L": x})[0]
    assert meta["arch"] == "tile_palette" and chroma < 1
    assert np.abs(got * chroma - want).max() < 1e-4
    assert np.abs(got).max() > np.abs(want).max()  # the checkpoint paints at full chroma
