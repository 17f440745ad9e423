"""Colour schemes: learned from games' palettes, picked greedily, painted by the engine, scored by evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import retrocolor
from dataset.color import DMG_LEVELS_L, lab_to_rgb, rgb_to_lab
from dataset.schemes import MIN_RGB_SPREAD, build, game_palette, load, pick, ratio_to_grey, rgb_spread, scheme_ab
from realtime.viewer import Viewer
from tests.helpers import dmg_index, tiny_lightness_onnx
from utils.errors import UserError
from utils.images import read_rgb, write_png

GREYS = np.array([0, 85, 170, 255], np.uint8)  # shade 0 (black) .. 3 (white)
# Each game's colours per shade, black first.  The "Color version" of a fixture game paints the
# monochrome twin's shades with these, so its palette is known exactly.
RED = np.array([[20, 0, 0], [150, 30, 30], [230, 120, 100], [255, 240, 230]], np.uint8)
BLUE = np.array([[0, 0, 30], [30, 40, 160], [110, 150, 240], [235, 240, 255]], np.uint8)
GREEN = np.array([[0, 20, 0], [40, 120, 30], [140, 220, 100], [240, 255, 230]], np.uint8)
GREY = np.stack([GREYS] * 3, axis=1)


def _write_game(root: Path, name: str, palette: np.ndarray, n: int = 6, seed: int = 0) -> None:
    for i in range(n):
        shade = 3 - dmg_index(seed + i)              # dmg_index is 0 = lightest; here 0 = black
        write_png(root / name / f"f{i:04d}.png", palette[shade])
        write_png(root / name / "dmg" / f"f{i:04d}.png", GREYS[shade])


def _ab(palette: np.ndarray) -> np.ndarray:
    return rgb_to_lab(palette)[:, 1:]


@pytest.fixture
def games(tmp_path: Path) -> Path:
    root = tmp_path / "games"
    for j in range(3):
        _write_game(root, f"red-{j}", RED, seed=j)
    for j in range(2):
        _write_game(root, f"blue-{j}", BLUE, seed=10 + j)
    _write_game(root, "grey-0", GREY, seed=20)
    return root


def test_game_palette_is_the_mean_colour_per_shade() -> None:
    frames = [RED[3 - dmg_index(s)] for s in range(3)]
    twins = [GREYS[3 - dmg_index(s)] for s in range(3)]
    g = game_palette(frames, twins)
    assert np.allclose(g["ab"], _ab(RED), atol=1e-3)
    assert np.isclose(g["share"].sum(), 1.0) and np.all(g["share"] > 0)
    assert np.allclose(g["var"], 0.0, atol=1e-3)  # one colour per shade: no spread
    # without twins the 4-shade look of the colour frame gives the same shades here
    assert np.allclose(game_palette(frames, [None] * 3)["ab"], _ab(RED), atol=1e-3)


def test_ratio_to_grey_prices_a_palette_without_the_frames() -> None:
    frames = [RED[3 - dmg_index(s)] for s in range(2)]
    twins = [GREYS[3 - dmg_index(s)] for s in range(2)]
    g = game_palette(frames, twins)
    r = ratio_to_grey(g, np.stack([_ab(RED), np.zeros((4, 2)), _ab(BLUE)]))
    assert r[0] == pytest.approx(0.0, abs=1e-6) and r[1] == pytest.approx(1.0) and r[2] > 1.0
    # the same figure as painting the frames: mse of the palette over grey's
    shade = np.concatenate([t.ravel() for t in twins]) // 85
    truth = np.concatenate([rgb_to_lab(f)[..., 1:].reshape(-1, 2) for f in frames])
    want = ((_ab(BLUE)[shade] - truth) ** 2).mean() / (truth ** 2).mean()
    assert r[2] == pytest.approx(want, rel=1e-4)
    grey = game_palette([GREY[3 - dmg_index(0)]], [None])
    assert np.isinf(ratio_to_grey(grey, np.stack([_ab(RED)]))).all()  # nothing beats grey on a grey game


def test_pick_covers_the_most_games_first_and_never_picks_grey() -> None:
    def pal(p: np.ndarray) -> dict[str, np.ndarray]:
        return {"ab": _ab(p).astype(np.float64), "share": np.full(4, 0.25), "var": np.zeros(4)}

    games = [pal(RED)] * 3 + [pal(BLUE)] * 2 + [pal(GREY)]
    chosen, best = pick(games, 2)
    assert chosen == [0, 3]                     # red (3 games) before blue (2); grey is no candidate
    assert np.allclose(best, 0.0, atol=1e-6)   # every colourful game has its own palette now
    assert len(best) == 5                       # the grey game has no ratio and is left out
    chosen, _ = pick(games, 10)
    assert chosen == [0, 3]                     # a third red or blue would bring no game closer: it stops
    assert rgb_spread(_ab(GREY)) < MIN_RGB_SPREAD <= min(rgb_spread(_ab(RED)), rgb_spread(_ab(BLUE)))
    with pytest.raises(UserError, match="grey"):
        pick([pal(GREY)] * 2, 3)


def test_build_the_cli_and_load(games: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = build([games], k=3, show_progress=False)
    assert doc["training_games"] == 6
    ab = scheme_ab(doc)
    assert ab.shape == (2, 4, 2)                # red and blue: grey gives no scheme
    assert np.allclose(ab[0], _ab(RED), atol=0.01) and np.allclose(ab[1], _ab(BLUE), atol=0.01)
    assert [s["games"] for s in doc["schemes"]] == [3, 2]
    assert doc["schemes"][0]["preview"][0].startswith("#")

    out = tmp_path / "schemes.json"
    index = tmp_path / "index.tsv"
    index.write_text("slug\ttitle\tdeveloper\tlicence\nred-0\tRed Zero\t"
                     '{"name": "Someone", "link": "x"}, {"name": "Else"}\tMIT\n')
    assert retrocolor.main(["dataset", "schemes", str(games), "-o", str(out), "-k", "2", "--index", str(index)]) == 0
    printed = capsys.readouterr().out
    assert "scheme  1:" in printed and "2 schemes from 6 games" in printed
    assert np.allclose(scheme_ab(load(out)), ab, atol=1e-3)
    first, second = load(out)["schemes"]
    assert first["game"] == "red-0"             # the first of three equal candidates; credited from the index
    assert (first["title"], first["developer"], first["licence"]) == ("Red Zero", "Someone, Else", "MIT")
    assert "title" not in second                # a game the index does not list gets no credit fields
    assert retrocolor.main(["dataset", "schemes", str(games), "-o", str(out), "-k", "0"]) == 2
    assert "-k must be at least 1" in capsys.readouterr().err

    bad = tmp_path / "bad.json"
    for text, why in (("{", "not a schemes file"), ("{}", "no 'schemes' list"),
                      (json.dumps({"schemes": [{"ab": [[1, 2]]}]}), "scheme 1 has no valid 'ab'")):
        bad.write_text(text)
        with pytest.raises(UserError, match=why):
            load(bad)
    with pytest.raises(UserError, match="not found"):
        load(tmp_path / "missing.json")


@pytest.fixture
def schemes_file(tmp_path: Path) -> Path:
    path = tmp_path / "schemes.json"
    path.write_text(json.dumps({"schemes": [{"id": 1, "ab": _ab(RED).tolist(), "game": "red", "preview": []},
                                            {"id": 2, "ab": _ab(BLUE).tolist(), "game": "blue", "preview": []}]}))
    return path


def _expected(shade: np.ndarray, palette_ab: np.ndarray) -> np.ndarray:
    """What the engine shows: the input's own L (the DMG level) with the scheme's a/b of its shade."""
    lab = np.concatenate([np.asarray(DMG_LEVELS_L)[shade][..., None], palette_ab[shade]], axis=-1)
    return lab_to_rgb(lab)


def test_engine_paints_monochrome_frames_with_the_scheme(tmp_path: Path, schemes_file: Path) -> None:
    from realtime.engine import Colorizer

    model = tiny_lightness_onnx(tmp_path / "m.onnx")
    shade = 3 - dmg_index(0)
    grey = GREYS[shade]
    col = Colorizer(model, schemes=schemes_file)
    by_model = col.colorize(grey)
    col.scheme = 2
    assert col.scheme_count == 2 and col.scheme_info()["game"] == "blue"
    got = col.colorize(np.repeat(np.repeat(grey, 3, 0), 3, 1))  # an emulator window at 3x
    assert np.abs(got[::3, ::3].astype(int) - _expected(shade, _ab(BLUE))).max() <= 1
    assert not np.array_equal(got[::3, ::3], by_model)
    # a green-tinted emulator palette is still the same 4 shades
    greenish = np.array([[15, 56, 15], [48, 98, 48], [139, 172, 15], [155, 188, 15]], np.uint8)[shade]
    assert np.abs(col.colorize(greenish).astype(int) - _expected(shade, _ab(BLUE))).max() <= 1
    # frames that are not monochrome go to the model whatever the scheme
    rgb = np.random.default_rng(0).integers(0, 256, (144, 160, 3), dtype=np.uint8)
    col.scheme = None
    want = col.colorize(rgb)
    col.scheme = 1
    assert np.array_equal(col.colorize(rgb), want)
    col.scheme = None
    assert np.array_equal(col.colorize(grey), by_model)
    for bad in (-1, 3, "1", True):
        with pytest.raises(UserError, match="scheme must"):
            col.scheme = bad
    col.scheme = 1
    col.scheme = 0                                       # 0 is the model, as --scheme 0
    assert col.scheme is None and np.array_equal(col.colorize(grey), by_model)
    with pytest.raises(UserError, match="schemes file not found"):
        Colorizer(model, scheme=1, schemes=tmp_path / "none.json")


def test_the_shipped_schemes_load_and_paint() -> None:
    from realtime.engine import Colorizer

    col = Colorizer("default", scheme=1)
    assert col.scheme_count >= 8
    ab = scheme_ab(col.schemes)
    assert min(rgb_spread(p) for p in ab) >= MIN_RGB_SPREAD  # every scheme looks coloured
    shade = 3 - dmg_index(1)
    assert np.abs(col.colorize(GREYS[shade]).astype(int) - _expected(shade, ab[0])).max() <= 1


def test_load_numbers_schemes_by_position_and_completes_them(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schemes": [{"ab": _ab(RED).tolist()}, {"ab": _ab(BLUE).tolist(), "id": 2}]}))
    doc = load(path)
    assert [s["id"] for s in doc["schemes"]] == [1, 2] and doc["schemes"][0]["game"] == "scheme 1"
    assert len(doc["schemes"][1]["preview"]) == 4 and doc["schemes"][1]["preview"][0].startswith("#")
    path.write_text(json.dumps({"schemes": [{"ab": _ab(RED).tolist(), "id": 3}]}))
    with pytest.raises(UserError, match="numbered by position"):
        load(path)


def test_a_missing_or_broken_schemes_file_leaves_the_player_running(tmp_path: Path, schemes_file: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from realtime.engine import Colorizer
    from realtime.viewer import scheme_count, scheme_label

    model = tiny_lightness_onnx(tmp_path / "m.onnx")
    for path in (tmp_path / "none.json", tmp_path / "broken.json"):
        if path.name == "broken.json":
            path.write_text("{")
        col = Colorizer(model, schemes=path)          # the model still paints
        assert scheme_count(col, "live") == 0          # so C does nothing ...
        assert "live: colour schemes unavailable" in capsys.readouterr().err   # ... and says why
        assert scheme_label(col) == "the model"
        col.colorize(GREYS[3 - dmg_index(0)])
    # a hand-written file with colours only still gives every message its parts
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"schemes": [{"ab": _ab(RED).tolist()}]}))
    col = Colorizer(model, schemes=bare, scheme=1)
    assert scheme_label(col).startswith("scheme 1 of 1 (#") and "the palette of scheme 1" in scheme_label(col)
    col = Colorizer(model, schemes=schemes_file)
    assert "the palette of blue" in scheme_label(col, 2) and scheme_label(col, 0) == "the model"


def test_viewer_cycles_the_model_then_each_scheme() -> None:
    v = Viewer("live", ["default"], scheme_count=3)
    seen = []
    for _ in range(5):
        assert v.handle(["scheme"]) == {"scheme"}
        seen.append(v.scheme)
    assert seen == [1, 2, 3, 0, 1]
    assert "colours scheme 1/3" in v.overlay_lines(59.7, None, None)[0]
    assert Viewer("live", ["default"]).handle(["scheme"]) == set()  # 0 schemes (none loaded): C does nothing


def test_a_still_frame_gets_the_new_scheme(tmp_path: Path, schemes_file: Path) -> None:
    from realtime.engine import Colorizer
    from realtime.live import SameFrame

    col = Colorizer(tiny_lightness_onnx(tmp_path / "m.onnx"), schemes=schemes_file)
    same = SameFrame()
    frame = np.repeat(GREYS[3 - dmg_index(2)][..., None], 3, axis=-1)
    a = same.colorize(col, frame)
    assert same.colorize(col, frame) is a and same.reused == 1
    col.scheme = 1
    b = same.colorize(col, frame)
    assert same.reused == 1 and not np.array_equal(a, b)
    col.scheme = None                                   # back to the model: its colours again, not the scheme's
    assert np.array_equal(same.colorize(col, frame), a) and same.reused == 1


def test_evaluate_scores_the_best_scheme_per_game(games: Path, tmp_path: Path, schemes_file: Path) -> None:
    from models.evaluate import evaluate, format_by_game

    model = tiny_lightness_onnx(tmp_path / "m.onnx")
    rep = evaluate(model, [games], input_mode="dmg", show_progress=False, schemes=schemes_file)
    for name, g in rep["per_game"].items():
        best = g["baselines"]["scheme_best"]
        if name.startswith("red"):
            assert best["scheme"] == 1 and best["mse_ab"] < 1e-6   # its own palette: exact
        elif name.startswith("blue"):
            assert best["scheme"] == 2 and best["mse_ab"] < 1e-6
    assert rep["by_game"]["scheme_best_median_ratio_to_gray"] < 1e-3
    assert "colour schemes (mse/gray, median)" in format_by_game(rep)
    # no schemes: no such baseline; colour input: schemes make no sense, said in one line
    rep = evaluate(model, [games], input_mode="dmg", show_progress=False)
    assert all("scheme_best" not in g["baselines"] for g in rep["per_game"].values())
    with pytest.raises(UserError, match="--input dmg or dmg4"):
        evaluate(model, [games], input_mode="L", show_progress=False, schemes=schemes_file)


def test_colorize_with_a_scheme_and_its_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shade = 3 - dmg_index(3)
    src = tmp_path / "mono.png"
    write_png(src, np.repeat(GREYS[shade][..., None], 3, axis=-1))
    out = tmp_path / "out.png"
    assert retrocolor.main(["colorize", str(src), "-o", str(out), "--scheme", "2"]) == 0
    assert "scheme 2)" in capsys.readouterr().out
    colour = tmp_path / "colour.png"
    write_png(colour, np.random.default_rng(1).integers(0, 256, (144, 160, 3), dtype=np.uint8))
    assert retrocolor.main(["colorize", str(colour), "-o", str(tmp_path / "c.png"), "--scheme", "2"]) == 0
    assert "scheme 2 unused: the screen is not monochrome" in capsys.readouterr().out
    ab = scheme_ab(load(Path(retrocolor.__file__).parent / "weights" / "schemes.json"))[1]
    assert np.abs(read_rgb(out).astype(int) - _expected(shade, ab)).max() <= 1
    assert retrocolor.main(["colorize", str(src), "-o", str(tmp_path / "x.png"), "--scheme", "999"]) == 2
    err = capsys.readouterr().err
    assert "scheme must be 1.." in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
    assert retrocolor.main(["colorize", str(src), "-o", str(tmp_path / "x.png"), "--scheme", "-1"]) == 2
    assert "scheme must be 1.." in capsys.readouterr().err      # one message for every number out of range
    assert not (tmp_path / "x.png").exists()
    # 0 is the model, as in live and play
    assert retrocolor.main(["colorize", str(src), "-o", str(tmp_path / "m.png"), "--scheme", "0"]) == 0
    assert np.abs(read_rgb(tmp_path / "m.png").astype(int) - _expected(shade, ab)).max() > 1


def test_play_with_a_scheme_paints_the_game_with_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from realtime.demo import write_demo_rom

    rom = write_demo_rom(tmp_path / "demo.gb")
    png, stats = tmp_path / "last.png", tmp_path / "stats.json"
    model = tiny_lightness_onnx(tmp_path / "m.onnx")
    assert retrocolor.main(["play", str(rom), "--model", str(model), "--headless", "--frames", "40", "--scale", "1",
                            "--scheme", "3", "--stats-json", str(stats)]) == 0
    assert "colour scheme 3" in capsys.readouterr().out
    assert json.loads(stats.read_text())["scheme"] == 3
    from realtime.play import PlayOptions, play

    play(rom, PlayOptions(model=str(model), headless=True, frames=20, scale=1, last_png=png, scheme=3, skip_frames=200))
    sbs = read_rgb(png)
    grey, colour = sbs[:, :160], sbs[:, 162:]
    shade = np.abs(grey[:, :, 0].astype(int)[..., None] - np.array([0, 85, 170, 255])).argmin(-1)
    assert len(np.unique(shade)) >= 3  # a real scene
    ab = scheme_ab(load(Path(retrocolor.__file__).parent / "weights" / "schemes.json"))[2]
    assert np.abs(colour.astype(int) - _expected(shade, ab)).max() <= 1


def test_play_remembers_the_scheme_a_cartridge_ended_on(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime.demo import write_demo_rom
    from realtime.display import Display

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")                 # a real pygame window, no X needed
    picks = tmp_path / "cfg" / "picks.json"
    monkeypatch.setenv("RETROCOLOR_PICKS", str(picks))
    rom = write_demo_rom(tmp_path / "demo.gb")
    model = str(tiny_lightness_onnx(tmp_path / "m.onnx"))
    stats = tmp_path / "stats.json"
    presses: list[int] = []    # C presses to make on these polls of the window (1-based)
    real_poll = Display.poll

    def poll(self: Display):  # a key press as pygame delivers it
        poll.n = getattr(poll, "n", 0) + 1
        if poll.n in presses:
            self._pg.event.post(self._pg.event.Event(self._pg.KEYDOWN, key=self._pg.K_c, mod=0, unicode="c"))
        return real_poll(self)

    monkeypatch.setattr(Display, "poll", poll)

    def run(*extra: str, game: Path = rom, c: tuple[int, ...] = ()) -> dict:
        poll.n = 0
        presses[:] = c
        assert retrocolor.main(["play", str(game), "--model", model, "--frames", "6", "--scale", "1",
                                "--stats-json", str(stats), *extra]) == 0
        return json.loads(stats.read_text())

    doc = load(Path(retrocolor.__file__).parent / "weights" / "schemes.json")
    assert run()["scheme"] is None and not picks.exists()        # nothing picked, nothing written
    assert run(c=(2, 3))["scheme"] == 2                           # C twice in the window: scheme 2
    assert "colour scheme 2 remembered" in capsys.readouterr().out
    (entry,) = json.loads(picks.read_text())["games"].values()
    assert entry["scheme"] == 2 and entry["game"] == doc["schemes"][1]["game"]
    # the same cartridge under another name starts with it, and says so
    renamed = tmp_path / "other-name.gb"
    renamed.write_bytes(rom.read_bytes())
    assert run(game=renamed)["scheme"] == 2
    assert "remembered for this cartridge" in capsys.readouterr().err
    # --no-remember, --headless: neither read nor written
    assert run("--no-remember")["scheme"] is None
    assert run("--no-remember", "--scheme", "5")["scheme"] == 5
    assert run("--headless", "--scheme", "6")["scheme"] == 6
    assert run("--headless")["scheme"] is None
    assert [e["scheme"] for e in json.loads(picks.read_text())["games"].values()] == [2]
    # --scheme 0 starts with the model; ending on it forgets the pick
    assert run("--scheme", "0")["scheme"] is None
    assert "so the scheme remembered for this game is forgotten" in capsys.readouterr().out
    assert json.loads(picks.read_text())["games"] == {} and run()["scheme"] is None
    # a pick names its scheme by the game's palette: a schemes file without it paints with the model
    assert run("--scheme", "4")["scheme"] == 4
    d = json.loads(picks.read_text())
    for e in d["games"].values():
        e["game"] = "a-game-no-scheme-comes-from"
    picks.write_text(json.dumps(d))
    assert run()["scheme"] is None
    assert "is not among the 16 schemes now" in capsys.readouterr().err
    # a damaged file: one line, the model; the next pick moves it aside, nothing lost
    picks.write_text('{"version": 1, "games": {"sha1:x": {"scheme": 1},}}')
    assert run()["scheme"] is None
    err = capsys.readouterr().err
    assert err.count("remembered schemes damaged") == 1 and "Traceback" not in err
    assert picks.read_text().endswith(",}}")                      # nothing picked: left as it was
    assert run("--scheme", "3")["scheme"] == 3
    (bad,) = (tmp_path / "cfg").glob("picks.json.bad-*")
    assert bad.read_text().endswith(",}}")
    assert run()["scheme"] == 3
    # a file that cannot be read or written: one line each, the game still plays
    picks.unlink()
    picks.mkdir()
    assert run("--scheme", "3")["scheme"] == 3
    err = capsys.readouterr().err
    assert "unreadable" in err and "could not remember" in err and "Traceback" not in err


def test_colorize_scheme_all_writes_a_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shade = 3 - dmg_index(4)
    src = tmp_path / "shot.png"
    write_png(src, np.repeat(np.repeat(np.repeat(GREYS[shade][..., None], 3, axis=-1), 3, 0), 3, 1))  # 3x window
    out = tmp_path / "sheet.png"
    assert retrocolor.main(["colorize", str(src), "-o", str(out), "--scheme", "all"]) == 0
    assert "pick one with --scheme N" in capsys.readouterr().out
    doc = load(Path(retrocolor.__file__).parent / "weights" / "schemes.json")
    sheet = read_rgb(out)
    cells = 2 + len(doc["schemes"])                     # input, model, every scheme; 6 to a row
    cw, ch = 2 * 160, 2 * 144 + 14                       # 2x the screen under a caption bar
    assert sheet.shape == (-(-cells // 6) * ch, 6 * cw, 3)
    # the cell of scheme k (row-major after input and model) is the screen painted with scheme k
    for k in (1, len(doc["schemes"])):
        i = k + 1
        cell = sheet[(i // 6) * ch + 14:(i // 6 + 1) * ch, (i % 6) * cw:(i % 6 + 1) * cw][::2, ::2]
        assert np.abs(cell.astype(int) - _expected(shade, scheme_ab(doc)[k - 1])).max() <= 1
    # one-line errors: not monochrome, a folder, a bad value; nothing written
    rgb = tmp_path / "colour.png"
    write_png(rgb, np.random.default_rng(0).integers(0, 256, (144, 160, 3), dtype=np.uint8))
    for args, why in (([str(rgb)], "not a monochrome"), ([str(tmp_path)], "give an image, not a folder")):
        assert retrocolor.main(["colorize", *args, "-o", str(tmp_path / "bad.png"), "--scheme", "all"]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(SystemExit):
        retrocolor.main(["colorize", str(src), "-o", str(out), "--scheme", "some"])
    assert retrocolor.main(["colorize", str(src), "-o", str(out), "--scheme", "all", "--side-by-side"]) == 2
    assert "does not go with --scheme all" in capsys.readouterr().err


def test_live_says_a_bad_scheme_before_looking_for_a_window(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    assert retrocolor.main(["live", "--scheme", "99"]) == 2
    err = capsys.readouterr().err
    assert "scheme must be 1.." in err and "DISPLAY" not in err  # the scheme, not the missing display
