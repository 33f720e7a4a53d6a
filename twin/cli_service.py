"""Command line for the platform service.

serve [SCENARIO] [--db URL] [--port P] [--host H] [--mode sim|live] [--speed X]
      [--drivers emulated|real] [--tick-s S] [--subnet CIDR | --miners A,B,...] [live options]
    run the REST API; the submitted workloads enter the scheduler of a twin of SCENARIO:
    in sim mode a sandbox on the wall clock (accelerated by --speed), in live mode the live
    controller on the wall clock, driving emulated or real miners (the ``live`` command's
    options; --speed then replays the price signal).
keys create --role customer|operator|admin [--customer NAME] [--db URL]
    create an API key; prints it as the last line (and a TOTP secret for staff keys).
audit verify [--db URL]
    check the audit log's hash chain; exit 1 and say where it breaks.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.cli_live import add_device_options


def add_service_parsers(commands: Any, add_set: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``serve``, ``keys`` and ``audit`` to the main parser's subparsers."""
    serve = commands.add_parser("serve", help="run the platform REST API")
    serve.add_argument("scenario", type=Path, nargs="?", default=Path("scenarios/baseline.yaml"))
    serve.add_argument("--db", help="database URL (default sqlite:///results/service/hcp.db)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--mode", choices=("sim", "live"), default="sim")
    serve.add_argument(
        "--speed",
        type=float,
        help="sim: simulated s per wall s (default 60); live: price-signal s replayed per "
        "wall s (default 1)",
    )
    serve.add_argument("--rate-per-s", type=float, default=200.0, help="per API key")
    serve.add_argument("--burst", type=float, default=400.0, help="per API key")
    serve.add_argument("--ssl-keyfile", help="TLS private key (PEM); with --ssl-certfile")
    serve.add_argument("--ssl-certfile", help="TLS certificate chain (PEM)")
    serve.add_argument(
        "--no-background-demand",
        action="store_true",
        help="run only the API's workloads, not the scenario's synthetic demand",
    )
    add_device_options(serve)  # used with --mode live
    add_set(serve)
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; prints it last")
    create.add_argument("--role", required=True, choices=("customer", "operator", "admin"))
    create.add_argument("--customer", help="customer name (customer keys)")
    create.add_argument("--db", help="database URL")
    create.set_defaults(handler=_keys_create)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.add_argument("--db", help="database URL")
    revoke.set_defaults(handler=_keys_revoke)

    workloads = commands.add_parser("workloads", help="submit and follow workloads via the API")
    workload_commands = workloads.add_subparsers(dest="workloads_command", required=True)
    submit = workload_commands.add_parser("submit", help="submit a workload")
    submit.add_argument("--duration-s", type=float, required=True, help="estimated run [s]")
    submit.add_argument("--gpus", type=int, default=1)
    submit.add_argument("--gpu-type")
    submit.add_argument("--type", dest="workload_type", help="PRD workload type")
    submit.add_argument("--pricing", default="pay_per_use")
    status = workload_commands.add_parser("status", help="one workload")
    status.add_argument("workload_id")
    listing = workload_commands.add_parser("list", help="my workloads")
    listing.add_argument("--status")
    cancel = workload_commands.add_parser("cancel", help="cancel a workload")
    cancel.add_argument("workload_id")
    for parser in (submit, status, listing, cancel):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="API base URL")
        parser.add_argument("--key", help="API key (default $HCP_API_KEY)")
        parser.set_defaults(handler=_workloads)

    audit = commands.add_parser("audit", help="audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser("verify", help="check the audit log's hash chain")
    verify.add_argument("--db", help="database URL")
    verify.set_defaults(handler=_audit_verify)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from twin.cli import InputError, _load
    from twin.cli_live import live_options
    from twin.service.api.app import ServiceConfig, create_app
    from twin.service.http_protocol import CoalescingHttpToolsProtocol
    from twin.service.status_sync import StatusFeed, callback_secret
    from twin.service.twin_process import TwinProcess, TwinProcessError

    scenario = _load(args)
    speed = args.speed if args.speed is not None else (1.0 if args.mode == "live" else 60.0)
    live = live_options(args, speed) if args.mode == "live" else None
    secret = callback_secret()
    # The twin's status changes go straight from its process to the writer process.
    feed_end, twin_end = multiprocessing.get_context("spawn").Pipe(duplex=False)
    bridge = TwinProcess(
        scenario,
        speed=speed,
        background_demand=not args.no_background_demand,
        live=live,
        status_feed=StatusFeed(twin_end),
    )
    app = create_app(
        ServiceConfig(
            db_url=args.db,
            bridge=bridge,
            rate_per_s=args.rate_per_s,
            burst=args.burst,
            callback_secret=secret,
            writer_process=True,
            status_feed=feed_end,
        )
    )
    _exit_on_sigterm()
    _settle_garbage_collector()
    try:
        bridge.start()
    except TwinProcessError as error:
        raise InputError(str(error)) from None
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            http=CoalescingHttpToolsProtocol,
            ssl_keyfile=args.ssl_keyfile,
            ssl_certfile=args.ssl_certfile,
        )
    finally:
        bridge.stop()
    return 0


