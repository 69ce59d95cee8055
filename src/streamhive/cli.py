"""``streamhive serve | config-reference | hash-password | sign-url | gen-cert | bench``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .config import ConfigError, load_config, reference_markdown
from .server import Server

log = logging.getLogger("streamhive")


async def serve(config_path: str | None) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"streamhive: config error:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = Server(config)
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("streamhive %s serving:", __version__)
    for line in server.urls():
        log.info("  %s", line)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    return 0


def _run(coro: object) -> int:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:  # load testing: bench/ of a source checkout, imported lazily
        from . import benchcli

        return benchcli.main(args_in[1:])
    parser = argparse.ArgumentParser(prog="streamhive", description="A live media server.")
    parser.add_argument("--version", action="version", version=f"streamhive {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="run the server")
    serve_p.add_argument("--config", "-c", help="YAML config file (defaults when absent)")
    sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    sub.add_parser(
        "hash-password", help="read a password on stdin, print its hash for auth.users[].password_hash"
    )
    sign_p = sub.add_parser("sign-url", help="print the ?expires=...&sign=... query of a signed URL")
    sign_p.add_argument("path", help="path name, e.g. live/cam1")
    sign_p.add_argument("--secret", required=True, help="auth.signed_urls.secret")
    sign_p.add_argument("--action", choices=("read", "publish"), default="read")
    sign_p.add_argument("--expires-in", type=int, default=3600, help="seconds the URL stays valid")
    cert_p = sub.add_parser("gen-cert", help="write a self-signed cert.pem and key.pem (development)")
    cert_p.add_argument("folder", nargs="?", default=".")
    cert_p.add_argument(
        "--host", action="append", help="host names/addresses (default localhost, 127.0.0.1, ::1)"
    )
    sub.add_parser(
        "bench",
        help="load-test a server: bench play URL | publish URL | room WS_URL | compare | profile (needs a source checkout)",
        add_help=False,
    )
    args = parser.parse_args(args_in)
    if args.command == "config-reference":
        print(reference_markdown())
        return 0
    if args.command == "hash-password":
        from .auth.passwords import hash_password

        password = sys.stdin.readline().rstrip("\n")
        if not password:
            print("no password on stdin", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    if args.command == "sign-url":
        from .auth.signed import sign_query

        print(sign_query(args.secret, args.action, args.path.strip("/"), int(time.time()) + args.expires_in))
        return 0
    if args.command == "gen-cert":
        from .tls import self_signed_certificate

        hosts = tuple(args.host) if args.host else ("localhost", "127.0.0.1", "::1")
        cert, key = self_signed_certificate(Path(args.folder), hosts)
        print(f"{cert}\n{key}")
        return 0
    return _run(serve(args.config))


if __name__ == "__main__":
    sys.exit(main())
