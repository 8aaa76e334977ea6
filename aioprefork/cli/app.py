"""The `aioprefork` command (the console script and `python -m aioprefork`).

A plain `aioprefork serve APP --option value ...` goes straight to cli/serve.py without importing
typer: that process becomes the master, and whatever it imported is in every worker it forks
(cli/argv.py says how much and what "plain" means). Everything else (help, usage errors,
check-config, version, ctl, completion) runs the typer application in cli/commands.py.
"""

from __future__ import annotations

import os
import sys

from aioprefork.cli.argv import parse_serve


def main() -> None:
    args = parse_serve(sys.argv[1:], os.environ)
    if args is None:
        from aioprefork.cli.commands import app

        app()
        return
    from aioprefork.cli.serve import serve

    sys.exit(serve(args.app, args.config, args.options))
