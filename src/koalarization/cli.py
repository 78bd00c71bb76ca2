"""The `koala` command. Each subcommand is a thin wrapper over a package function that notebooks call too."""
import argparse
import importlib
import os
import sys

from .errors import KoalaError

# module path -> it defines register(subparsers); imported lazily so that `koala --help` stays fast.
COMMAND_MODULES = [
    "koalarization.colorize",
    "koalarization.data.prepare",
    "koalarization.train",
    "koalarization.evaluate.run",
    "koalarization.study",
    "koalarization.survey.cli",
]


def build_parser():
    parser = argparse.ArgumentParser(prog="koala", description=__doc__)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"koalarization {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KoalaError, OSError) as error:
        # Errors about the user's input (files, data, checkpoints, weights, profiles) end with one clear line, no
        # traceback. Anything else is a bug and keeps its traceback. Set KOALA_DEBUG=1 to see every traceback.
        if os.environ.get("KOALA_DEBUG"):
            raise
        print(f"koala {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
