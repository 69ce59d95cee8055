"""A room worker process's entry point: ``python -m streamhive.servers.room_worker_main INDEX``.

A module of its own because ``python -m`` imports the package first, and importing streamhive
imports room_workers (the server uses it): running room_workers itself would execute a second
copy of it as ``__main__`` (runpy warns). This module is imported by nothing.
"""

import sys

from ..cli import _run
from .room_workers import serve_worker

if __name__ == "__main__":
    sys.exit(_run(serve_worker(int(sys.argv[1]))))
