"""`aioprefork ctl`: the administrator's client of a running master (apachectl -k, with progress).

Every command finds the master (cli/locate.py) the way `serve` was told (--config, --pid-file,
--ctl-socket, --bind/--host/--port, AIOPREFORK_*), sends one request on the control socket and
prints the progress frames as they arrive, then the outcome. When the socket is absent it falls
back to the pid file and the signal of `SIGNAL_FOR` (master/signals.py), and says so.

Exit codes: 0 done; 1 not running (no socket answers and no live pid); 2 refused or failed (the
master said no, a graceful restart rolled back, the config is bad), with the reason on ONE line
and never a traceback. 130 when interrupted (the master carries on regardless).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Final, NoReturn

import typer

from aioprefork.cli.locate import Target, fail, live_pid, not_running, quiet_pid, with_target
from aioprefork.cli.render import render_requests, render_status
from aioprefork.config import units
from aioprefork.control import protocol
from aioprefork.errors import EXIT_OK, ProtocolViolation
from aioprefork.master.daemon import alive, why_not_our_master
from aioprefork.master.signals import SIGNAL_FOR, Command
from aioprefork.snapshot import InFlight, Snapshot

EXIT_INTERRUPTED: Final = 130
STATUS_TIMEOUT: Final = 10.0  # a status reply is immediate; a master this slow is in trouble
GONE_WAIT: Final = 10.0  # after a stop succeeded, wait this long for the master to disappear
CLEAR: Final = "\x1b[H\x1b[2J"

ctl_app = typer.Typer(
    name="ctl",
    help="Control a running server: status, graceful, restart, upgrade, stop, scale, reopen-logs, dump.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


# --- the control socket --------------------------------------------------------------------------
def connect(path: str) -> socket.socket | None:
    """A connection to the master's control socket; None when nobody listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(STATUS_TIMEOUT)
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        return None
    except PermissionError:
        sock.close()
        fail(f"permission denied on control socket {path}: run ctl as the master's user")
    except OSError as exc:
        sock.close()
        fail(f"cannot connect to control socket {path}: {exc.strerror or exc}")
    uid = peer_uid(sock)
    if uid is not None and uid not in (os.geteuid(), 0):
        sock.close()
        fail(
            f"control socket {path} is served by uid {uid}, neither us nor root: not trusting "
            "its answers (someone else's socket at that path? remove it, or name the master "
            "with --ctl-socket)"
        )
    return sock


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process that listens on the other end (SO_PEERCRED; None off Linux)."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None
    return int(struct.unpack("3i", raw)[1])


def exchange(
    sock: socket.socket, request: Mapping[str, Any], timeout: float | None
) -> Iterator[dict[str, Any]]:
    """Send `request`; yield each reply frame as it arrives, up to and including the final one.

    `timeout` bounds the silence between two frames (None: wait as long as the master works).
    Ends without a final frame when the master closes the connection early.
    """
    decoder = protocol.FrameDecoder()
    with sock:
        try:
            sock.settimeout(STATUS_TIMEOUT)
            sock.sendall(protocol.encode(request))
            sock.settimeout(timeout)
        except OSError as exc:
            fail(f"cannot send to the master: {exc.strerror or exc}")
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                fail(f"no answer from the master within {timeout:g}s")
            except ConnectionResetError:
                data = b""
            except OSError as exc:
                fail(f"lost the master: {exc.strerror or exc}")
            if not data:
                return
            try:
                frames = decoder.feed(data)
            except ProtocolViolation as exc:
                fail(f"malformed reply from the master: {exc}")
            for frame in frames:
                yield frame
                if protocol.is_final(frame):
                    return


# --- the signal fallback (apachectl -k) ----------------------------------------------------------
def wait_until(predicate: Callable[[], bool], seconds: float | None) -> bool:
    deadline = None if seconds is None else time.monotonic() + seconds
    while not predicate():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


