"""The `koala` command. Each subcommand is a thin wrapper over a package function that notebooks call too."""
import argparse
import importlib
import sys

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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
