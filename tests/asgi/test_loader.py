"""asgi/loader.py: importing "module:attr" from temporary modules, one-line errors, ASGI 2 wrapping."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aioprefork.asgi.loader import ASGI2App, load_app
from aioprefork.errors import AppLoadError

_counter = itertools.count()

ASGI3_SOURCE = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi3"})
"""


@pytest.fixture
def make_module(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Write a uniquely named module (or package) into tmp_path; return its import name."""
    names: list[str] = []
    saved_path = list(sys.path)

    def make(source: str, *, package: bool = False, sub: str = "") -> str:
        name = f"aiopf_test_app_{next(_counter)}"
        names.append(name)
        body = textwrap.dedent(source)
        if package:
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text("")
            (tmp_path / name / f"{sub}.py").write_text(body)
            return f"{name}.{sub}"
        (tmp_path / f"{name}.py").write_text(body)
        return name

    yield make
    sys.path[:] = saved_path
    for module in list(sys.modules):
        if any(module == n or module.startswith(n + ".") for n in names):
            del sys.modules[module]


async def call(app: Any, scope: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Drive an ASGI 3 callable once with a real receive/send pair; return what it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope or {"type": "http", "path": "/"}, receive, send)
    return sent


async def test_asgi3_function_returned_as_is(
    make_module: Callable[..., str], tmp_path: Path
) -> None:
    name = make_module(ASGI3_SOURCE)
    app = load_app(f"{name}:app", app_dir=str(tmp_path))
    assert app is sys.modules[name].app
    assert (await call(app))[1]["body"] == b"asgi3"


def test_app_dir_goes_first_on_sys_path(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module(ASGI3_SOURCE)
    load_app(f"{name}:app", app_dir=str(tmp_path))
    assert sys.path[0] == str(tmp_path)
    load_app(f"{name}:app", app_dir=str(tmp_path))
    assert sys.path.count(str(tmp_path)) == 1


def test_relative_app_dir_is_made_absolute(
    make_module: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = make_module(ASGI3_SOURCE)
    monkeypatch.chdir(tmp_path)
    load_app(f"{name}:app")  # app_dir defaults to "."
    assert sys.path[0] == str(tmp_path)


def test_dotted_attribute_and_package(make_module: Callable[..., str], tmp_path: Path) -> None:
    source = ASGI3_SOURCE + "\nclass Holder:\n    pass\nobj = Holder()\nobj.app = app\n"
    name = make_module(source, package=True, sub="web")
    app = load_app(f"{name}:obj.app", app_dir=str(tmp_path))
    assert app is sys.modules[name].app


@pytest.mark.parametrize("path", ["myapp", "myapp:", ":app", "", "  :  "])
def test_missing_colon_or_part(path: str) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app(path)
    assert str(info.value) == f"invalid app {path!r}: expected module:attribute, e.g. myapp:app"


def test_module_not_found(tmp_path: Path) -> None:
    saved = list(sys.path)
    try:
        with pytest.raises(AppLoadError) as info:
            load_app("aiopf_no_such_module:app", app_dir=str(tmp_path))
    finally:
        sys.path[:] = saved
    message = str(info.value)
    assert message.startswith(
        "cannot import app module 'aiopf_no_such_module': no module named 'aiopf_no_such_module'"
    )
    assert str(tmp_path) in message and "--app-dir" in message


def test_submodule_of_existing_package_not_found(
    make_module: Callable[..., str], tmp_path: Path
) -> None:
    package = make_module(ASGI3_SOURCE, package=True, sub="web").split(".")[0]
    with pytest.raises(AppLoadError, match=rf"cannot import app module '{package}\.nope'"):
        load_app(f"{package}.nope:app", app_dir=str(tmp_path))


def test_import_error_inside_the_module_surfaces(
    make_module: Callable[..., str], tmp_path: Path
) -> None:
    name = make_module("import aiopf_missing_dependency\n" + ASGI3_SOURCE)
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    assert str(info.value) == (
        f"error importing {name!r}: No module named 'aiopf_missing_dependency'"
        f" (at {tmp_path / name}.py:1)"
    )
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_an_error_two_modules_deep_names_the_app_frame_and_keeps_the_traceback(
    make_module: Callable[..., str], tmp_path: Path
) -> None:
    """The one line says file:line of the innermost frame of the app's code (not os.environ's,
    not importlib's); the traceback rides along in `detail`, for the log, once."""
    settings = make_module("import os\n\nDATABASE_URL = os.environ['AIOPF_NO_SUCH_VARIABLE']\n")
    name = make_module(f"import {settings}\n" + ASGI3_SOURCE)
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    error = info.value
    assert str(error) == (
        f"error importing {name!r}: KeyError: 'AIOPF_NO_SUCH_VARIABLE'"
        f" (at {tmp_path / settings}.py:3)"
    )
    detail = error.detail
    assert detail.startswith("Traceback (most recent call last):")
    assert f'{tmp_path / name}.py", line 1' in detail
    assert f'{tmp_path / settings}.py", line 3' in detail
    assert detail.endswith("KeyError: 'AIOPF_NO_SUCH_VARIABLE'")
    assert "importlib" not in detail and "loader.py" not in detail


def test_a_syntax_error_names_its_line(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module("x = 1\n\ndef broken(:\n")
    with pytest.raises(AppLoadError, match=rf"\(at {tmp_path / name}\.py:3\)$"):
        load_app(f"{name}:app", app_dir=str(tmp_path))


def test_a_misspelt_module_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app("aiopf_mian:app", app_dir=str(tmp_path))
    assert info.value.detail == ""


def test_import_name_error_inside_the_module(
    make_module: Callable[..., str], tmp_path: Path
) -> None:
    name = make_module("from os import no_such_name\n")
    with pytest.raises(AppLoadError, match=rf"^error importing '{name}': cannot import name"):
        load_app(f"{name}:app", app_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1 / 0\n", "ZeroDivisionError: division by zero"),
        ("def broken(:\n", "SyntaxError: "),
        ("raise RuntimeError('line one\\nline two')\n", "RuntimeError: line one line two"),
        ("import sys\nsys.exit(4)\n", "SystemExit: 4"),
    ],
)
def test_exception_at_import(
    make_module: Callable[..., str], tmp_path: Path, source: str, expected: str
) -> None:
    name = make_module(source)
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    assert str(info.value).startswith(f"error importing {name!r}: {expected}")
    assert "\n" not in str(info.value)


def test_attribute_missing(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module(ASGI3_SOURCE)
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:application", app_dir=str(tmp_path))
    assert str(info.value) == (
        f"app '{name}:application': module {name!r} has no attribute 'application' "
        "(check the name after the colon)"
    )
    with pytest.raises(AppLoadError, match=r"has no attribute 'app\.missing'"):
        load_app(f"{name}:app.missing", app_dir=str(tmp_path))


def test_not_callable(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module("app = 42\n")
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    assert str(info.value) == f"app '{name}:app' is not callable (int): expected an ASGI app"


async def test_factory(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module(ASGI3_SOURCE + "\ndef create_app():\n    return app\n")
    app = load_app(f"{name}:create_app", factory=True, app_dir=str(tmp_path))
    assert app is sys.modules[name].app


def test_factory_without_flag_gets_a_hint(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module(ASGI3_SOURCE + "\ndef create_app():\n    return app\n")
    with pytest.raises(
        AppLoadError, match="takes no arguments: if it is an app factory, pass --factory"
    ):
        load_app(f"{name}:create_app", app_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def create_app():\n    raise KeyError('DATABASE_URL')\n",
            "raised KeyError: 'DATABASE_URL'",
        ),
        ("def create_app(config):\n    return None\n", "raised TypeError: "),
        ("create_app = 'nope'\n", "is not callable (str)"),
        ("def create_app():\n    return 7\n", "returned by factory"),
    ],
)
def test_factory_failures(
    make_module: Callable[..., str], tmp_path: Path, source: str, expected: str
) -> None:
    name = make_module(source)
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:create_app", factory=True, app_dir=str(tmp_path))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


ASGI2_CLASS = """
class App:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await send({"type": "http.response.body", "body": self.scope["path"].encode()})
"""

ASGI2_FUNCTION = """
def app(scope):
    async def instance(receive, send):
        await send({"type": "http.response.body", "body": b"fn:" + scope["path"].encode()})
    return instance
"""


async def test_asgi2_class_is_wrapped(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module(ASGI2_CLASS)
    app = load_app(f"{name}:App", app_dir=str(tmp_path))
    assert isinstance(app, ASGI2App)
    assert await call(app, {"type": "http", "path": "/two"}) == [
        {"type": "http.response.body", "body": b"/two"}
    ]


async def test_asgi2_function_is_wrapped(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module(ASGI2_FUNCTION)
    app = load_app(f"{name}:app", app_dir=str(tmp_path))
    assert isinstance(app, ASGI2App)
    assert (await call(app))[0]["body"] == b"fn:/"


@pytest.mark.parametrize(
    "source",
    [
        # a callable instance with an async __call__
        "class App:\n    async def __call__(self, scope, receive, send):\n        pass\napp = App()\n",
        # a sync wrapper taking three arguments (a decorator returning the coroutine)
        "async def inner(scope, receive, send):\n    pass\n"
        "def app(scope, receive, send):\n    return inner(scope, receive, send)\n",
        # *args: unknown arity, assumed ASGI 3
        "async def _a(*args):\n    pass\nimport functools\napp = functools.partial(_a)\n",
        # an awaitable class: ASGI 3 per uvicorn
        "class app:\n    def __init__(self, scope, receive, send):\n        pass\n"
        "    def __await__(self):\n        return iter(())\n",
    ],
)
def test_asgi3_shapes_not_wrapped(
    make_module: Callable[..., str], tmp_path: Path, source: str
) -> None:
    name = make_module(source)
    app = load_app(f"{name}:app", app_dir=str(tmp_path))
    assert not isinstance(app, ASGI2App)
    assert app is sys.modules[name].app


def test_starlette_app(make_module: Callable[..., str], tmp_path: Path) -> None:
    name = make_module("from starlette.applications import Starlette\napp = Starlette()\n")
    app = load_app(f"{name}:app", app_dir=str(tmp_path))
    assert app is sys.modules[name].app


def test_bundled_examples() -> None:
    root = Path(__file__).resolve().parents[2]
    saved = list(sys.path)
    try:
        app = load_app("hello:app", app_dir=str(root / "examples"))
        assert not isinstance(app, ASGI2App)
    finally:
        sys.path[:] = saved
        sys.modules.pop("hello", None)
