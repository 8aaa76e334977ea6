"""Import the application named "module:attribute" and hand back an ASGI 3 callable.

Internal; called once per worker (and by check-config). Every failure is an errors.AppLoadError
whose message is ONE line naming the thing and the fix; the original exception is chained
(`__cause__`) for a debug traceback. An ImportError raised *inside* the user's module is reported
as that error, not as "module not found". ASGI 2 apps (a callable taking only `scope` and
returning `instance(receive, send)`) are wrapped into ASGI 3, detected the way uvicorn does.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable
from typing import Any

from aioprefork.asgi.types import ASGIApp, Receive, Scope, Send
from aioprefork.errors import AppLoadError

__all__ = ["ASGI2App", "ASGIApp", "load_app", "preload_app"]

_EXAMPLE = "expected module:attribute, e.g. myapp:app"


class ASGI2App:
    """Adapts an ASGI 2 app (`app(scope)` -> `instance(receive, send)`) to ASGI 3."""

    __slots__ = ("app",)

    def __init__(self, app: Callable[[Any], Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def load_app(path: str, *, factory: bool = False, app_dir: str = ".") -> ASGIApp:
    """Import `path` ("module:attr", attr may be dotted) with `app_dir` first on sys.path."""
    module_name, colon, attr = path.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not colon or not module_name or not attr:
        raise AppLoadError(f"invalid app {path!r}: {_EXAMPLE}")
    directory = os.path.abspath(app_dir)
    if sys.path[:1] != [directory]:
        sys.path.insert(0, directory)
    module = _import(module_name, directory)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"app {path!r}: module {module_name!r} has no attribute {attr!r} "
                "(check the name after the colon)"
            ) from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f"app factory {path!r} is not callable ({type(obj).__name__})")
        try:
            obj = obj()
        except Exception as exc:
            raise _in_app_code(f"app factory {path!r} raised {_describe(exc)}", exc) from exc
        what = f"the app returned by factory {path!r}"
    else:
        what = f"app {path!r}"
    if not callable(obj):
        raise AppLoadError(f"{what} is not callable ({type(obj).__name__}): expected an ASGI app")
    if not factory and _max_positional(obj) == 0:
        raise AppLoadError(f"{what} takes no arguments: if it is an app factory, pass --factory")
    if not _is_asgi3(obj):
        return ASGI2App(obj)
    app: ASGIApp = obj
    return app


def preload_app(path: str, *, app_dir: str = ".") -> None:
    """Import the app's module (not its factory: that runs in each worker), so that forked
    workers find it in sys.modules, in memory they share with the master. AppLoadError."""
    module_name = path.partition(":")[0].strip()
    directory = os.path.abspath(app_dir)
    if sys.path[:1] != [directory]:
        sys.path.insert(0, directory)
    _import(module_name, directory)


def _import(module_name: str, directory: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            if not os.access(directory, os.R_OK | os.X_OK):  # e.g. --user cannot enter it
                raise AppLoadError(
                    f"cannot import app module {module_name!r}: permission denied reading "
                    f"{directory} (as uid {os.geteuid()}); make it readable by that user or "
                    "move the app"
                ) from exc
            raise AppLoadError(
                f"cannot import app module {module_name!r}: no module named {missing!r} "
                f"(searched {directory} and sys.path; check the name or --app-dir)"
            ) from exc
        raise _in_app_code(f"error importing {module_name!r}: {_one_line(str(exc))}", exc) from exc
    except ImportError as exc:
        raise _in_app_code(f"error importing {module_name!r}: {_one_line(str(exc))}", exc) from exc
    except (Exception, SystemExit) as exc:
        raise _in_app_code(f"error importing {module_name!r}: {_describe(exc)}", exc) from exc


def _in_app_code(message: str, exc: BaseException) -> AppLoadError:
    """An error raised by the application's own code: the one line names where (file:line of the
    innermost frame of the app's code), and `detail` carries the traceback for the log."""
    stack = _app_stack(exc)
    where = _innermost_app_frame(stack)
    if isinstance(exc, SyntaxError) and exc.filename:  # raised by the compiler: no frame of its own
        where = f"{_shown_path(exc.filename)}:{exc.lineno}"
    at = f" (at {where})" if where else ""
    return AppLoadError(f"{message}{at}", detail=_format(exc, stack))


def _own_frame(filename: str) -> bool:
    """importlib and this module: noise in an app's import traceback."""
    return filename.startswith("<frozen importlib") or filename in (__file__, importlib.__file__)


def _app_stack(exc: BaseException) -> traceback.StackSummary:
    frames = traceback.extract_tb(exc.__traceback__)
    return traceback.StackSummary.from_list([f for f in frames if not _own_frame(f.filename)])


def _library_paths() -> tuple[str, ...]:
    """Where the standard library, installed packages and aioprefork itself live."""
    paths = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # aioprefork/
    return tuple(sorted(os.path.join(os.path.realpath(p), "") for p in paths if p))


def _innermost_app_frame(stack: traceback.StackSummary) -> str:
    """`file:line` of the deepest frame that is the application's, not a library's: where an
    operator looks first. Falls back to the deepest frame of all."""
    libraries = _library_paths()

    def is_library(filename: str) -> bool:
        real = os.path.realpath(filename)
        return filename.startswith("<") or "site-packages" in real or real.startswith(libraries)

    frames = [f for f in stack if not is_library(f.filename)] or list(stack)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{_shown_path(frame.filename)}:{frame.lineno}"


def _shown_path(filename: str) -> str:
    """Relative to the working directory when under it (as an editor would open it)."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def _format(exc: BaseException, stack: traceback.StackSummary) -> str:
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = stack
    return "".join(summary.format()).rstrip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    # a SyntaxError's str() ends with "(file, line N)": the caller names the place itself
    text = _one_line(exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _max_positional(obj: Any) -> int | None:
    """How many positional arguments `obj` accepts; None when unknown or unbounded (*args)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


def _is_asgi3(app: Any) -> bool:
    """uvicorn's interface="auto": coroutine functions / awaitable classes are ASGI 3; a callable
    that accepts exactly one positional argument (scope) is ASGI 2; anything else is ASGI 3."""
    if inspect.isclass(app):
        return hasattr(app, "__await__") or _max_positional(app) != 1
    if inspect.iscoroutinefunction(app):
        return True
    if inspect.iscoroutinefunction(getattr(app, "__call__", None)):  # noqa: B004 (the method)
        return True
    return _max_positional(app) != 1
