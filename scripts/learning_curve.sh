#!/usr/bin/env bash
# A learning curve over training games (step 7): does the unseen-games net get better with more games?
#
#   scripts/learning_curve.sh SPLIT OUT "FRACTIONS" "SEEDS" [more retrocolor train flags]
#   e.g. PARALLEL=12 scripts/learning_curve.sh runs/unseen runs/curve "0.125 0.25 0.5 1" "0 1 2"
#
# For each fraction and seed: a seeded share of SPLIT/train's games (scripts/unseen.py subset; the
# seed draws the games too, so each point averages over which games), trained with the shipped
# `unseen` recipe (weights/unseen.json), validated on SPLIT/val's twins.  Runs go PARALLEL at a
# time (default 1: on a CPU one run already uses every core; on a GPU many small runs share it).
# RUN_TIMEOUT (seconds, default none) stops a run; its best checkpoint so far stays.  Then score
# every run's best.safetensors with `retrocolor export` and `scripts/unseen.py eval`.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 SPLIT OUT \"FRACTIONS\" \"SEEDS\" [train flags]" >&2; exit 2; }
split=$1 out=$2 fracs=$3 seeds=$4
shift 4
py=${PYTHON:-python3}
parallel=${PARALLEL:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
for f in $fracs; do
  for s in $seeds; do
    name="f$f-s$s"
    "$py" "$here/scripts/unseen.py" subset "$split/train" -o "$out/data/$name" --fraction "$f" --seed "$s"
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 2; done
    (
      cmd=("$py" "$here/retrocolor.py" train --arch tile_palette --data "$out/data/$name" --val "$split/val"
           --out "$out/$name" --epochs 16 --patience 3 --steps-per-epoch 800 --batch-size 16 --crop 96
           --lr 1e-3 --loss ce+l1 --twin-prob 1 --dmg-aug 1 --limit-per-game 100 --val-input twin
           --seed "$s" --cache-dir none "$@")
      if [ -n "${RUN_TIMEOUT:-}" ]; then cmd=(timeout "$RUN_TIMEOUT" "${cmd[@]}"); fi
      "${cmd[@]}" >"$out/$name.log" 2>&1 || echo "$name: exit $?" >>"$out/$name.log"
    ) &
  done
done
wait
echo "learning_curve: runs in $out"
