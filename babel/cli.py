"""The ``babel`` command line: corpus tools and the notebook runner.

::

    babel corpus stats --tokenizer gemma-3-270m
    babel corpus transliterate-serbian
    babel run 02_activation_profiling --params smoke -p languages '[en, fr]'
    babel reproduce --params default
    babel results          # README.md's results section from the default run

``python -m babel …`` is the same command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from babel import results
from babel.core import notebook
from babel.data.corpus import corpus_stats, write_serbian_latin
from babel.models.loading import load_tokenizer


def _corpus(args: argparse.Namespace) -> int:
    if args.corpus_command == "transliterate-serbian":
        print(f"wrote {write_serbian_latin(corpus_dir=args.corpus_dir)}")
        return 0
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    df = corpus_stats(args.langs, tokenizer=tokenizer, corpus_dir=args.corpus_dir)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(df.round(3).to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    ap = argparse.ArgumentParser(prog="babel", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    corpus = sub.add_parser("corpus", help="corpus statistics and the derived Serbian Latin file")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    stats = csub.add_parser("stats", help="items, characters, words (and tokens) per language")
    stats.add_argument("--tokenizer", help="model name or folder (counts tokens too)")
    stats.add_argument("--langs", default=None, help="codes, e.g. en,fr (default: all present)")
    translit = csub.add_parser(
        "transliterate-serbian",
        help="rewrite data/corpus/sr-Latn.jsonl from sr-Cyrl.jsonl (derived: same content)")
    for p in (stats, translit):
        p.add_argument("--corpus-dir", type=Path, default=None, help="another corpus folder")
    notebook.add_run_arguments(sub)
    sub.add_parser("results", help="rewrite README.md's results section from the default run")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "corpus":
        return _corpus(args)
    if args.command == "results":
        print(f"wrote {results.update_readme()}")
        return 0
    return notebook.run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
