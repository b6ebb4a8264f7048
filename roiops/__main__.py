"""`python -m roiops demo|bench|export|predict ...`; `python -m roiops <command> -h` describes
each. Each command's arguments and work live beside its logic (COMMANDS: add_arguments and main);
this file only builds the parser from them and dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

from ._cli import quiet_torch_noise

COMMANDS = {
    "demo": "roiops.demo.command",
    "bench": "roiops.bench.command",
    "export": "roiops.deploy.export",
    "predict": "roiops.deploy.predict",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m roiops",
        description="roiops' commands; `python -m roiops <command> -h` describes each.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}"
    )
    for name, module in COMMANDS.items():
        command = importlib.import_module(module)
        sub = commands.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_torch_noise()
    parser = _parser()
    args = parser.parse_args(argv)
    return importlib.import_module(COMMANDS[args.command]).main(args, parser)


if __name__ == "__main__":
    sys.exit(main())
