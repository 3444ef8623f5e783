"""What the CLI prints reaches a terminal only as text: every string a model, a task or a status can carry is shown
with its control codes made visible, never sent raw (an ESC sequence in a summary could clear the screen, forge a
line, set the window title or hide a link's address; a bidi override could reorder what is read)."""

from __future__ import annotations

import re

import typer

CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 but tab and newline, DEL, C1, and the Unicode bidi controls."""
IN_A_CELL = re.compile("[\t\n]")


def visible(text: str, *, one_line: bool = False) -> str:
    """The text with each control code written out (`\\x1b`, `\\u202e`); `one_line` escapes tab and newline too."""
    shown = CONTROLS.sub(_written, text)
    return IN_A_CELL.sub(_written, shown) if one_line else shown


def _written(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def emit(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """typer.echo for anything that carries data: control codes made visible first."""
    typer.echo(visible(text), err=err, nl=nl)
