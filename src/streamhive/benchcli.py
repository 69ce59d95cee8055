"""``streamhive bench ...``: finds the ``bench/`` folder of a source checkout and runs ``bench.cli``.

The load clients and peer-server comparisons live in ``bench/`` at the root of the repository
(they are not part of the installed package). This module only locates that folder: the current
directory or one above it, or the checkout this package was installed from (``pip install -e``).

``streamhive bench room URL --publishers P --subscribers S --seconds N [--server-pid PID]
[--profile FILE]`` loads an SFU room (streamhive's ``ws://HOST:PORT/rooms/NAME/ws`` or Janus's
videoroom at ``http://HOST:PORT/janus``) with :mod:`bench.roomclient`; the other subcommands are
``bench.cli``'s.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

NEEDS_CHECKOUT = (
    "streamhive bench needs the bench/ folder of a source checkout: run it from the repository root "
    "(git clone ...; pip install -e '.[bench]')"
)


def _is_checkout(path: Path) -> bool:
    return (path / "bench" / "loadclient.py").is_file() and (path / "bench" / "cli.py").is_file()


def find_checkout() -> Path | None:
    here = Path.cwd().resolve()
    candidates = [here, *here.parents]
    package = Path(__file__).resolve().parent  # src/streamhive in a checkout
    candidates += [package.parent.parent, package.parent]
    for path in candidates:
        if _is_checkout(path):
            return path
    return None


def main(argv: Sequence[str]) -> int:
    root = find_checkout()
    if root is None:
        print(NEEDS_CHECKOUT, file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    room = list(argv[:1]) == ["room"]
    try:
        cli = importlib.import_module("bench.roomclient" if room else "bench.cli")
    except ImportError as exc:
        print(f"{NEEDS_CHECKOUT}\n(import failed: {exc})", file=sys.stderr)
        return 2
    if room:
        return int(cli.main(list(argv[1:]), prog="streamhive bench room"))
    return int(cli.main(list(argv), prog="streamhive bench"))
