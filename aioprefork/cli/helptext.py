"""--help that stays whole in an 80-column terminal.

typer's rich tables give each option four columns (flag, --no-flag, metavar, help): with ~60
options and names like --no-balance-connections the help column shrinks to ~20 characters and
rich cuts what does not fit with an ellipsis, so defaults and AIOPREFORK_* names vanished. Here
each option is a heading line (its flags and metavar) and an indented paragraph, wrapped to the
terminal's width without ever breaking a word, grouped under the same panels as before.
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

from typer.core import TyperCommand

INDENT = "  "
BODY = "      "


def _width() -> int:
    """The terminal's columns (COLUMNS wins), at least 40 so a paragraph is never one word."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _paragraph(text: str, indent: str, width: int) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()),
        width=width - 1,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _heading(param: Any) -> str:
    """`--flag, -f METAVAR` (or `--flag, --no-flag`) for an option, the metavar for an argument."""
    metavar = param.metavar or (param.name or "").upper()
    if param.param_type_name != "option":
        return str(metavar)
    flags = ", ".join([*param.opts, *param.secondary_opts])
    if param.is_flag:
        return flags
    return f"{flags} {param.metavar or 'TEXT'}"


def render_help(command: Any, ctx: Any) -> str:
    """The whole help page as text, every line within the terminal's width when words allow."""
    width = _width()
    pieces = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"Usage: {ctx.command_path} {pieces}", ""]
    if command.help:
        lines += [*_paragraph(command.help, INDENT, width), ""]
    groups: dict[str, list[str]] = {}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        default_group = "Options" if param.param_type_name == "option" else "Arguments"
        group = getattr(param, "rich_help_panel", None) or default_group
        help_text: Any = getattr(param, "help", None) or ""
        entry = [INDENT + _heading(param)]
        if help_text:
            entry += _paragraph(str(help_text), BODY, width)
        groups.setdefault(group, []).extend(entry)
    for group, entries in groups.items():
        lines += [f"{group}:", *entries, ""]
    return "\n".join(lines).rstrip() + "\n"


class PlainHelpCommand(TyperCommand):
    """A typer command whose --help is render_help's text (for the commands with many options)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write(render_help(self, ctx))
