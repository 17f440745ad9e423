"""Colour for games the model has never seen (step 7): the held-out split, the init weights, the figures.

    python scripts/unseen.py split runs/corpus -o runs/unseen          # 30 test + 10 val dual games, by seed
    python scripts/unseen.py init -o runs/unseen/init                  # the shipped monochrome net as a checkpoint
    retrocolor train ... (the command `split` prints)                  # train on the train games only
    python scripts/unseen.py eval runs/unseen --models default X.onnx  # per game, real monochrome input

Games, not frames, are held out: a game's frames are near copies of each other, so a model
selected or scored on a game it trained on says nothing about the next game.  The pool for the
held-out sets is the dual-mode games of a rendered corpus (``retrocolor dataset render``) with at
least ``--min-twins`` real monochrome twins; which ones go where is a seeded shuffle, written to
``split.json`` (and from there to the model card).  Everything else trains: the other dual-mode
games, every Color-only game of the corpus, and the 21 games of ``../shared/data/gbc``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402
from utils.fsio import atomic_write_json  # noqa: E402


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve(), target_is_directory=True)


def split(corpus: Path, out: Path, shared: Path | None, test: int, val: int, min_twins: int, seed: int,
          shared_repeat: int = 1) -> dict:
    """Write ``out/{train,val,test}/GAME`` (links to the game folders) and ``out/split.json``."""
    summary = json.loads((corpus / "summary.json").read_text(encoding="utf-8"))["games"]
    done = {g: r for g, r in summary.items() if r["status"] in ("done", "stalled", "budget", "timeout")
            and r["frames"] > 0}
    pool = sorted(g for g, r in done.items() if r["mode"] == "dual" and r["twins"] >= min_twins)
    if len(pool) < test + val:
        raise UserError(f"only {len(pool)} dual games with >= {min_twins} twins; need {test + val}")
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    sets = {"test": sorted(order[:test]), "val": sorted(order[test:test + val])}
    held = set(sets["test"]) | set(sets["val"])
    sets["train"] = sorted(g for g in done if g not in held)
    for name in ("train", "val", "test"):
        if (out / name).exists():
            for old in (out / name).iterdir():
                old.unlink()
        for g in sets[name]:
            _link(corpus / g, out / name / g)
    extra = []
    if shared is not None and shared.is_dir():
        for g in sorted(p for p in shared.iterdir() if p.is_dir()):
            _link(g, out / "train" / f"shared-{g.name}")
            extra.append(g.name)
            # Games with real twins are the ones whose monochrome figures the card keeps: repeat
            # them so that 21 games are not drowned by 300 (the loader samples games evenly).
            if (g / "dmg").is_dir():
                for k in range(1, shared_repeat):
                    _link(g, out / "train" / f"shared{k}-{g.name}")
    doc = {"corpus": str(corpus), "seed": seed, "min_twins": min_twins, "pool": len(pool),
           "shared": str(shared) if shared is not None else None, "shared_repeat": shared_repeat,
           "test": sets["test"], "val": sets["val"], "train_corpus": sets["train"], "train_shared": extra,
           "twins": {g: done[g]["twins"] for g in held}}
    atomic_write_json(out / "split.json", doc)
    return doc


def _base_game(name: str) -> str:
    """The game a training folder shows: ``shared3-foo`` (an oversampling link) is ``shared-foo``."""
    if name.startswith("shared") and "-" in name:
        return "shared-" + name.split("-", 1)[1]
    return name


def subset(train: Path, out: Path, fraction: float, seed: int) -> dict:
    """Link a seeded share of the training *games* of ``train`` into ``out`` (a learning curve).

    Games, not frames, are drawn, and a shared game's oversampling links go in or out together,
    so a curve over ``fraction`` measures what more games buy, at the same frames per game.
    """
    if not 0 < fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {fraction}")
    folders = sorted(p for p in train.iterdir() if p.is_dir())
    if not folders:
        raise UserError(f"no game folders in {train}")
    bases = sorted({_base_game(p.name) for p in folders})
    k = max(1, round(fraction * len(bases)))
    keep = {bases[i] for i in np.random.default_rng(seed).permutation(len(bases))[:k]}
    if out.exists():
        # only ever a folder of links this made: never delete a real folder or file the user named
        stray = [p.name for p in out.iterdir() if not p.is_symlink()]
        if stray:
            raise UserError(f"{out} holds more than a subset's links ({stray[0]}, ...): pick a new --out")
        for old in out.iterdir():
            old.unlink()
    for p in folders:
        if _base_game(p.name) in keep:
            _link(p, out / p.name)
    doc = {"train": str(train), "fraction": fraction, "seed": seed, "games": sorted(keep),
           "of": len(bases)}
    atomic_write_json(out.parent / f"{out.name}.json", doc)
    return doc


def credits(doc: dict, index: Path) -> dict:
    """Every game the split trains on or holds out, with developer and licence field (for the model card).

    The corpus games come from Homebrew Hub (the gbdev homebrew database) via ``../shared/roms``;
    ``index.tsv`` gives each one's title, developer and the licence field the database records.
    """
    from dataset.genres import read_index_rows

    rows = read_index_rows(index, ["title", "developer", "licence", "genre", "mode"])

    def entry(g: str) -> dict:
        return {"slug": g, **rows.get(g, {"title": g, "developer": "?", "licence": "?"})}
    return {"source": "Homebrew Hub (the gbdev homebrew database), via ../shared/roms/index.tsv",
            "train": [entry(g) for g in doc["train_corpus"]],
            "train_shared": doc["train_shared"],
            "held_out_test": [entry(g) for g in doc["test"]],
            "held_out_val": [entry(g) for g in doc["val"]]}


def init_checkpoint(out: Path, router: Path) -> Path:
    """The shipped default's monochrome net (``unet_small``) as a checkpoint, to fine-tune from."""
    import torch

    import models
    from models.checkpoint import save_model
    from models.router import component_weights

    net = models.create("unet_small")
    state = {k: torch.from_numpy(np.array(v)) for k, v in component_weights(router, "monochrome").items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{router}: monochrome branch does not fit unet_small (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    return save_model(out / "best", net, {"arch": "unet_small", "arch_kwargs": {},
                                          "source": f"monochrome branch of {router.name}"})


def init_from_onnx(out: Path, onnx_path: Path) -> Path:
    """A shipped single-net ONNX file (its card names the arch) back as a checkpoint, to fine-tune from.

    The initializers carry the torch names (``net.`` in front when ``export --chroma`` wrapped the
    net); the chroma factor is the export's, not a weight, so the checkpoint paints at full chroma.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    import models
    from models.checkpoint import save_model

    card = json.loads(onnx_path.with_suffix(".json").read_text(encoding="utf-8"))
    net = models.create(card["arch"], **card.get("arch_kwargs", {}))
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(onnx_path)).graph.initializer}
    # a Linear is exported as MatMul + Add on anonymous initializers: its weight transposed, and
    # (tile_palette's head) divided by the decode temperature, which forward() folds into it
    fold = float(getattr(net, "temperature", 1.0))
    anon = {n: v for n, v in inits.items() if n.startswith("onnx::")}
    state = {}
    for k, ref in net.state_dict().items():
        v = inits.get(k, inits.get("net." + k))
        if v is None:
            shape = tuple(ref.shape)
            cands = [n for n, a in anon.items() if a.shape == shape or (a.ndim == 2 and a.T.shape == shape)]
            if len(cands) != 1:
                raise UserError(f"{onnx_path}: no weight {k!r} for arch {card['arch']}")
            a = anon.pop(cands[0])
            v = (a if a.shape == shape else a.T) * fold
        state[k] = torch.from_numpy(np.array(v))
    net.load_state_dict(state)
    net.eval()
    import onnxruntime as ort

    x = np.random.default_rng(0).choice(np.asarray([0.0, 0.35, 0.7, 1.0], np.float32), size=(1, 1, 144, 160))
    got = net(torch.from_numpy(x.astype(np.float32))).detach().numpy()
    want = ort.InferenceSession(str(onnx_path)).run(None, {"L": x.astype(np.float32)})[0]
    chroma = float((card.get("decode") or {}).get("chroma") or 1.0)
    if not np.allclose(got * chroma, want, atol=1e-4):
        raise UserError(f"{onnx_path}: the rebuilt net does not reproduce the ONNX output")
    return save_model(out / "best", net, {"arch": card["arch"], "arch_kwargs": card.get("arch_kwargs", {}),
                                          "source": f"{onnx_path.name} (chroma factor dropped)"})


def evaluate_models(split_dir: Path, models_: list[str], which: str, out: Path, limit: int | None,
                    schemes: Path | None = None) -> dict:
    """Each model on the ``which`` games' real monochrome twins; the by-game report of each."""
    from models.evaluate import evaluate, format_by_game

    games = sorted((split_dir / which).iterdir())
    train = sorted((split_dir / "train").iterdir())
    reports = {}
    for m in models_:
        rep = evaluate(m, games, input_mode="dmg", baseline_train=train[:40], limit_per_game=limit,
                       show_progress=False, schemes=schemes)
        reports[m] = rep
        print(f"== {m} on {len(games)} {which} games (real monochrome input)")
        print(format_by_game(rep))
    atomic_write_json(out, {m: {"by_game": r["by_game"], "overall": r["overall"], "baselines": r["baselines"],
                                "per_game": r["per_game"]} for m, r in reports.items()})
    return reports


def _held_out_entry(rep: dict) -> dict:
    """One input mode's figures for a model card (the per-frame "look" details left out)."""
    return {"overall": rep["overall"], "baselines": rep["baselines"],
            "per_game": {g: {k: v for k, v in m.items() if k != "look"} for g, m in rep["per_game"].items()}}


def _unseen_section(doc: dict, shipped: dict) -> dict:
    """A model card's figures on the held-out games (``shipped``: its ``eval`` report)."""
    return {
        "what": "real monochrome twins of dual-mode games held out by game (scripts/unseen.py split, seed "
                f"{doc['seed']}); baselines: grey, the boot ROM's default palette, the best boot palette per game "
                "with hindsight",
        "games": doc["test"], "by_game": shipped["by_game"],
        "per_game": {g: {"mse_ab": m["mse_ab"], "ratio_to_gray": m["ratio_to_gray"], "look": m["look"],
                         "n_frames": m["n_frames"],
                         "boot_best": {k: m["baselines"]["boot_best"][k] for k in ("mse_ab", "palette")},
                         "boot_default_mse_ab": m["baselines"]["boot_default"]["mse_ab"],
                         "gray_mse_ab": m["baselines"]["gray"]["mse_ab"]}
                     for g, m in shipped["per_game"].items()},
    }


def ship(split_dir: Path, monochrome: Path, recipe: str, unseen_json: Path, weights_dir: Path,
         shared_split: Path, index: Path) -> dict:
    """Put ``monochrome`` into the shipped router (fp32 and int8 twin) and re-measure its card.

    The router's colour branches and gate stay as they are, so the card's colour-input figures
    stand; its monochrome figures (the seen games' real twins and 4-shade input) are measured
    again on the card's own split, and the held-out games' figures come from ``unseen_json``.
    """
    from models.evaluate import evaluate
    from models.router import replace_monochrome
    from utils.fsio import atomic_write_bytes

    doc = json.loads((split_dir / "split.json").read_text(encoding="utf-8"))
    meta = {"monochrome_trained_on": "retrocolor dataset render corpus + ../shared/data/gbc (scripts/unseen.py)"}
    for name in ("default.onnx", "default.int8.onnx"):
        path = weights_dir / name
        if path.is_file():
            atomic_write_bytes(path, replace_monochrome(path, monochrome, meta).SerializeToString())
    card_path = weights_dir / "default.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    test, train = sorted((shared_split / "test").iterdir()), sorted((shared_split / "train").iterdir())
    for mode in ("dmg", "dmg4"):
        rep = evaluate(weights_dir / "default.onnx", test, input_mode=mode, baseline_train=train, show_progress=False)
        card["held_out"]["fp32"][mode] = _held_out_entry(rep)
        print(f"seen games, {mode}: mse_ab {rep['overall']['mse_ab']:.4f} acc10 {rep['overall']['acc10']:.3f} "
              f"(gray {rep['baselines']['gray']['mse_ab']:.4f})")
    unseen = json.loads(unseen_json.read_text(encoding="utf-8"))
    shipped = unseen.get(str(monochrome)) or next(iter(unseen.values()))
    card["unseen_games"] = _unseen_section(doc, shipped)
    card["router"]["monochrome_recipe"] = recipe
    card["router"]["monochrome"] = ("4-shade monochrome frames (a DMG game, or a DMG palette the engine recognised): "
                                    "unet_small fine-tuned on the rendered corpus' real twins")
    card["monochrome_training_games"] = credits(doc, index)
    atomic_write_json(card_path, card)
    return card


def ship_unseen(split_dir: Path, onnx: Path, recipe: str, unseen_json: Path, weights_dir: Path,
                shared_split: Path, index: Path, bench_json: Path | None) -> dict:
    """Ship ``onnx`` as its own model, ``weights/unseen.onnx``: the one for monochrome games never seen.

    The default router keeps its monochrome branch (the corpus-trained net forgets the 11 games
    the default knows best, see the README), so the corpus model ships beside it.  Its card: what
    it is for, the training recipe, every training game with developer and licence field (credit
    to Homebrew Hub), the held-out games' per-game figures from ``unseen_json`` (real monochrome
    input), and the card-split figures of the 21 shared games (L, 4-shade and real twins), which
    the weights tests re-measure.
    """
    from models.evaluate import evaluate
    from utils.fsio import atomic_write_bytes

    doc = json.loads((split_dir / "split.json").read_text(encoding="utf-8"))
    src_card = json.loads(onnx.with_suffix(".json").read_text(encoding="utf-8"))
    out = weights_dir / "unseen.onnx"
    atomic_write_bytes(out, onnx.read_bytes())
    test, train = sorted((shared_split / "test").iterdir()), sorted((shared_split / "train").iterdir())
    held: dict = {"what": "test blocks of the card split of ../shared/data/gbc (retrocolor dataset split, 20 blocks, "
                          "gap 2, seed 0); its train blocks were among the training data. Baselines: gray, and a "
                          "lookup table fitted on the train blocks", "fp32": {}}
    for mode in ("L", "dmg4", "dmg"):
        rep = evaluate(out, test, input_mode=mode, baseline_train=train, show_progress=False)
        held["fp32"][mode] = _held_out_entry(rep)
        print(f"card split, {mode}: mse_ab {rep['overall']['mse_ab']:.4f} acc10 {rep['overall']['acc10']:.3f} "
              f"(gray {rep['baselines']['gray']['mse_ab']:.4f})")
    unseen = json.loads(unseen_json.read_text(encoding="utf-8"))
    shipped = unseen.get(str(onnx)) or next(iter(unseen.values()))
    keep = ("name", "arch", "arch_kwargs", "normalisation", "onnx", "parity_max_abs", "fp32_ms")
    card = {k: src_card[k] for k in keep if k in src_card}
    card["name"] = "unseen"
    import models
    from models.flops import count_macs

    arch = str(card["arch"])
    meta = src_card.get("checkpoint_meta", {})
    crisp = ("one colour per (8x8 tile, shade) by construction, like Color hardware" if arch == "tile_palette"
             else "one colour per (8x8 tile, shade) like Color hardware (tile snap)" if meta.get("tile_snap")
             else "colours per pixel")
    card["description"] = (f"for monochrome games it has never seen: {arch} trained on the real monochrome twins "
                           f"of {len(doc['train_corpus'])} homebrew games rendered from ROMs plus the 21 games of "
                           f"../shared; {crisp}")
    net = models.create(arch, **card.get("arch_kwargs", {}))
    card["params"] = sum(p.numel() for p in net.parameters())
    card["macs_160x144"] = count_macs(net)
    card["decode"] = {"temperature": meta.get("temperature") or "as trained", "tile_snap": meta.get("tile_snap"),
                      "chroma": meta.get("chroma")}
    card["training"] = {"recipe": recipe, "data": "retrocolor dataset render corpus (../shared/roms dual + cgb) "
                        "and the train blocks of ../shared/data/gbc; games of split.json's test and val sets held out",
                        "epochs": meta.get("epochs"), "best_epoch": meta.get("best_epoch"),
                        "val_metrics": meta.get("val_metrics")}
    card["training_games"] = credits(doc, index)
    card["held_out"] = held
    card["unseen_games"] = _unseen_section(doc, shipped)
    card["latency"] = json.loads(bench_json.read_text(encoding="utf-8")) if bench_json else {}
    card["default"] = False
    old_params = json.loads((weights_dir / "unseen.json").read_text(encoding="utf-8")).get("params", 0) \
        if (weights_dir / "unseen.json").is_file() else 0
    atomic_write_json(weights_dir / "unseen.json", card)
    _swap_into_default(weights_dir, out, int(old_params), int(card["params"]))
    return card


def _swap_into_default(weights_dir: Path, unseen: Path, old_params: int, new_params: int) -> None:
    """The default router sends unknown 4-shade games to ``unseen``: put the new net there too."""
    import onnx

    from models.router import has_gate, replace_unknown
    from utils.fsio import atomic_write_bytes

    card_path = weights_dir / "default.json"
    swapped = False
    for name in ("default.onnx", "default.int8.onnx"):
        path = weights_dir / name
        if path.is_file() and has_gate(onnx.load(str(path))):
            atomic_write_bytes(path, replace_unknown(path, unseen).SerializeToString())
            print(f"wrote {path}: its net for unknown monochrome games is now {unseen.name}")
            swapped = True
    if swapped and card_path.is_file():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if "params" in card:
            card["params"] = int(card["params"]) - old_params + new_params
        atomic_write_json(card_path, card)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="hold out dual-mode games by seed")
    sp.add_argument("corpus", type=Path)
    sp.add_argument("-o", "--out", type=Path, required=True)
    sp.add_argument("--shared", type=Path, default=ROOT / "runs" / "compare" / "split" / "train",
                    help="more training games: the *train* split of ../shared/data/gbc (retrocolor dataset split "
                         "../shared/data/gbc -o runs/compare/split), so the model cards' test frames stay unseen")
    sp.add_argument("--shared-repeat", type=int, default=1,
                    help="link each --shared game that has monochrome twins this many times (oversampling)")
    sp.add_argument("--test", type=int, default=30)
    sp.add_argument("--val", type=int, default=10)
    sp.add_argument("--min-twins", type=int, default=30)
    sp.add_argument("--seed", type=int, default=0)
    sp = sub.add_parser("subset", help="a seeded share of the training games (a learning curve over games)")
    sp.add_argument("train", type=Path, help="the split's train folder (runs/unseen/train)")
    sp.add_argument("-o", "--out", type=Path, required=True)
    sp.add_argument("--fraction", type=float, required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp = sub.add_parser("init", help="the shipped monochrome net as a checkpoint")
    sp.add_argument("-o", "--out", type=Path, required=True)
    sp.add_argument("--router", type=Path, default=ROOT / "weights" / "default.onnx")
    sp.add_argument("--onnx", type=Path, default=None,
                    help="instead: a single-net ONNX with its .json card (e.g. weights/unseen.onnx)")
    sp = sub.add_parser("eval", help="models on the held-out games, real monochrome input")
    sp.add_argument("split", type=Path)
    sp.add_argument("--models", nargs="+", required=True)
    sp.add_argument("--games", choices=["test", "val"], default="test")
    sp.add_argument("--limit-per-game", type=int, default=None)
    sp.add_argument("--json", type=Path, required=True)
    sp.add_argument("--schemes", type=Path, default=ROOT / "weights" / "schemes.json",
                    help="colour schemes scored beside the boot ROM's palettes (best per game, with hindsight)")
    sp = sub.add_parser("ship", help="the monochrome net into weights/default*.onnx, card re-measured")
    sp.add_argument("split", type=Path)
    sp.add_argument("--monochrome", type=Path, required=True, help="the exported monochrome net (.onnx)")
    sp.add_argument("--unseen-json", type=Path, required=True, help="`eval` output that holds this model")
    sp.add_argument("--recipe", required=True, help="the commands that trained and exported it, for the card")
    sp.add_argument("--shared-split", type=Path, default=ROOT / "runs" / "compare" / "split",
                    help="the card's split of ../shared/data/gbc (retrocolor dataset split ../shared/data/gbc -o ...)")
    sp.add_argument("--weights", type=Path, default=ROOT / "weights")
    sp.add_argument("--index", type=Path, default=ROOT.parent / "shared" / "roms" / "index.tsv")
    sp = sub.add_parser("ship-unseen", help="ship the corpus model as weights/unseen.onnx with its card")
    sp.add_argument("split", type=Path)
    sp.add_argument("--onnx", type=Path, required=True, help="the exported model (.onnx, with its .json card)")
    sp.add_argument("--unseen-json", type=Path, required=True, help="`eval --games test` output that holds it")
    sp.add_argument("--recipe", required=True, help="the commands that trained and exported it, for the card")
    sp.add_argument("--bench-json", type=Path, default=None, help="`retrocolor bench --json` of it")
    sp.add_argument("--shared-split", type=Path, default=ROOT / "runs" / "compare" / "split")
    sp.add_argument("--weights", type=Path, default=ROOT / "weights")
    sp.add_argument("--index", type=Path, default=ROOT.parent / "shared" / "roms" / "index.tsv")
    a = ap.parse_args()
    try:
        if a.cmd == "split":
            doc = split(a.corpus, a.out, a.shared, a.test, a.val, a.min_twins, a.seed, a.shared_repeat)
            print(f"pool: {doc['pool']} dual games with >= {a.min_twins} twins; test {len(doc['test'])}, "
                  f"val {len(doc['val'])}; train: {len(doc['train_corpus'])} corpus games + "
                  f"{len(doc['train_shared'])} of ../shared -> {a.out}")
            print("test:", " ".join(doc["test"]))
            print("val: ", " ".join(doc["val"]))
        elif a.cmd == "subset":
            doc = subset(a.train, a.out, a.fraction, a.seed)
            print(f"subset: {len(doc['games'])} of {doc['of']} training games -> {a.out}")
        elif a.cmd == "init":
            print(init_from_onnx(a.out, a.onnx) if a.onnx else init_checkpoint(a.out, a.router))
        elif a.cmd == "eval":
            evaluate_models(a.split, a.models, a.games, a.json, a.limit_per_game,
                            a.schemes if a.schemes.is_file() else None)
        elif a.cmd == "ship-unseen":
            ship_unseen(a.split, a.onnx, a.recipe, a.unseen_json, a.weights, a.shared_split, a.index, a.bench_json)
        else:
            ship(a.split, a.monochrome, a.recipe, a.unseen_json, a.weights, a.shared_split, a.index)
    except UserError as e:
        print(f"unseen: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
