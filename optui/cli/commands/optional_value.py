"""Options whose value may be left out (`--tensorboard` or `--tensorboard DIR`), which Typer does
not offer: the command line is completed with a marker value before Typer parses it."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

DEFAULT = "\0default"  # no path can contain NUL, so no folder is ever taken for it


def fill_optional_values(args: list[str], options: tuple[str, ...]) -> list[str]:
    """Give each of options that has no value the DEFAULT marker.

    An option has a value when it is written --opt=VALUE, or when the next word does not start
    with '-' (as click reads optional values); words after '--' are left alone.
    """
    out: list[str] = []
    for i, word in enumerate(args):
        out.append(word)
        if word == "--":
            out += args[i + 1:]
            break
        if word in options:
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or (following.startswith("-") and following != "-"):
                out.append(DEFAULT)
    return out


class OptionalValueCommand(TyperCommand):
    """A Typer command in which each of optional_value_options may be given without a value."""

    optional_value_options: tuple[str, ...] = ()

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, fill_optional_values(list(args), self.optional_value_options))


def optional_value_command(*options: str) -> type[OptionalValueCommand]:
    """A command class in which each of options may be given without its value."""
    return type("OptionalValueCommand", (OptionalValueCommand,), {"optional_value_options": options})
