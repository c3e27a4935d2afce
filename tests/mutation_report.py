"""Print the mutation score of a `mutmut run` (``make mutation``) and list the survivors.

mutmut 3 writes ``mutants/<source>.meta`` (JSON) with the exit code of the unit tier against
each mutant: 0 = the tests passed (the mutant survived), 1 = a test failed (killed); other
codes (timeouts, segfaults) count as killed; a missing code means the mutant was not run.
Usage: ``python tests/mutation_report.py [mutants]``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def main(folder: str = "mutants") -> int:
    files = sorted(Path(folder).rglob("*.py.meta"))
    if not files:
        print(f"no mutmut results under {folder}/: run `make mutation` first", file=sys.stderr)
        return 1
    per_module: Counter[str] = Counter()
    killed_per_module: Counter[str] = Counter()
    survivors = []
    for f in files:
        codes = json.loads(f.read_text()).get("exit_code_by_key", {})
        module = str(f.relative_to(folder)).removesuffix(".meta")
        for key, code in codes.items():
            if code is None:
                continue
            per_module[module] += 1
            if code == 0:
                survivors.append(key)
            else:
                killed_per_module[module] += 1
    total, killed = sum(per_module.values()), sum(killed_per_module.values())
    for module in sorted(per_module):
        n, k = per_module[module], killed_per_module[module]
        print(f"{module:45s} {k:5d} / {n:5d} killed  {100 * k / n:5.1f}%")
    print(f"\nmutation score: {killed} of {total} mutants killed = {100 * killed / max(total, 1):.1f}%")
    print(f"{len(survivors)} survivors (`.venv/bin/mutmut show NAME` shows one):")
    for key in survivors:
        print(f"  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
