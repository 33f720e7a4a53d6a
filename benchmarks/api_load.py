"""Load on the REST API from a separate process: latency, errors, highest sustained rate,
and no acknowledged workload lost to a SIGKILL under load.

1. Starts ``run.py serve`` (SQLite, sandbox twin at 60x) and, from this process, sends an
   open-loop mix of 50 % submits and 50 % status reads at ``--rate`` requests/s for
   ``--seconds`` (asyncio over 128 keep-alive connections, benchmarks/lean_http.py);
   reports p50/p99 latency, errors and the server's CPU time per request.
   Target at 500 req/s for 60 s: p50 <= 10 ms, p99 <= 50 ms, 0 errors.
2. Steps the rate up (``--ramp``, each step on a fresh server for ``--ramp-seconds``) and
   reports the highest rate held with p99 <= 50 ms and no errors.

Latencies are also given per request kind (submit, status). Server CPU counts the API
process and its children (the writer process and the twin).
3. Submits under load, SIGKILLs the server, restarts it, and counts acknowledged workloads
   missing (must be 0).

Usage: python benchmarks/api_load.py [--rate 500] [--seconds 60] [--ramp 300,400,...,1000]
       [--postgres postgresql://USER:PASSWORD@HOST/DB]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lean_http import LeanClient, LeanHttpError  # noqa: E402
from twin.service.keys import create_key  # noqa: E402
from twin.service.local_server import free_port, start_server  # noqa: E402

BODY = {"requirements": {"gpu_count": 1, "estimated_duration_s": 600}}
CONNECTIONS = 128
"""Keep-alive connections of the load generator (most requests in flight at once)."""


def start(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """The server under load: sandbox twin at 60x, rate limits out of the way."""
    extra = ["--speed", "60", "--rate-per-s", "100000", "--burst", "100000"]
    return start_server(db_url, port, extra)


async def load(url: str, key: str, rate: float, seconds: float) -> dict[str, float]:
    """Open-loop load; returns latency percentiles [ms], errors and achieved rate."""
    address = urllib.parse.urlsplit(url)
    client = LeanClient(
        address.hostname or "127.0.0.1", address.port or 80, {"X-API-Key": key}, CONNECTIONS
    )
    latencies: list[float] = []
    kinds: list[str] = []
    errors = 0
    ids: list[str] = []

    async def one(i: int) -> None:
        nonlocal errors
        began = time.perf_counter()
        kind = "submit" if i % 2 == 0 or not ids else "status"
        try:
            if kind == "submit":
                reply = await client.post("/v1/workloads/submit", BODY)
                if reply.status == 201:
                    ids.append(reply.body["workload_id"])
            else:
                reply = await client.get(f"/v1/workloads/{ids[i % len(ids)]}/status")
            if reply.status >= 400:
                errors += 1
        except LeanHttpError:
            errors += 1
        latencies.append((time.perf_counter() - began) * 1000.0)
        kinds.append(kind)

    start = time.perf_counter()
    tasks = []
    total = int(rate * seconds)
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await client.close()
    values = np.array(latencies)
    of_kind = np.array(kinds)
    result = {
        "rate_asked": rate,
        "requests": float(total),
        "achieved_per_s": round(total / elapsed, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "errors": float(errors),
    }
    for kind in ("submit", "status"):
        chosen = values[of_kind == kind]
        result[f"{kind}_p50_ms"] = round(float(np.percentile(chosen, 50)), 2)
        result[f"{kind}_p99_ms"] = round(float(np.percentile(chosen, 99)), 2)
    return result


def _server_processes(pid: int) -> list[Path]:
    """/proc folders of process ``pid`` and its children (the writer, the twin)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            found.append(stat.parent)
    return found


def cpu_s(pid: int) -> float:
    """CPU time [s] of process ``pid`` and its children that ran so far (Linux /proc)."""
    tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for folder in _server_processes(pid):
        with contextlib.suppress(OSError):
            fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * tick_s
    return total


def rss_mib(pid: int) -> float:
    """Resident memory [MiB] of process ``pid`` and its children (Linux /proc)."""
    total_kib = 0
    for folder in _server_processes(pid):
        with contextlib.suppress(OSError, StopIteration):
            status = (folder / "status").read_text().splitlines()
            total_kib += int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
    return total_kib / 1024.0


def measured(server: subprocess.Popen[bytes], url: str, key: str, rate: float, seconds: float):
    """:func:`load`, plus the server's CPU time per request [ms] and its resident memory
    before and after [MiB] (the writer and twin processes included)."""
    before = cpu_s(server.pid)
    rss_before = rss_mib(server.pid)
    result = asyncio.run(load(url, key, rate, seconds))
    result["server_cpu_ms_per_request"] = round(
        (cpu_s(server.pid) - before) * 1000.0 / result["requests"], 3
    )
    result["server_rss_mib_before"] = round(rss_before, 1)
    result["server_rss_mib_after"] = round(rss_mib(server.pid), 1)
    return result


