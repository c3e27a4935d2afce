"""The ``babel`` command line: profiles, families and pruning of your own text; the notebook runner.

::

    babel profile --model smollm2-135m --languages en,fr,hi --corpus ./my_texts --out out/
    babel families --model smollm2-135m --languages all --corpus ./my_texts --out out/
    babel prune --model smollm2-135m --language fr --keep 0.9 --corpus ./my_texts --out fr-90/
    babel prune --model smollm2-135m --language en --keep 0.9 --score fluctuation \
        --allocation uniform --compensation mean --out en-90/
    torchrun --nproc_per_node 2 -m babel profile --model smollm2-135m --corpus ./my_texts
    babel corpus stats --tokenizer gemma-3-270m
    babel corpus transliterate-serbian
    babel run 02_activation_profiling --params smoke -p languages '[en, fr]'
    babel reproduce --params default
    babel results          # README.md's results section from the default run
    babel report           # build/report/index.html

``python -m babel …`` is the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from babel import results
from babel.core import notebook, paths
from babel.data.checks import ALLOW_MIXED_ENV
from babel.data.corpus import corpus_stats, write_serbian_latin
from babel.data.languages import USER_CSV_ENV, get_language
from babel.experiment import ExperimentConfig
from babel.families.similarity import METRICS, similarity
from babel.families.stats import label_table
from babel.figures.families import clustermap
from babel.figures.heatmaps import frequency_heatmaps
from babel.models.loading import load_tokenizer
from babel.models.surgery import prune_model, save_pruned
from babel.profile import distributed
from babel.profile.cache import write_frequency_table
from babel.prune import importance as imp
from babel.prune.compensation import carries_bias, removed_mean_bias
from babel.prune.masks import neuron_keep_mask
from babel.prune.methods import Method, method_mask
from babel.report.__main__ import main as report_main


def _corpus(args: argparse.Namespace) -> int:
    if args.corpus_command == "transliterate-serbian":
        print(f"wrote {write_serbian_latin(corpus_dir=args.corpus_dir)}")
        return 0
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    df = corpus_stats(args.langs, tokenizer=tokenizer, corpus_dir=args.corpus_dir)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(df.round(3).to_string())
    return 0


def list_arg(value: str) -> list[str] | str:
    """A list option: ``en,fr``, a YAML list ``[en, fr]``, or ``all``."""
    value = value.strip()
    if value.startswith("["):
        parsed = yaml.safe_load(value)
        if not isinstance(parsed, list):
            raise argparse.ArgumentTypeError(f"{value!r} is not a YAML list")
        return [str(v) for v in parsed]
    if value == "all":
        return value
    return [v.strip() for v in value.split(",") if v.strip()]


def _add_experiment_arguments(p: argparse.ArgumentParser, *, languages: bool = True) -> None:
    p.add_argument("--model", required=True,
                   help="embedded name (gemma-3-270m, smollm2-135m), hub id or local folder")
    if languages:
        p.add_argument("--languages", type=list_arg, default="all",
                       help="codes: en,fr,hi or [en, fr, hi] (default: every file of --corpus)")
    p.add_argument("--corpus", default="builtin",
                   help="a folder of <code>.txt (one item a line) or <code>.jsonl files, or a "
                        "source: builtin, flores_plus, wikipedia")
    p.add_argument("--languages-csv", type=Path, default=None,
                   help="your language table (columns of data/languages.csv; code and script "
                        "required), merged over the built-in one")
    p.add_argument("--allow-mixed-script", action="store_true",
                   help="accept files with over 10%% of letters outside their script")
    p.add_argument("--min-tokens", type=int, default=200,
                   help="fewest tokens (the model's tokenizer) a language's file must hold")
    p.add_argument("--experts", type=int, default=256, help="experts per layer E (default 256)")
    p.add_argument("--share", type=float, default=0.2, help="selection share r (default 0.2)")
    p.add_argument("--max-items", type=int, default=100,
                   help="items per language (default 100; 0: all)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per chunk (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="chunks per forward pass")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weights' dtype (scores are computed in fp32 either way)")
    p.add_argument("--device-map", default=None,
                   help="e.g. auto: spread a model larger than one device (accelerate)")
    p.add_argument("--compiled", action="store_true",
                   help="profile through torch.compile (needs a C++ compiler; compiles once "
                        "per batch shape; cached apart from eager profiles)")
    p.add_argument("--out", type=Path, default=Path("babel-out"),
                   help="output folder (default ./babel-out)")


def _experiment(args: argparse.Namespace, languages: Any) -> ExperimentConfig:
    exp = ExperimentConfig.from_params(
        model=args.model, languages=languages, corpus=args.corpus, n_experts=args.experts,
        languages_csv=str(args.languages_csv) if args.languages_csv else None,
        share=args.share, max_items=args.max_items or None, seq_len=args.seq_len,
        batch_size=args.batch_size)
    if getattr(args, "compiled", False):
        exp = dataclasses.replace(exp, profile=dataclasses.replace(exp.profile, compiled=True))
    return exp


def _profiles(args: argparse.Namespace, languages: Any):
    exp = _experiment(args, languages)  # checks the text before the model is loaded
    if args.device_map:
        lm, tok = exp.load_model(dtype=args.dtype, device_map=args.device_map,
                                 min_tokens=args.min_tokens)
    else:  # under torchrun on GPUs each rank takes its own cuda:LOCAL_RANK
        lm, tok = exp.load_model(dtype=args.dtype, device=distributed.local_device(),
                                 min_tokens=args.min_tokens)
    part = exp.build_partition(lm, model_name=exp.model)
    profiles = exp.profiles(lm, tok, part, model_name=exp.model,
                            progress=distributed.is_main())
    return exp, lm, tok, part, profiles


def _stem(exp: ExperimentConfig) -> str:
    return paths.slug(Path(exp.model).name if "/" in exp.model else exp.model)


def _profile(args: argparse.Namespace) -> int:
    exp, _, _, _, profiles = _profiles(args, args.languages)
    if not distributed.is_main():  # under torchrun: rank 0 writes the outputs
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    table = write_frequency_table(profiles, model=exp.model,
                                  path=args.out / f"expert-frequency_{_stem(exp)}.parquet")
    langs, freq = exp.frequencies(profiles)
    fig = frequency_heatmaps(freq, langs, model=exp.model)
    png = args.out / f"frequency-heatmap_{_stem(exp)}.png"
    fig.savefig(png, dpi=120)
    print(table)
    print(png)
    return 0


def _families(args: argparse.Namespace) -> int:
    exp, _, _, _, profiles = _profiles(args, args.languages)
    if not distributed.is_main():  # under torchrun: rank 0 writes the outputs
        return 0
    langs, freq = exp.frequencies(profiles)
    if len(langs) < 3:
        raise ValueError(f"families needs at least 3 languages, got {langs}; add files")
    args.out.mkdir(parents=True, exist_ok=True)
    sim = similarity(freq, metric=args.metric)
    csv = args.out / f"similarity_{_stem(exp)}.csv"
    pd.DataFrame(sim, index=langs, columns=langs).to_csv(csv)
    grid = clustermap(sim, langs, title=f"{args.metric} similarity — {exp.model}")
    png = args.out / f"clustermap_{_stem(exp)}.png"
    grid.figure.savefig(png, dpi=120, bbox_inches="tight")
    keep = [i for i, lang in enumerate(langs) if get_language(lang).has_genealogy]
    left = [langs[i] for i in range(len(langs)) if i not in keep]
    if left:
        print(f"note: statistics leave out {left}: no family/branch in the language table "
              f"(add them with --languages-csv)", file=sys.stderr)
    stats = args.out / f"family-statistics_{_stem(exp)}.csv"
    if len(keep) >= 3:
        table = label_table(sim[keep][:, keep], [langs[i] for i in keep],
                            n_permutations=args.permutations)
        table.to_csv(stats, index=False)
        print(csv, png, stats, sep="\n")
    else:
        print("note: fewer than 3 languages with a family; no statistics table",
              file=sys.stderr)
        print(csv, png, sep="\n")
    return 0


def _prune(args: argparse.Namespace) -> int:
    exp, lm, tok, part, profiles = _profiles(args, [args.language])
    if not distributed.is_main():
        return 0
    method = Method(args.score, args.compensation, args.allocation)
    prof = profiles[args.language]
    norms = None if args.score in ("frequency", "mass") else imp.down_norms(lm)
    score = imp.expert_score(prof, args.score, part, norms)
    keep = neuron_keep_mask(method_mask(method, score, args.keep), part)
    bias = (removed_mean_bias(lm, prof.neuron_mean, keep) if args.compensation == "mean"
            else None)
    if bias is not None and not carries_bias(lm):
        print(f"note: {type(lm).__name__} has no FFN output bias in transformers: the "
              f"compensation is stored in compensation.npz; plain from_pretrained loads the "
              f"folder without it, babel.models.surgery.load_pruned applies it",
              file=sys.stderr)
    pruned = prune_model(lm, keep, bias=bias)
    folder = save_pruned(pruned, args.out, meta={"language": args.language, "keep": args.keep,
                                                 "method": method.label,
                                                 "experiment": exp.to_dict()})
    tok.save_pretrained(str(folder))
    print(folder)
    return 0


class _Parser(argparse.ArgumentParser):
    """One-line errors; an unknown option gets the closest known one."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings]


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def _unknown_message(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     extras: Sequence[str]) -> str:
    sub = _subparser(parser, args.command) or parser
    known = _option_strings(sub)
    bad = next((e for e in extras if e.startswith("-")), extras[0])
    close = difflib.get_close_matches(bad.split("=")[0], known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else f"; see babel {args.command} --help"
    return f"babel {args.command}: error: unknown argument {bad}{hint}"


@contextlib.contextmanager
def _environment(args: argparse.Namespace) -> Iterator[None]:
    """The run's language table and script flag (read by the checks), restored afterwards."""
    values = {USER_CSV_ENV: str(args.languages_csv) if getattr(args, "languages_csv", None)
              else None,
              ALLOW_MIXED_ENV: "1" if getattr(args, "allow_mixed_script", False) else None}
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is not None:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    ap = _Parser(prog="babel", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    prof = sub.add_parser("profile", help="expert activation frequencies of your text: the "
                          "frequency table (parquet) and the heatmap (PNG)")
    _add_experiment_arguments(prof)
    fam = sub.add_parser("families", help="language similarity: the matrix (CSV), the "
                         "clustermap (PNG) and the family/script statistics (CSV)")
    _add_experiment_arguments(fam)
    fam.add_argument("--metric", choices=METRICS, default="centered",
                     help="similarity metric (default centered)")
    fam.add_argument("--permutations", type=int, default=1000,
                     help="permutations of the tests (default 1000)")
    pru = sub.add_parser("prune", help="a model pruned for one language, as a Hugging Face "
                         "folder (safetensors, config, tokenizer, keep mask)")
    _add_experiment_arguments(pru, languages=False)
    pru.add_argument("--language", required=True, help="the language to keep experts for")
    pru.add_argument("--keep", type=float, required=True,
                     help="share of experts kept, in (0, 1] (e.g. 0.9)")
    pru.add_argument("--score", choices=("frequency", "mass", "weighted", "fluctuation",
                                         "energy"), default="frequency",
                     help="expert importance (default frequency, the paper's; see "
                          "babel.prune.importance)")
    pru.add_argument("--allocation", choices=("global", "uniform", "adaptive"),
                     default="global", help="budget over layers (default global)")
    pru.add_argument("--compensation", choices=("none", "mean"), default="none",
                     help="add the removed experts' mean output back as a bias (default none)")
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
    rep = sub.add_parser("report", help="the results page build/report/index.html (claims, "
                                        "figures, explorer, notebooks, provenance)")
    rep.add_argument("--params", default=None, help="parameter set (default: the last executed)")
    rep.add_argument("--out", default=None, help="report folder (default build/report)")
    return ap


_COMMANDS = {"profile": _profile, "families": _families, "prune": _prune}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        print(_unknown_message(parser, args, extras), file=sys.stderr)
        return 2
    if args.command in _COMMANDS:
        try:
            with _environment(args), warnings.catch_warnings():
                warnings.showwarning = _show_warning
                warnings.simplefilter("once")  # a file's warning is said once, not per stage
                return _COMMANDS[args.command](args)
        except Exception as err:  # noqa: BLE001 — one line for the user
            lines = str(err).strip().splitlines() or [type(err).__name__]
            print(f"error: {lines[0]}", file=sys.stderr)
            return 1
    if args.command == "corpus":
        return _corpus(args)
    if args.command == "report":
        return report_main([*(["--params", args.params] if args.params else []),
                            *(["--out", args.out] if args.out else [])])
    if args.command == "results":
        print(f"wrote {results.update_readme()}")
        return 0
    return notebook.run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
