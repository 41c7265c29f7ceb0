"""`--ray [ADDRESS]`: train on a Ray cluster; the address is optional.

The option parser needs a value after an option that takes one, so a bare `--ray` (last, before
another option, or before the preset) is read as `--ray=` before parsing: "" means RAY_ADDRESS,
else a cluster started on this machine.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

RAY_HELP = ("Train on a Ray cluster: --ray alone (RAY_ADDRESS, else a cluster on this machine), "
            "--ray auto (the cluster this machine joined), or --ray ADDRESS. Needs: pip install 'optui[ray]'.")


def ray_option() -> Any:
    return typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP)


def expand_bare_ray(args: Optional[list[str]]) -> Optional[list[str]]:
    """args (None: sys.argv[1:]) with a bare `--ray` written as `--ray=`."""
    given = list(sys.argv[1:] if args is None else args)
    if "--ray" not in given:
        return args
    out = []
    for i, token in enumerate(given):
        following = given[i + 1] if i + 1 < len(given) else None
        bare = token == "--ray" and (following is None or following.startswith("-")
                                     or following.lower().endswith(".toml"))
        out.append("--ray=" if bare else token)
    return out


def address(value: Optional[str]) -> Optional[str]:
    """The --ray value as the service takes it: None (not asked), "" (default cluster) or an address."""
    return None if value is None else value.strip()


def check(value: Optional[str], headless: bool) -> None:
    """Refuse --ray where it cannot apply (the interactive session), or without Ray installed."""
    if value is None:
        return
    from ...errors import UsageError
    from ...service.remote import check_ray

    if not headless:
        raise UsageError("--ray trains a headless run: add --headless")
    check_ray()
