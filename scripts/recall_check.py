"""How well ``live`` tells a game it has seen from its screens (``realtime.picks.LiveRecall``).

    python scripts/recall_check.py ../shared/roms/dmg --json runs/recall_check.json --jobs 2

Every ROM is played twice from power-on in PyBoy, as ``live`` sees a game: 60 frames a second,
each new monochrome frame handed to a :class:`LiveRecall` at its emulated time.  A player's
inputs are random (Start and A in the first seconds, then any button, held half a second), with a
different seed each session.  The first session's windows become a fingerprint, as ``live`` keeps
one when a session ends on a scheme; a seeded half of the games are remembered.  The second
session of every game runs until it matches a remembered game or its time is up.  It reports how
many remembered games are recognised, and after how many seconds, how many are taken for another
game, and how many games never remembered match one (with the pairs, to look at).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.display import GB_FPS  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402

BUTTONS = ("a", "b", "start", "select", "up", "down", "left", "right")


def play_session(rom: str, seconds: float, seed: int,
                 games: dict[str, tuple[int, np.ndarray, bool]] | None) -> dict[str, Any]:
    """One session of ``rom``: its fingerprint (``games`` None) or what it matched and when."""
    import warnings

    from realtime.picks import LiveRecall

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyboy import PyBoy

    rec = LiveRecall(games or {})
    rng = np.random.default_rng(seed)
    try:
        pyboy = PyBoy(rom, window="null", sound_emulated=False, cgb=False, log_level="ERROR")
    except Exception as e:  # noqa: BLE001 - a ROM PyBoy cannot run is reported, not fatal
        return {"error": str(e)}
    held: tuple[str, ...] = ()
    prev = None
    new_frames = 0
    try:
        for f in range(int(seconds * GB_FPS)):
            if f % 30 == 0:  # a player: Start and A to get going, then anything, held half a second
                for b in held:
                    pyboy.button_release(b)
                if f < 10 * GB_FPS:
                    held = (("start",) if rng.random() < 0.5 else ("a",)) if rng.random() < 0.5 else ()
                else:
                    held = (str(rng.choice(BUTTONS)),) if rng.random() < 0.8 else ()
                for b in held:
                    pyboy.button_press(b)
            pyboy.tick(1, True)
            grey = pyboy.screen.ndarray[:, :, 0]
            if prev is not None and np.array_equal(grey, prev):
                continue
            prev = grey.copy()
            new_frames += 1
            levels = np.unique(grey)
            if len(levels) > 4:
                continue
            # PyBoy draws the 4 DMG shades as 4 greys, darkest first
            shades = np.searchsorted(np.array([0x00, 0x55, 0x99, 0xFF]) + 0x22, grey)
            rec.add(shades, f / GB_FPS)
            if games is not None and rec.matched is not None:
                return {"matched": rec.matched[0], "after_s": round(f / GB_FPS, 2), "new_frames": new_frames}
    finally:
        pyboy.stop(save=False)
    if games is None:
        return {"windows": rec.fingerprint(), "new_frames": new_frames}
    return {"matched": None, "after_s": None, "new_frames": new_frames}


def check(roms: list[Path], first_s: float, later_s: float, seed: int, jobs: int) -> dict[str, Any]:
    from realtime.picks import MAX_WINDOWS
    from utils.progress import progress

    names = [r.stem for r in roms]
    with ProcessPoolExecutor(jobs) as pool:
        firsts = list(progress(pool.map(play_session, [str(r) for r in roms], [first_s] * len(roms),
                                        [seed] * len(roms), [None] * len(roms)),
                               total=len(roms), desc="first sessions", unit="game"))
        prints = {n: r["windows"] for n, r in zip(names, firsts, strict=True) if len(r.get("windows", ()))}
        rng = np.random.default_rng(seed)
        pool_names = sorted(prints)
        kept = set(rng.choice(pool_names, len(pool_names) // 2, replace=False).tolist())
        games = {n: (1, prints[n], len(prints[n]) >= MAX_WINDOWS) for n in kept}
        laters = list(progress(pool.map(play_session, [str(r) for r in roms], [later_s] * len(roms),
                                        [seed + 1] * len(roms), [games] * len(roms)),
                               total=len(roms), desc="later sessions", unit="game"))
    rows = {n: {"remembered": n in kept, **r} for n, r in zip(names, laters, strict=True) if n in prints}
    mine = {n: r for n, r in rows.items() if r["remembered"]}
    others = {n: r for n, r in rows.items() if not r["remembered"]}
    right = [r for n, r in mine.items() if r.get("matched") == n]
    return {
        "sessions": f"PyBoy at 60 fps from power-on: {first_s:g} s, then {later_s:g} s with another input seed",
        "games": len(rows), "remembered": len(mine), "seed": seed,
        "recognised": len(right),
        "seconds_to_recognise_median": float(np.median([r["after_s"] for r in right])) if right else None,
        "taken_for_another": sorted((n, r["matched"]) for n, r in mine.items() if r.get("matched") not in (None, n)),
        "not_recognised": sorted(n for n, r in mine.items() if r.get("matched") is None),
        "never_remembered_matched": sorted((n, r["matched"]) for n, r in others.items() if r.get("matched")),
        "never_remembered": len(others),
        "no_fingerprint": sorted(n for n in names if n not in prints),
        "per_game": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roms", type=Path, help="a folder of monochrome ROMs (.gb), e.g. ../shared/roms/dmg")
    ap.add_argument("--first", type=float, default=40.0, help="seconds of the first session (default 40)")
    ap.add_argument("--later", type=float, default=30.0, help="seconds of the later session at most (default 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N ROMs (sorted)")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args()
    try:
        roms = sorted(a.roms.glob("*.gb"))[:a.limit]
        if not roms:
            raise UserError(f"no .gb ROMs in {a.roms}")
        doc = check(roms, a.first, a.later, a.seed, a.jobs)
    except UserError as e:
        print(f"recall_check: error: {e}", file=sys.stderr)
        return 2
    atomic_write_json(a.json, doc)
    print(f"{doc['games']} games ({doc['sessions']}), {doc['remembered']} remembered: recognised "
          f"{doc['recognised']} (median {doc['seconds_to_recognise_median']} s), taken for another game "
          f"{len(doc['taken_for_another'])}, not recognised {len(doc['not_recognised'])}; never remembered "
          f"but matched one: {len(doc['never_remembered_matched'])} of {doc['never_remembered']} "
          f"{doc['never_remembered_matched']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
