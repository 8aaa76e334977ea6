"""The `serve` command's work, without typer: config -> logging -> master (or in-process worker).

Both ways in end here: cli/app.py's `main()` for a plain command line (read by cli/argv.py) and
the typer `serve` command for the rest. This module must not import typer, directly or not:
the process running it becomes the master, and every module it holds when it forks is in every
worker's memory (tests/worker/test_memory.py checks a worker's modules).

Errors the user can cause print ONE line (`aioprefork: <what> — <fix>`) and become the exit code;
no traceback reaches the terminal for them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from aioprefork.cli.argv import cli_values
from aioprefork.config.load import Loaded, load
from aioprefork.errors import (
    EXIT_USAGE,
    AppLoadError,
    BootError,
    ConfigError,
    UserError,
)

NO_APP = "no application given — pass module:attribute, e.g. `aioprefork serve myapp:app`"


def say(message: str) -> None:
    """One `aioprefork: ...` line on stderr (what typer.echo(err=True) writes)."""
    print(f"aioprefork: {message}", file=sys.stderr, flush=True)


def load_given(
    app_path: str | None, config: str | None, options: Mapping[str, Any]
) -> tuple[Loaded, dict[str, Any]]:
    """The effective config and the CLI layer it was built from (kept for reloads). UserError."""
    given = cli_values(options)
    if app_path:
        given["app"] = app_path
    return load_checked(given, config), given


def load_checked(given: Mapping[str, Any], config_file: str | None) -> Loaded:
    """config.load, plus what config/ cannot check alone (files, accounts, formats that other
    layers own): at start, for check-config (apachectl -t) and on every reload alike, so that a
    value `serve` would refuse later is refused here, in one line naming key, value and source.
    UserError."""
    loaded = load(given, config_file=config_file)
    cfg = loaded.config

    def bad(key: str, problem: str) -> ConfigError:
        return ConfigError(key, getattr(cfg, key), loaded.sources.get(key, "default"), problem)

    from aioprefork.wire.accesslog import check_format

    try:
        check_format(cfg.access_log_format)  # with the log off too: it may be turned on by a reload
    except ValueError as exc:
        raise bad("access_log_format", str(exc).partition(": ")[2] or str(exc)) from None
    if cfg.app:
        module, colon, attribute = cfg.app.partition(":")
        if not colon or not module.strip() or not attribute.strip():
            raise bad("app", "expected module:attribute, e.g. myapp:app")
    if cfg.metrics:
        from aioprefork.metrics.http import parse_bind

        try:
            parse_bind(cfg.metrics_bind)
        except UserError:
            raise bad("metrics_bind", "expected HOST:PORT or [IPv6]:PORT") from None
    if cfg.reload:
        from aioprefork.master.reloader import INSTALL_HINT, have_watchfiles

        if not have_watchfiles():
            raise bad("reload", f"needs the watchfiles package: {INSTALL_HINT}")
        if cfg.workers == 0:
            raise bad("reload", "restarts workers, and workers = 0 has none: use --workers 1")
        for directory in cfg.reload_dirs:
            if not os.path.isdir(directory):
                raise bad("reload_dirs", f"{directory} is not a directory")
    if cfg.log_config and not os.path.isfile(cfg.log_config):
        raise bad("log_config", "file not found")
    for key in ("error_log", "access_log_file"):
        if getattr(cfg, key) and cfg.log_config:
            raise bad(key, "log_config replaces it: put a FileHandler in the log config instead")
    unix_binds = [a[5:] for a in cfg.binds() if a.startswith("unix:")]
    files = [("pid_file", cfg.pid_file), ("ctl_socket", cfg.ctl_socket)]
    files += [("error_log", cfg.error_log), ("access_log_file", cfg.access_log_file)]
    for key, path in files + [("bind", p) for p in unix_binds]:
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise bad(key, f"the directory of {path} does not exist (create it first)")
    if cfg.user or cfg.group:
        from aioprefork.master.daemon import resolve_owner

        try:
            resolve_owner(cfg.user, cfg.group)
        except ConfigError as exc:
            raise bad(exc.key, exc.problem) from None
    from aioprefork.hooks import HOOKS, HookError, resolve

    for name in HOOKS:
        if getattr(cfg, name):
            try:
                resolve(name, getattr(cfg, name), cfg.app_dir)
            except HookError as exc:
                raise bad(name, exc.problem) from None
    if cfg.ssl_certfile:
        from aioprefork.tls import make_ssl_context

        try:
            make_ssl_context(cfg)
        except ConfigError as exc:
            raise bad(exc.key, exc.problem) from None
    return loaded


def serve(app_path: str | None, config: str | None, options: Mapping[str, Any]) -> int:
    """Serve until stopped; returns the exit code (usage errors: 2, boot failures: 3)."""
    try:
        loaded, given = load_given(app_path, config, options)
    except UserError as exc:
        say(str(exc))
        return EXIT_USAGE
    for warning in loaded.warnings:
        say(f"warning: {warning}")
    cfg = loaded.config
    if not cfg.app:
        say(NO_APP)
        return EXIT_USAGE
    from aioprefork.logs import configure_logging, discarded_by_daemon, logging_settings

    discarded = discarded_by_daemon(cfg)
    if discarded:
        say(discarded)
    try:
        configure_logging(*logging_settings(cfg))
        if cfg.workers == 0:
            from aioprefork.worker.single import run_single

            return run_single(cfg)
        from aioprefork.master.arbiter import run_master

        return run_master(loaded, lambda: load_checked(given, loaded.config_file))
    except (AppLoadError, BootError) as exc:  # --workers 0: the app's traceback, then one line
        if exc.detail:
            print(exc.detail, file=sys.stderr, flush=True)
        say(str(exc))
        return exc.exit_code
    except UserError as exc:
        say(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
