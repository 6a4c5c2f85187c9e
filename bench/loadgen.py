"""Concurrent clients for the concurrency benchmark (``python -m bench.loadgen``).

Runs ``--clients`` AsyncClients in one process, each issuing one request at a
time for ``--seconds``: a filtered and sorted search (limit 100), a run
detail, a metric history downsampled to 500 points and a listing page of 100,
in turn.  Prints one JSON line: requests, errors, throughput and latency
percentiles per kind and overall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from octostored.client import AsyncClient


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def one_client(i: int, sock: str, root: str, run_ids: list[str], until: float,
                     lat: dict[str, list[float]], errors: list[str]) -> None:
    rng = random.Random(i)
    c = AsyncClient(sock, timeout=60)
    await c.connect(autostart=False)
    kinds = ("search", "run", "history", "page")
    k = i % len(kinds)
    try:
        while time.perf_counter() < until:
            kind = kinds[k % len(kinds)]
            k += 1
            if kind == "search":
                args = {"root": root, "filter": "metrics.m1 < 0.5 and params.model = 'rf'",
                        "order_by": ["metrics.m2 DESC"], "limit": 100}
                method = "octostore/runs"
            elif kind == "run":
                args = {"root": root, "run_id": rng.choice(run_ids)}
                method = "octostore/run"
            elif kind == "history":
                args = {"root": root, "run_ids": [rng.choice(run_ids)], "keys": ["m1"],
                        "max_points": 500}
                method = "octostore/metric_history"
            else:
                args = {"root": root, "limit": 100, "offset": rng.randrange(max(1, len(run_ids) - 100))}
                method = "octostore/runs"
            t = time.perf_counter()
            try:
                await c.call(method, args)
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(f"{kind}: {exc}")
                continue
            lat.setdefault(kind, []).append(time.perf_counter() - t)
    finally:
        await c.close()


async def amain(a: argparse.Namespace) -> dict:
    with open(a.run_ids) as f:
        run_ids = json.load(f)
    lat: dict[str, list[float]] = {}
    errors: list[str] = []
    t0 = time.perf_counter()
    until = t0 + a.seconds
    await asyncio.gather(*(one_client(i, a.socket, a.root, run_ids, until, lat, errors)
                           for i in range(a.clients)))
    elapsed = time.perf_counter() - t0
    every = [x for xs in lat.values() for x in xs]
    return {
        "clients": a.clients, "seconds": elapsed, "requests": len(every), "errors": len(errors),
        "first_errors": errors[:5], "throughput": len(every) / elapsed,
        "p50": pct(every, 0.5), "p99": pct(every, 0.99),
        "kinds": {k: {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99)} for k, v in lat.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--run-ids", required=True, help="JSON file with a list of run ids")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(amain(a))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
