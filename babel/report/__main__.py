"""``python -m babel.report [--params SET] [--out DIR]``: write the results report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from babel.core import paths
from babel.report import REPORT_DIR, build_report
from babel.report.executed import latest_params


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m babel.report",
                                 description="Write build/report/index.html from the executed "
                                             "notebooks of one parameter set.")
    ap.add_argument("--params", default=None,
                    help="parameter set (default: the one executed last)")
    ap.add_argument("--out", type=Path, default=REPORT_DIR, help="report folder")
    args = ap.parse_args(argv)
    params = args.params or latest_params()
    if params is None:
        print("error: no executed notebooks under build/executed/: run `make reproduce` "
              "first", file=sys.stderr)
        return 1
    try:
        index = build_report(paths.EXECUTED_DIR / params, out=args.out, params=params)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    shown = index.relative_to(paths.PROJ_ROOT) if index.is_relative_to(paths.PROJ_ROOT) \
        else index
    print(f"wrote {shown} ({params})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
