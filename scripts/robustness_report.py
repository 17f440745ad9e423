"""Run the robustness group and print (or write) its figures, e.g. for the README's Reliability section.

    python scripts/robustness_report.py                  # prints the summary lines
    python scripts/robustness_report.py --json out.json  # also writes the tally as JSON
    python scripts/robustness_report.py --markdown       # a table to paste into the README

Why a script: the figures come from a pytest hook (tests/conftest.py -> tests/robustness.py) at
the end of the run; this runs exactly the group (``-m robustness``) with the tally written to a
file, so the numbers quoted in the README are the ones a reader can reproduce with one command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/test_robustness_faults.py", "tests/test_robustness_inputs.py", "tests/test_robustness_fuzz.py"]


def markdown(tally: dict[str, dict]) -> str:
    """The tally as two small Markdown tables (faults; bad inputs)."""
    out = ["| fault area | injected | survived | data lost |", "|---|---:|---:|---:|"]
    out += [f"| {k} | {v['faults']} | {v['survived']} | {v['lost']} |" for k, v in tally.items() if v["faults"]]
    out += ["", "| bad-input area | tried | clear errors | handled correctly | crashes |", "|---|---:|---:|---:|---:|"]
    out += [f"| {k} | {v['tried']} | {v['clear']} | {v['accepted']} | {v['crashes']} |"
            for k, v in tally.items() if v["tried"]]
    executed = sum(v["executed"] for v in tally.values())
    out += ["", f"Code executed from hostile files: {executed}."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="write the tally here as JSON")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables instead of summary lines")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        tally_path = Path(td) / "tally.json"
        env = dict(os.environ, RETROCOLOR_ROBUSTNESS_JSON=str(tally_path))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "robustness", *FILES, *a.pytest_args],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        if not tally_path.exists():
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            print("robustness_report: no figures were produced (see the pytest output above)", file=sys.stderr)
            return proc.returncode or 1
        tally = json.loads(tally_path.read_text())
    if a.json:
        a.json.write_text(json.dumps(tally, indent=2) + "\n", encoding="utf-8")
    if a.markdown:
        print(markdown(tally))
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        import robustness  # the same line format as the pytest summary

        for k, v in tally.items():
            robustness.TALLY[k] = robustness.Area(**v)
        print("\n".join(robustness.summary_lines()))
    print(f"pytest: {' '.join(tail)} (exit {proc.returncode})")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
