"""Print the mutation score of a `mutmut run` (``make mutation``) and list the survivors.

mutmut 3 writes ``mutants/<source>.meta`` (JSON) with the exit code of the unit tier against
each mutant, read through mutmut's own table (``mutmut.stats.status_by_exit_code``): killed,
timeout and segfault count as detected; survived and "no tests" count as not detected;
mutants not run yet (None), skipped or caught by the type check are left out.
Usage: ``python tests/mutation_report.py [mutants]``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

DETECTED = {"killed", "timeout", "segfault"}
MISSED = {"survived", "no tests", "suspicious"}


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
            status = status_by_exit_code[code]
            if status not in DETECTED | MISSED:
                continue
            per_module[module] += 1
            if status in DETECTED:
                killed_per_module[module] += 1
            else:
                survivors.append(f"{key} ({status})")
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