SIGNAL_MEANING: Final[Mapping[Command, str]] = {
    Command.STOP: "stop",
    Command.STOP_NOW: "immediate stop",
    Command.RESTART: "restart",
    Command.GRACEFUL: "graceful restart",
    Command.GRACEFUL_STOP: "graceful stop",
    Command.SCALE_UP: "min_workers + 1",
    Command.SCALE_DOWN: "min_workers - 1",
    Command.REOPEN_LOGS: "graceful restart, which reopens the logs",
    Command.UPGRADE: "upgrade: re-exec the master",
}


def signal_master(target: Target, command: Command) -> int:
    """The fallback: send SIGNAL_FOR[command] to the pid in the pid file, only if that pid is
    provably this server's master (master/daemon.py `why_not_our_master`); returns the pid."""
    pid = live_pid(target)
    sig = SIGNAL_FOR[command]
    why = why_not_our_master(pid, target.pid_file)
    if why:
        fail(f"stale pid file {target.pid_file}: {why}; not signalling it (remove the pid file)")
    typer.echo(
        f"aioprefork ctl: no control socket at {target.socket_path}; "
        f"using pid file {target.pid_file}",
        err=True,
    )
    try:
        os.kill(pid, sig)
    except PermissionError:
        fail(f"permission denied sending {sig.name} to master pid {pid}: run ctl as its user")
    except ProcessLookupError:
        not_running(target, f"pid {pid} exited just now")
    typer.echo(f"sent {sig.name} ({SIGNAL_MEANING[command]}) to master pid {pid}")
    return pid


# --- running one command -------------------------------------------------------------------------
def run_command(
    target: Target,
    request: Mapping[str, Any],
    fallback: Command | None,
    *,
    timeout: float | None,
    stops: bool = False,
    stop_wait: float | None = None,
) -> NoReturn:
    """Send a pool-changing command, print progress then the outcome, exit with its code."""
    sock = connect(target.socket_path)
    if sock is None:
        if fallback is None:
            live_pid(target)
            fail(
                f"`{request['cmd']}` with these arguments needs the control socket {target.socket_path}"
            )
        pid = signal_master(target, fallback)
        if request.get("timeout") is not None:
            typer.echo("aioprefork ctl: --timeout needs the control socket; ignored", err=True)
        if stops and stop_wait is not None:
            if not wait_until(lambda: not alive(pid), stop_wait):
                fail(f"master pid {pid} is still running after {stop_wait:g}s")
            typer.echo(f"master pid {pid} has exited")
        raise typer.Exit(EXIT_OK)
    master_pid = quiet_pid(target) if stops else None
    final: dict[str, Any] | None = None
    try:
        for frame in exchange(sock, request, timeout):
            if protocol.is_final(frame):
                final = frame
            elif "progress" in frame:
                typer.echo(str(frame["progress"]))
    except KeyboardInterrupt:
        fail(f"interrupted; the master carries on with `{request['cmd']}`", EXIT_INTERRUPTED)

    def gone() -> bool:
        return not os.path.exists(target.socket_path) and (
            master_pid is None or not alive(master_pid)
        )

    if final is None:
        if stops and wait_until(gone, GONE_WAIT):
            typer.echo("master has exited")
            raise typer.Exit(EXIT_OK)
        fail(f"the master closed the connection without answering `{request['cmd']}`")
    if not final.get("ok"):
        fail(f"{request['cmd']} failed: {final.get('error') or 'refused'}")
    typer.echo(str(final.get("result") or f"{request['cmd']}: done"))
    if stops:  # return once it is gone, so that `ctl stop && ctl status` says "not running"
        who = "master" if master_pid is None else f"master pid {master_pid}"
        if wait_until(gone, GONE_WAIT):
            typer.echo(f"{who} has exited")
        else:
            typer.echo(f"{who} is still draining after {GONE_WAIT:g}s; it exits when done")
    raise typer.Exit(EXIT_OK)


