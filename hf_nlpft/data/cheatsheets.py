"""(description, command) pairs from ``cheat``-style cheatsheets.

A sheet is a text file where ``# comment`` lines describe the command line(s) that follow:

.. code-block:: text

    # To extract an uncompressed archive:
    tar -xvf /path/to/foo.tar

A block is one or more consecutive comment lines (joined with a space, each without its ``#`` marks)
and the command lines after them. Blank lines between the comment and its first command line are
allowed (some sheets put one there); a blank line after a command line ends the block, and so does a
comment after a command line (some sheets show a command's output as a comment below it: that comment
becomes a block without a command) or after a blank line. Consecutive command lines are
kept together, joined by newlines: a comment describes the whole block below it, which is often one
multi-line command (a ``for`` loop, a pipeline continued with ``\\``, a recipe of steps) where the first
line alone would be wrong, or alternatives that each do what the comment says. Command lines keep their
text (inline ``# ...`` remarks included) but lose trailing whitespace and the indentation common to the
block.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator


def sheet_pairs(text: str) -> Iterator[tuple[str, str]]:
    """(comment, command block) pairs of one sheet, in file order; a block without a comment before
    it, or a comment without commands after it, yields a pair with an empty side."""
    comment: list[str] = []
    commands: list[str] = []
    gap = False  # a blank line since the last non-blank one
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            gap = True
            continue
        is_comment = stripped.startswith("#")
        # A comment after commands, or after a blank line, starts a new block; so does a command
        # after a blank line that follows commands.
        if (commands and (is_comment or gap)) or (comment and is_comment and gap):
            yield _pair(comment, commands)
            comment, commands = [], []
        if is_comment:
            comment.append(stripped.lstrip("#").strip())
        else:
            commands.append(line.rstrip())
        gap = False
    if comment or commands:
        yield _pair(comment, commands)


def _pair(comment: list[str], commands: list[str]) -> tuple[str, str]:
    return " ".join(part for part in comment if part), textwrap.dedent("\n".join(commands)).strip()