def crash_test(db_url: str, key: str, port: int) -> dict[str, int]:
    """Submit from a thread while the server is SIGKILLed; restart; count the missing."""
    server = start(db_url, port)
    acknowledged: list[str] = []

    async def submit_forever() -> None:
        client = LeanClient("127.0.0.1", port, {"X-API-Key": key}, 8)
        while True:
            try:
                reply = await client.post("/v1/workloads/submit", BODY)
            except LeanHttpError:
                return
            if reply.status == 201:
                acknowledged.append(reply.body["workload_id"])

    async def run() -> None:
        task = asyncio.create_task(submit_forever())
        await asyncio.sleep(3.0)
        server.send_signal(signal.SIGKILL)
        await task

    asyncio.run(run())
    server.wait()
    server = start(db_url, port)

    async def count_missing() -> int:
        client = LeanClient("127.0.0.1", port, {"X-API-Key": key}, 8)
        replies = [await client.get(f"/v1/workloads/{w}/status") for w in acknowledged]
        await client.close()
        return sum(reply.status != 200 for reply in replies)

    missing = asyncio.run(count_missing())
    server.send_signal(signal.SIGTERM)
    server.wait(15)
    return {"acknowledged_before_kill": len(acknowledged), "missing_after_restart": missing}


def fresh_run(
    rate: float, seconds: float, postgres_url: str | None
) -> tuple[dict[str, float], str, str]:
    """``measured`` on a fresh server and a fresh database (SQLite file, or PostgreSQL on
    the server of ``postgres_url``): no backlog from an earlier run. Returns the figures,
    the database URL and a customer key on it."""
    if postgres_url is None:
        folder = Path(tempfile.mkdtemp(prefix="hcp-load-"))
        db_url = f"sqlite:///{folder / 'hcp.db'}"
    else:
        db_url = fresh_postgres_database(postgres_url)
    key = create_key(db_url, "customer", "Load").key
    port = free_port()
    server = start(db_url, port)
    try:
        return measured(server, f"http://127.0.0.1:{port}", key, rate, seconds), db_url, key
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)


CREATED_DATABASES: list[str] = []
"""URLs of the PostgreSQL databases this run created (dropped at its end)."""


def fresh_postgres_database(server_url: str) -> str:
    """A new, empty database on the PostgreSQL server of ``server_url`` (whose user may
    create databases); returns its URL."""
    name = f"hcp_load_{uuid.uuid4().hex[:10]}"
    _administer(server_url, f'CREATE DATABASE "{name}"')
    created = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    CREATED_DATABASES.append(created)
    return created


def drop_created_databases() -> None:
    for created in CREATED_DATABASES:
        name = make_url(created).database
        _administer(created, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', on="postgres")
    CREATED_DATABASES.clear()


def _administer(url: str, statement: str, on: str | None = None) -> None:
    """Run ``statement`` outside a transaction, on ``url``'s database or on ``on``."""
    target = make_url(url) if on is None else make_url(url).set(database=on)
    admin = create_engine(target, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _line(result: dict[str, float]) -> str:
    return (
        f"{result['achieved_per_s']:.0f} req/s: p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, errors {result['errors']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ramp", default="300,400,500,600,700,800,900,1000")
    parser.add_argument("--ramp-seconds", type=float, default=20.0)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on PostgreSQL: a server URL whose user may create databases (each run "
        "gets a fresh one); default: a fresh SQLite file per run",
    )
    args = parser.parse_args()
    _say(f"target: {args.rate:.0f} req/s for {args.seconds:.0f} s ...")
    target, db_url, key = fresh_run(args.rate, args.seconds, args.postgres)
    _say(f"  {_line(target)}")
    figures: dict[str, object] = {"target": target}
    ramp = []
    for rate in [float(x) for x in args.ramp.split(",") if x]:
        _say(f"ramp: {rate:.0f} req/s for {args.ramp_seconds:.0f} s ...")
        result, _, _ = fresh_run(rate, args.ramp_seconds, args.postgres)
        _say(f"  {_line(result)}")
        ramp.append(result)
        if result["errors"] or result["p99_ms"] > 50.0:
            break
    held = [r["rate_asked"] for r in ramp if not r["errors"] and r["p99_ms"] <= 50.0]
    figures["ramp"] = ramp
    figures["highest_rate_held"] = max(held) if held else 0.0
    _say("SIGKILL under load, restart, count the acknowledged workloads missing ...")
    figures["sigkill"] = crash_test(db_url, key, free_port())
    drop_created_databases()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