GC_GEN0_THRESHOLD = 50_000
"""Allocations between young-generation collections in ``serve`` (Python's default: 700)."""


def _settle_garbage_collector() -> None:
    """Move everything loaded at startup out of the collector's sight (``gc.freeze``) and
    collect the young generation less often: a long-running service otherwise rescans its
    imported modules and caches in full collections, which shows as latency spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


def _exit_on_sigterm() -> None:
    """Make SIGTERM end the service with ``SystemExit(0)`` so that its ``finally`` stops the
    twin gracefully (a live twin then stops its loop, drivers and emulated miners). uvicorn
    handles SIGTERM while it serves and raises it again after its own shutdown: by default
    that would kill the process before the twin is told to stop."""

    def exit_cleanly(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, exit_cleanly)


def _keys_create(args: argparse.Namespace) -> int:
    from twin.cli import InputError
    from twin.service.keys import KeyError_, create_key

    try:
        key = create_key(args.db, args.role, args.customer)
    except KeyError_ as error:
        raise InputError(str(error)) from None
    print(f"key id: {key.key_id} role: {key.role} customer: {key.customer_id or '-'}")
    if key.totp_secret:
        print(f"totp secret (add to an authenticator app): {key.totp_secret}")
    print(key.key)
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from twin.cli import InputError
    from twin.service.keys import KeyError_, revoke_key

    try:
        revoke_key(args.db, args.key_id)
    except KeyError_ as error:
        raise InputError(str(error)) from None
    print(f"revoked {args.key_id}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from twin.service.audit import verify
    from twin.service.db.engine import make_engine, session_factory

    engine = make_engine(args.db)
    try:
        with session_factory(engine)() as session:
            report = verify(session)
    finally:
        engine.dispose()
    if report.ok:
        print(f"audit log intact: {report.count} entries, head {report.head_hash[:16]}")
        return 0
    print(
        f"audit log broken at entry {report.first_bad_id} (position {report.first_bad_index}): "
        f"{report.reason}"
    )
    return 1


def _workloads(args: argparse.Namespace) -> int:
    import json
    import os

    from twin.cli import InputError
    from twin.service.sdk import ApiError, Client

    key = args.key or os.environ.get("HCP_API_KEY")
    if not key:
        raise InputError("--key: give an API key or set HCP_API_KEY")
    client = Client(args.url, key)
    try:
        if args.workloads_command == "submit":
            requirements = {"estimated_duration_s": args.duration_s, "gpu_count": args.gpus}
            if args.gpu_type:
                requirements["gpu_type"] = args.gpu_type
            result: object = client.submit(
                requirements, workload_type=args.workload_type, pricing=args.pricing
            )
        elif args.workloads_command == "status":
            result = client.status(args.workload_id)
        elif args.workloads_command == "cancel":
            result = client.cancel(args.workload_id)
        else:
            result = list(client.list(status=args.status))
    except ApiError as error:
        raise InputError(str(error)) from None
    print(json.dumps(result, indent=2, default=str))
    return 0