def fetch_snapshot(target: Target, requests: bool = False) -> dict[str, Any] | None:
    """The master's status snapshot (None when no socket answers); with `requests`, the
    requests in flight under the key "requests"."""
    sock = connect(target.socket_path)
    if sock is None:
        return None
    final = None
    request = protocol.request("status", requests=True) if requests else protocol.request("status")
    for frame in exchange(sock, request, STATUS_TIMEOUT):
        if protocol.is_final(frame):
            final = frame
    if final is None:
        fail("the master closed the connection without a status reply")
    if not final.get("ok"):
        fail(f"status failed: {final.get('error') or 'refused'}")
    snapshot = final.get("snapshot")
    if not isinstance(snapshot, dict):
        fail("the master's status reply holds no snapshot")
    if requests:
        listed = final.get("requests")
        if not isinstance(listed, dict):
            fail("this master does not list requests in flight (is it an older version?)")
        snapshot = {**snapshot, "requests": listed}
    return snapshot


def show(snapshot: Mapping[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(snapshot, indent=2, sort_keys=True) + "\n"
    try:
        text = render_status(Snapshot.from_json(snapshot))
        if "requests" in snapshot:
            text += "\n" + render_requests(InFlight.from_json(snapshot["requests"]))
    except ValueError as exc:
        fail(f"cannot render the master's status: {exc}")
    return text


def change_pool(target: Target, request: Mapping[str, Any], fallback: Command | None) -> NoReturn:
    """Run a pool change; the longest silence between its progress frames is a boot plus a drain."""
    cfg = target.config
    run_command(target, request, fallback, timeout=cfg.boot_timeout + cfg.graceful_timeout + 30.0)


# --- the commands --------------------------------------------------------------------------------
@ctl_app.command()
@with_target
def status(
    target: Target,
    seconds: Annotated[
        float | None,
        typer.Argument(metavar="SECONDS", help="refresh interval of --watch (default 2)", min=0.1),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw snapshot as JSON")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="refresh every SECONDS like top, until Ctrl-C")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option("--count", "-n", help="with --watch: stop after N refreshes", min=1),
    ] = None,
    requests: Annotated[
        bool,
        typer.Option("--requests", "-r", help="also list every request in flight, oldest first"),
    ] = False,
) -> None:
    """Show the scoreboard (mod_status): summary, one row per worker slot, the letter line."""
    if watch or seconds is not None:
        _watch(target, as_json, seconds if seconds is not None else 2.0, count, requests)
    snapshot = fetch_snapshot(target, requests)
    if snapshot is None:
        pid = live_pid(target)
        if as_json:
            typer.echo(json.dumps({"running": True, "pid": pid, "snapshot": None}))
        else:
            typer.echo(
                f"aioprefork is running: master pid {pid} (from {target.pid_file}); "
                f"no control socket at {target.socket_path}, so no scoreboard"
            )
        raise typer.Exit(EXIT_OK)
    typer.echo(show(snapshot, as_json), nl=False)


def _watch(
    target: Target, as_json: bool, interval: float, count: int | None, requests: bool = False
) -> NoReturn:
    clear = CLEAR if sys.stdout.isatty() else ""
    shown = 0
    try:
        while count is None or shown < count:
            if shown:
                time.sleep(interval)
            snapshot = fetch_snapshot(target, requests)
            if snapshot is None:
                not_running(target, "it went away" if shown else "nothing answers")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{clear}{stamp}  (every {interval:g}s, Ctrl-C to quit)\n", nl=False)
            typer.echo(show(snapshot, as_json), nl=False)
            sys.stdout.flush()
            shown += 1
    except KeyboardInterrupt:
        typer.echo("")
    raise typer.Exit(EXIT_OK)


@ctl_app.command()
@with_target
def graceful(target: Target) -> None:
    """Graceful restart (USR1): new generation first, then drain the old; rolls back on failure."""
    change_pool(target, protocol.request("graceful"), Command.GRACEFUL)


@ctl_app.command()
@with_target
def restart(target: Target) -> None:
    """Restart (HUP): re-read the config, stop every worker now, start a new generation."""
    change_pool(target, protocol.request("restart"), Command.RESTART)


@ctl_app.command()
@with_target
def stop(
    target: Target,
    now: Annotated[
        bool, typer.Option("--now", help="abort in-flight requests (QUIT) instead of draining")
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            "-t",
            metavar="DURATION",
            help="drain for at most this long (e.g. 10s); default: the server's graceful_timeout",
        ),
    ] = None,
) -> None:
    """Stop (TERM): close the listeners, let workers finish in-flight requests, then exit."""
    seconds = None
    if timeout is not None:
        try:
            seconds = units.parse_duration(timeout)
        except ValueError as exc:
            fail(f"--timeout {timeout!r}: {exc}")
    request = protocol.request("stop", now=now, timeout=seconds)
    drain = 0.0 if now else (seconds if seconds is not None else target.config.graceful_timeout)
    run_command(
        target,
        request,
        Command.STOP_NOW if now else Command.STOP,
        timeout=drain + 30.0,
        stops=True,
        stop_wait=drain + 10.0,
    )


@ctl_app.command("graceful-stop")
@with_target
def graceful_stop(target: Target) -> None:
    """Graceful stop (WINCH): like stop, but in-flight requests may take as long as they need."""
    request = protocol.request("graceful-stop")
    run_command(target, request, Command.GRACEFUL_STOP, timeout=None, stops=True)


@ctl_app.command(context_settings={"ignore_unknown_options": True})
@with_target
def scale(
    target: Target,
    n: Annotated[
        str,
        typer.Argument(
            metavar="N|+1|-1", help="set min_workers to N, or raise/lower it by one (TTIN/TTOU)"
        ),
    ],
) -> None:
    """Change the floor of active workers (min_workers), clamped to max_workers."""
    try:
        request = protocol.request("scale", n=n)
    except ProtocolViolation:
        fail(f"scale: expected a worker count, +1 or -1, not {n!r}")
    change_pool(target, request, {"+1": Command.SCALE_UP, "-1": Command.SCALE_DOWN}.get(n))


@ctl_app.command("reopen-logs")
@with_target
def reopen_logs(target: Target) -> None:
    """Reopen the log files in the master and every worker (after logrotate moved them)."""
    change_pool(target, protocol.request("reopen-logs"), Command.REOPEN_LOGS)


@ctl_app.command()
@with_target
def dump(
    target: Target,
    slot: Annotated[
        int, typer.Argument(metavar="SLOT", help="the worker's slot (ctl status)", min=0)
    ],
) -> None:
    """Print the live stacks of every thread and asyncio task of one worker; it keeps serving."""
    run_command(target, protocol.request("dump", slot=slot), None, timeout=STATUS_TIMEOUT)


@ctl_app.command()
@with_target
def upgrade(target: Target) -> None:
    """Re-exec the master (USR2) with its listeners: new code, Python or binds, no failed request;
    the old master drains once the new one serves, and keeps serving if it cannot start."""
    change_pool(target, protocol.request("upgrade"), Command.UPGRADE)


@ctl_app.command("set")
@with_target
def set_(
    target: Target,
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="the setting's name (e.g. min_workers)")
    ],
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="as in the config file (e.g. 4, 30s)")
    ],
) -> None:
    """Change a live setting now, without a restart: log_level, access_log, min/max_workers,
    min/max_spare_slots, max_requests_per_worker, request_timeout. Kept across graceful restarts
    until the config file changes it; check-config shows it as coming from "ctl"."""
    run_command(target, protocol.request("set", key=key, value=value), None, timeout=STATUS_TIMEOUT)
