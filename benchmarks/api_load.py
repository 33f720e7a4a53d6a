"""Load on the REST API from a separate process: latency, errors, highest sustained rate,
and no acknowledged workload lost to a SIGKILL under load.

1. Starts ``run.py serve`` (SQLite, sandbox twin at 60x) and, from this process, sends an
   open-loop mix of 50 % submits and 50 % status reads at ``--rate`` requests/s for
   ``--seconds`` (asyncio, up to 256 in flight); reports p50/p99 latency and errors.
   Target at 500 req/s for 60 s: p50 <= 10 ms, p99 <= 50 ms, 0 errors.
2. Steps the rate up (``--ramp``) and reports the highest rate held with p99 <= 50 ms and
   no errors.
3. Submits under load, SIGKILLs the server, restarts it, and counts acknowledged workloads
   missing (must be 0).

Usage: python benchmarks/api_load.py [--rate 500] [--seconds 60] [--ramp 250,500,750,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.service.keys import create_key  # noqa: E402
from twin.service.local_server import free_port, start_server  # noqa: E402

BODY = {"requirements": {"gpu_count": 1, "estimated_duration_s": 600}}


def start(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """The server under load: sandbox twin at 60x, rate limits out of the way."""
    extra = ["--speed", "60", "--rate-per-s", "100000", "--burst", "100000"]
    return start_server(db_url, port, extra)


async def load(url: str, key: str, rate: float, seconds: float) -> dict[str, float]:
    """Open-loop load; returns latency percentiles [ms], errors and achieved rate."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    latencies: list[float] = []
    errors = 0
    ids: list[str] = []
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": key}, limits=limits, timeout=10
    ) as client:
        semaphore = asyncio.Semaphore(256)

        async def one(i: int) -> None:
            nonlocal errors
            async with semaphore:
                began = time.perf_counter()
                try:
                    if i % 2 == 0 or not ids:
                        reply = await client.post("/v1/workloads/submit", json=BODY)
                        if reply.status_code == 201:
                            ids.append(reply.json()["workload_id"])
                    else:
                        reply = await client.get(f"/v1/workloads/{ids[i % len(ids)]}/status")
                    if reply.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - began) * 1000.0)

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
    values = np.array(latencies)
    return {
        "rate_asked": rate,
        "requests": float(total),
        "achieved_per_s": round(total / elapsed, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "errors": float(errors),
    }


def crash_test(db_url: str, key: str, port: int) -> dict[str, int]:
    """Submit from a thread while the server is SIGKILLed; restart; count the missing."""
    server = start(db_url, port)
    acknowledged: list[str] = []

    async def submit_forever() -> None:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=5
        ) as client:
            while True:
                try:
                    reply = await client.post("/v1/workloads/submit", json=BODY)
                except httpx.HTTPError:
                    return
                if reply.status_code == 201:
                    acknowledged.append(reply.json()["workload_id"])

    async def run() -> None:
        task = asyncio.create_task(submit_forever())
        await asyncio.sleep(3.0)
        server.send_signal(signal.SIGKILL)
        await task

    asyncio.run(run())
    server.wait()
    server = start(db_url, port)
    missing = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as client:
        for workload_id in acknowledged:
            if client.get(f"/v1/workloads/{workload_id}/status").status_code != 200:
                missing += 1
    server.send_signal(signal.SIGTERM)
    server.wait(15)
    return {"acknowledged_before_kill": len(acknowledged), "missing_after_restart": missing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ramp", default="250,500,750,1000")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hcp-load-"))
    db_url = f"sqlite:///{folder / 'hcp.db'}"
    key = create_key(db_url, "customer", "Load").key
    port = free_port()
    server = start(db_url, port)
    url = f"http://127.0.0.1:{port}"
    try:
        figures: dict[str, object] = {
            "target": asyncio.run(load(url, key, args.rate, args.seconds))
        }
        ramp = []
        for rate in [float(x) for x in args.ramp.split(",") if x]:
            result = asyncio.run(load(url, key, rate, 10.0))
            ramp.append(result)
            if result["errors"] or result["p99_ms"] > 50.0:
                break
        held = [r["rate_asked"] for r in ramp if not r["errors"] and r["p99_ms"] <= 50.0]
        figures["ramp_10s"] = ramp
        figures["highest_rate_held"] = max(held) if held else 0.0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    figures["sigkill"] = crash_test(db_url, key, free_port())
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
