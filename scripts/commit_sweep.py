"""Issue #13's "commit only where sure" design, measured: decode variants of one checkpoint.

The bin-classifying nets decode an annealed mean of their ab distribution.  Where the distribution
is wide the mean is a safe, greyish answer; where one bin dominates, a bold (low-temperature)
decode commits to its colour.  ``UNet.commit = (lo, hi, t_bold)`` mixes the two by the net's own
top-bin probability.  This exports each variant (with the tile snap) so that
``scripts/unseen.py eval`` can score them on the val games:

    python scripts/commit_sweep.py runs/unseen/mono/best.safetensors -o runs/commit \\
        --variant plain:0.38 --variant mean:1.0 --variant c1:1.0,0.3,0.7,0.1 --variant c2:0.38,0.5,0.9,0.1
    python scripts/unseen.py eval runs/unseen --games val --limit-per-game 40 --models runs/commit/*.onnx

A variant is ``NAME:T`` (plain decode at temperature T) or ``NAME:T,LO,HI,T_BOLD``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import UserError  # noqa: E402


def export_variant(checkpoint: Path, out: Path, temperature: float,
                   commit: tuple[float, float, float] | None) -> Path:
    import torch

    from models.archs import TileSnap
    from models.checkpoint import load_model
    from models.export import _metadata, _set_metadata, _torch_export

    model, meta = load_model(checkpoint)
    if not hasattr(model, "temperature"):
        raise UserError(f"{checkpoint}: arch {meta.get('arch')} does not decode bins")
    model.temperature = float(temperature)
    model.commit = commit
    wrapped = TileSnap(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        _torch_export(wrapped, out, dynamic_hw=True)
    info = {**meta, "tile_snap": True, "temperature": temperature, "commit": list(commit) if commit else None}
    _set_metadata(out, _metadata(info, {}), f"{meta.get('arch')} decode T={temperature} commit={commit}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME:T or NAME:T,LO,HI,T_BOLD")
    a = ap.parse_args()
    try:
        for v in a.variant:
            name, _, spec = v.partition(":")
            nums = [float(x) for x in spec.split(",")]
            if len(nums) not in (1, 4) or not name:
                raise UserError(f"bad variant {v!r}: NAME:T or NAME:T,LO,HI,T_BOLD")
            commit = (nums[1], nums[2], nums[3]) if len(nums) == 4 else None
            path = export_variant(a.checkpoint, a.out / f"{name}.onnx", nums[0], commit)
            print(f"wrote {path}")
    except UserError as e:
        print(f"commit_sweep: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
