"""The `koala` command: colorize, prepare, train, evaluate, study, survey.

Every subcommand parses its arguments here and calls one package function with keyword arguments; defaults come
from the typed settings in `config.py`, the same ones the profiles and notebooks use. This module is the only
place that prints; the package logs. An error about the user's input (a `KoalaError` or a file problem) ends
with one clear line; anything else is a bug and keeps its traceback (KOALA_DEBUG=1 shows every traceback).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, get_args

from .config import FUSIONS, LOSSES, DataSettings, ModelSpec, TrainingSettings
from .errors import KoalaError
from .layout import STAGES


def _field(settings: Any, name: str) -> Any:
    return settings.model_fields[name]


def _choices(settings: Any, name: str) -> list[str]:
    """The values a Literal setting allows, so that the CLI's choices are the config's."""
    return list(get_args(_field(settings, name).annotation))


def _colorize_parser(commands) -> None:
    from . import colorize

    parser = commands.add_parser("colorize", help="colorize photos or folders with a trained checkpoint",
                                 description=colorize.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="photo files and/or folders (searched recursively)")
    parser.add_argument("--checkpoint", required=True, nargs="+",
                        help="checkpoint, or training run folder (the checkpoint its training chose); several (a "
                             "model's seeds) are colorized as an ensemble: their a*b* averaged")
    parser.add_argument("--output", required=True, help="output folder (PNG files)")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--side-by-side", action="store_true", help="also write gray | colorized images")
    parser.add_argument("--short-side", type=int, default=None,
                        help="working resolution of the network (default: the scale the checkpoint was trained at)")
    parser.add_argument("--backbone-weights", default="imagenet",
                        help="'imagenet' or a local weights file (Inception-ResNet-v2 offline)")
    parser.set_defaults(func=_colorize)


def _colorize(args) -> int:
    from .colorize import colorize_paths

    written, failures = colorize_paths(args.inputs, args.checkpoint, args.output, force=args.force,
                                       with_side_by_side=args.side_by_side, short_side=args.short_side,
                                       backbone_weights=args.backbone_weights, progress=sys.stderr.isatty())
    # colorize_paths has logged each skipped file with its reason (once: printing them here too repeated them)
    print(f"colorized {len(written)} photo(s) into {args.output}; {len(failures)} skipped")
    return 1 if failures else 0


def _prepare_parser(commands) -> None:
    from .data import prepare

    parser = commands.add_parser("prepare", help="prepare photos into shards with cached embeddings",
                                 description=prepare.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", required=True,
                        help="samples | system | folder:PATH | imagenet:PATH[?classes=..&per_class=N] (repeatable)")
    parser.add_argument("--out", required=True, help="output folder of the prepared dataset")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--backbone-weights", default="imagenet")
    for name in ("short_side", "letterbox_size", "train_scale", "train_crop", "crops_per_photo", "min_side",
                 "max_photos", "shard_size", "seed"):
        field = _field(DataSettings, name)
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=field.default, help=field.description)
    parser.add_argument("--heldout", action="append", default=[], help=_field(DataSettings, "heldout").description)
    parser.add_argument("--feature-maps", action="store_true", help=_field(DataSettings, "feature_maps").description)
    parser.add_argument("--split-fractions", type=float, nargs=3,
                        default=list(_field(DataSettings, "split_fractions").default))
    parser.add_argument("--shard-index", type=int, default=0)
    parser.add_argument("--shard-count", type=int, default=1)
    parser.set_defaults(func=_prepare)


def _prepare(args) -> int:
    import pandas as pd

    from .data.prepare import prepare

    settings = DataSettings(sources=args.source, heldout=args.heldout, backbones=[args.backbone],
                            short_side=args.short_side, letterbox_size=args.letterbox_size,
                            train_scale=args.train_scale, train_crop=args.train_crop,
                            crops_per_photo=args.crops_per_photo, feature_maps=args.feature_maps,
                            min_side=args.min_side, max_photos=args.max_photos,
                            shard_size=args.shard_size, split_fractions=tuple(args.split_fractions), seed=args.seed)
    manifest = prepare(settings, args.out, backbone=args.backbone, backbone_weights=args.backbone_weights,
                       shard_index=args.shard_index, shard_count=args.shard_count, progress=sys.stderr.isatty())
    index = pd.read_csv(os.path.join(args.out, "index.csv"), keep_default_na=False)
    for row in index[index["status"] != "ok"].itertuples():
        print(f"skipped {row.photo_id}: {row.status}: {row.reason}")
    if manifest is None:
        print(f"shard {args.shard_index}/{args.shard_count} done; other shards still missing, no manifest yet")
    else:
        print(f"prepared {manifest['counts']} photos into {args.out} (fingerprint {manifest['fingerprint']})")
    return 0


def _train_parser(commands) -> None:
    from . import train

    parser = commands.add_parser("train", help="train (or resume) the colorization network",
                                 description=train.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset folder (koala prepare); it also fixes the "
                                                      "training scale and crop")
    parser.add_argument("--run", required=True, help="run folder: checkpoints and logs; resumed if it exists")
    parser.add_argument("--steps", type=int, required=True, help="total steps; training stops exactly there")
    for name, kind in (("batch_size", int), ("learning_rate", float), ("warmup_steps", int), ("checkpoint_every", int),
                       ("validation_batches", int), ("rebalance_lambda", float), ("weight_average", float)):
        field = _field(TrainingSettings, name)
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=field.default, help=field.description)
    for name in ("keep", "lr_schedule", "mixed_precision"):
        field = _field(TrainingSettings, name)
        parser.add_argument("--" + name.replace("_", "-"), choices=_choices(TrainingSettings, name),
                            default=field.default, help=field.description)
    spec = ModelSpec.model_fields
    parser.add_argument("--fusion", choices=FUSIONS, default=spec["fusion"].default, help=spec["fusion"].description)
    parser.add_argument("--no-fusion", dest="fusion", action="store_const", const="none",
                        help="the ablation without the classifier (the same as --fusion none)")
    parser.add_argument("--loss", choices=LOSSES, default=spec["loss"].default, help=spec["loss"].description)
    parser.add_argument("--map-dropout", type=float, default=spec["map_dropout"].default,
                        help=spec["map_dropout"].description)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_train)


def _train(args) -> int:
    from . import checkpoint
    from .train import train

    settings = TrainingSettings(batch_size=args.batch_size, steps=args.steps, checkpoint_every=args.checkpoint_every,
                                learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
                                warmup_steps=args.warmup_steps, mixed_precision=args.mixed_precision,
                                keep=args.keep, validation_batches=args.validation_batches,
                                rebalance_lambda=args.rebalance_lambda, weight_average=args.weight_average)
    report: dict[str, Any] = {}
    final = train(args.data, args.run, settings, fusion=args.fusion, loss=args.loss, seed=args.seed,
                  verbose=2 if sys.stderr.isatty() else 0, report=report, map_dropout=args.map_dropout)
    if not final:  # a worker other than the chief of several: it writes no checkpoint
        print(json.dumps(report))
        return 0
    print(json.dumps({"checkpoint": final, "step": checkpoint.read_config(final)["step"],
                      "last_step": checkpoint.read_config(checkpoint.resolve(args.run))["step"], **report}))
    return 0


def _evaluate_parser(commands) -> None:
    from .evaluate import run

    parser = commands.add_parser("evaluate", help="evaluate checkpoints and baselines on a held-out split",
                                 description=run.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT@DATA",
                        help="a model to evaluate: name, checkpoint or run folder, prepared data folder (repeat a "
                             "name with other checkpoints for other seeds)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="test", choices=["test", "heldout", "validation"])
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that score while the networks run (default: one per usable core, at most "
                             "8; 0: all in this process); the numbers do not depend on it")
    parser.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    from . import checkpoint
    from .evaluate.run import average_seeds, evaluate, scoring_workers
    from .evaluate.stats import summarize
    from .layout import EvalFiles
    from .report.tables import format_summary
    from .stages import RunEntry, RunsIndex

    models: dict[str, RunEntry] = {}
    for item in args.model:
        name, rest = item.split("=", 1)
        checkpoint_path, data = rest.rsplit("@", 1)
        config = checkpoint.read_config(checkpoint.resolve(checkpoint_path, "chosen"))
        entry = models.setdefault(name, RunEntry(backbone=config["backbone"], fusion=checkpoint.fusion_of(config),
                                                 loss=config.get("training", {}).get("loss", "mse"), label=name,
                                                 data_dir=data, checkpoints={}))
        entry.checkpoints[len(entry.checkpoints)] = checkpoint_path
    per_photo = evaluate(RunsIndex(models=models), EvalFiles(Path(args.out)), split=args.split,
                         progress=sys.stderr.isatty(),
                         workers=scoring_workers() if args.workers is None else args.workers)
    print(format_summary(summarize(average_seeds(per_photo).drop(columns=["seeds"]))).to_string(index=False))
    return 0


def _study_parser(commands) -> None:
    from . import study

    parser = commands.add_parser("study", help="run the study's notebooks and rebuild results/<profile>",
                                 description=study.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help="ci, demo, paper or a JSON file of the same shape")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set training.steps=100 (repeatable; JSON values)")
    parser.add_argument("--force", action="store_true", help="rerun every stage even if its inputs did not change")
    parser.add_argument("--only", nargs="*", choices=STAGES, help="run only these stages (others are reused)")
    parser.add_argument("--project-dir", default=".", help="the checkout (notebooks/, results/, work/)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name for papermill")
    parser.add_argument("--shift-seeds", type=int, default=0, metavar="N",
                        help="train every model with its seeds shifted by N (a rerun with other seeds: do the "
                             "procedure verdicts hold?); best with --project-dir elsewhere, so results/ stays as it is")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="train every model with seeds 0 .. N-1 instead of the profile's (procedure verdicts "
                             "that hold on a rerun need about six; each seed is one more training per model)")
    parser.add_argument("--compare-verdicts", nargs=2, metavar=("RESULTS_A", "RESULTS_B"),
                        help="instead of running: compare the verdicts of two result folders, comparison by comparison")
    parser.add_argument("--compare", nargs=2, metavar=("RESULTS_A", "RESULTS_B"),
                        help="instead of running: compare the metric means of two result folders of a profile")
    parser.set_defaults(func=_study)


def _study(args) -> int:
    from .config import model_seeds, parse_override
    from .study import StageFailed, compare_results, compare_verdicts, run_study

    if args.compare_verdicts:
        rows = compare_verdicts(*args.compare_verdicts)
        for row in rows:
            print(f"{row['family']:>10} {row['split']:>7} {row['model_a']:>22} {row['model_b']:>22} "
                  f"{row['metric']:>16}  {row['a']:>18}  {row['b']:>18}  {'same' if row['same'] else 'DIFFERS'}")
        return 0 if all(row["same"] for row in rows) else 1
    if args.compare:
        rows = compare_results(*args.compare)
        for row in rows:
            print(f"{row['split']:>8} {row['model']:>16} {row['metric']:>16}  {row['a']:.5g}  {row['b']:.5g}  "
                  f"{row['relative_difference']:.2%}  {'ok' if row['within_tolerance'] else 'OUTSIDE TOLERANCE'}")
        return 0 if all(row["within_tolerance"] for row in rows) else 1
    overrides = dict(parse_override(item) for item in args.overrides)
    if args.shift_seeds or args.seeds is not None:
        overrides["models"] = model_seeds(args.profile, overrides, args.seeds, args.shift_seeds)
    try:
        run_study(args.profile, args.project_dir, force=args.force, only=args.only, kernel=args.kernel,
                  overrides=overrides, echo=print)
    except StageFailed:
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, photos_cli
    from .survey import cli as survey_cli

    parser = argparse.ArgumentParser(prog="koala", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"koalarization {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_colorize_parser, _prepare_parser, _train_parser, _evaluate_parser, _study_parser,
                survey_cli.register, photos_cli.register):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("koalarization").setLevel(logging.INFO)  # the package says what it does; libraries only warn
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except (KoalaError, OSError) as error:
        if os.environ.get("KOALA_DEBUG"):
            raise
        print(f"koala {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
