"""Print the mutation score of a `mutmut run` (``make mutation``) and list the survivors.

mutmut 3 writes ``mutants/<source>.meta`` (JSON) with the exit code of the unit tier against
each mutant, read through mutmut's own table (``mutmut.stats.status_by_exit_code``): killed,
timeout and segfault count as detected; survived and "no tests" count as not detected;
mutants not run yet (None), skipped or caught by the type check are left out.

The score is killed / all counted mutants: equivalent mutants are *not* removed from the
denominator. Survivors named in ``tests/mutation_equivalents.md`` (one line each, under a
``## babel/<module>.py`` heading) are shown as equivalent; any other survivor is printed as
unexplained, which is what a new test should kill.

Usage: ``python tests/mutation_report.py [mutants] [--markdown]`` (``--markdown``: the
per-module table of the README's test section).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

DETECTED = {"killed", "timeout", "segfault"}
MISSED = {"survived", "no tests", "suspicious"}
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.md")


def listed_equivalents(path: Path | None = None) -> set[str]:
    """Full mutant names (``babel.prune.flops.x_f__mutmut_3``) listed as equivalent."""
    path = EQUIVALENTS if path is None else path
    names: set[str] = set()
    module = None
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        if m := re.match(r"## (babel/\S+)\.py\s*$", line):
            module = m.group(1).replace("/", ".")
        elif line.startswith("## "):
            module = None
        elif module and (m := re.match(r"- \S+ (x\S+__mutmut_\d+) ", line)):
            names.add(f"{module}.{m.group(1)}")
    return names


def main(*args: str) -> int:
    from mutmut.stats import status_by_exit_code  # `make mutation` installs mutmut

    markdown = "--markdown" in args
    rest = [a for a in args if a != "--markdown"]
    folder = rest[0] if rest else "mutants"
    files = sorted(Path(folder).rglob("*.py.meta"))
    if not files:
        print(f"no mutmut results under {folder}/: run `make mutation` first", file=sys.stderr)
        return 1
    equivalent = listed_equivalents()
    total: Counter[str] = Counter()
    killed: Counter[str] = Counter()
    equiv: Counter[str] = Counter()
    unexplained: list[str] = []
    for f in files:
        codes = json.loads(f.read_text()).get("exit_code_by_key", {})
        module = str(f.relative_to(folder)).removesuffix(".meta")
        for key, code in codes.items():
            status = status_by_exit_code[code]
            if status not in DETECTED | MISSED:
                continue
            total[module] += 1
            if status in DETECTED:
                killed[module] += 1
            elif key in equivalent:
                equiv[module] += 1
            else:
                unexplained.append(f"{key} ({status})")
    n, k, e = sum(total.values()), sum(killed.values()), sum(equiv.values())
    if markdown:
        print("| module | mutants | killed | equivalent | unexplained | score |")
        print("|---|---|---|---|---|---|")
        for mod in sorted(total):
            u = total[mod] - killed[mod] - equiv[mod]
            print(f"| `{mod}` | {total[mod]:,} | {killed[mod]:,} | {equiv[mod]:,} | {u:,} | "
                  f"{100 * killed[mod] / total[mod]:.1f}% |")
        print(f"| **all** | **{n:,}** | **{k:,}** | **{e:,}** | **{n - k - e:,}** | "
              f"**{100 * k / max(n, 1):.1f}%** |")
        return 0
    for mod in sorted(total):
        print(f"{mod:45s} {killed[mod]:5d} / {total[mod]:5d} killed  "
              f"{100 * killed[mod] / total[mod]:5.1f}%  ({equiv[mod]} equivalent)")
    print(f"\nmutation score: {k} of {n} mutants killed = {100 * k / max(n, 1):.1f}%")
    print(f"{n - k} survivors: {e} listed as equivalent in {EQUIVALENTS.name}, "
          f"{len(unexplained)} unexplained (`.venv/bin/mutmut show NAME` shows one):")
    for key in unexplained:
        print(f"  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
