"""How well ``live`` tells a game it has seen from its screens (``realtime.picks.LiveRecall``).

    python scripts/recall_check.py runs/recall/s0 --later runs/recall/s1 --json runs/recall_check.json
    python scripts/recall_check.py runs/corpus --json runs/recall_check_halves.json

With ``--later``, every game rendered twice (two ``retrocolor dataset render --mono --seed S``
runs: two sessions from power-on that play differently) is a past session (``CORPUS``: its
fingerprint kept, as ``live`` keeps one when a session ends on a scheme) and a later one, fed
frame by frame as ``live`` feeds new frames.  Without it, each game's monochrome frames are cut
in two by play order: the first half is the past session, the second half the later one.  A seeded half of the
games are remembered; the rest never were.  It reports how many remembered games the later
session recognises (and after how many frames), how many it takes for another game, and how many
games never seen match one.  The later half starts deeper in the game than a new session would
(which opens on the title the first session showed too), so that is the harder case.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402


def _shades(path: Path) -> np.ndarray:
    from utils.images import read_gray

    return np.abs(read_gray(path)[..., None].astype(np.int16) - np.array([0, 85, 170, 255])).argmin(-1)


def check(corpus: Path, frames: int, seed: int, later_dir: Path | None = None) -> dict[str, Any]:
    from realtime.picks import LiveRecall, fingerprint
    from utils.images import list_images
    from utils.progress import progress

    folders = sorted(g for g in corpus.iterdir() if (g / "dmg").is_dir() and len(list_images(g / "dmg")) >= 4)
    if later_dir is not None:
        folders = [g for g in folders if (later_dir / g.name / "dmg").is_dir()
                   and list_images(later_dir / g.name / "dmg")]
    if not folders:
        raise UserError(f"no game with monochrome twins under {corpus}")
    first, later = {}, {}
    for g in progress(folders, desc="fingerprints", unit="game"):
        files = list_images(g / "dmg")
        if later_dir is not None:
            first[g.name] = fingerprint([_shades(f) for f in files])
            later[g.name] = list_images(later_dir / g.name / "dmg")[:frames]
        else:
            half = len(files) // 2
            first[g.name] = fingerprint([_shades(f) for f in files[:half]])
            later[g.name] = files[half:half + frames]
    names = sorted(first)
    rng = np.random.default_rng(seed)
    kept = set(rng.choice(names, len(names) // 2, replace=False).tolist())
    games = {n: (1, first[n]) for n in kept}
    rows = {}
    for n in progress(names, desc="later sessions", unit="game"):
        rec = LiveRecall(games)
        after = None
        for i, f in enumerate(later[n]):
            rec.add(_shades(f))
            if rec.matched is not None:
                after = i + 1
                break
        rows[n] = {"remembered": n in kept, "matched": rec.matched[0] if rec.matched else None, "after": after}
    mine = [r for n, r in rows.items() if r["remembered"]]
    others = [r for n, r in rows.items() if not r["remembered"]]
    right = [r for n, r in rows.items() if r["remembered"] and r["matched"] == n]
    return {
        "sessions": "two renders" if later_dir is not None else "halves of one render",
        "games": len(names), "remembered": len(mine), "frames_per_session": frames, "seed": seed,
        "recognised": len(right),
        "taken_for_another": sum(r["matched"] not in (None, n) for n, r in rows.items() if r["remembered"]),
        "not_recognised": sum(r["matched"] is None for r in mine),
        "never_seen_matched": sum(r["matched"] is not None for r in others), "never_seen": len(others),
        "frames_to_recognise_median": float(np.median([r["after"] for r in right])) if right else None,
        "per_game": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="rendered games (retrocolor dataset render): GAME/dmg/*.png twins")
    ap.add_argument("--later", type=Path, default=None,
                    help="the same games rendered with another --seed: the later sessions (default: halves)")
    ap.add_argument("--frames", type=int, default=30, help="frames of the later session fed (default 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args()
    try:
        doc = check(a.corpus, a.frames, a.seed, a.later)
    except UserError as e:
        print(f"recall_check: error: {e}", file=sys.stderr)
        return 2
    atomic_write_json(a.json, doc)
    print(f"{doc['games']} games, {doc['remembered']} remembered; later session of up to {doc['frames_per_session']} "
          f"frames: recognised {doc['recognised']} (median {doc['frames_to_recognise_median']} frames), "
          f"taken for another game {doc['taken_for_another']}, not recognised {doc['not_recognised']}; "
          f"games never seen that matched one: {doc['never_seen_matched']} of {doc['never_seen']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
