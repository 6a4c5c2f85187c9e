"""Only the filtered, sorted query row of ``python -m bench``, on the cached stores.

    .venv/bin/python -m bench.query                      # N = 1,000 and 10,000, over the socket
    .venv/bin/python -m bench.query --sizes 10000 --inproc   # plus the in-process breakdown

Over the socket: a real ``octostored`` (bench/daemon.py) opens the file store of
``bench/.stores/n<N>-...`` (the snapshot cache is kept in ``--cache-dir`` so later
runs start warm), then times ``--calls`` calls of the harness's query (bench/run.py's
FILTER and ORDER, limit 100) and prints p50 / p99.  ``--inproc`` also reads the store
in this process (pickled under the cache dir for the next time) and times each step of
the handler: candidate lookup + filter, top 100, rows, orjson encoding.
"""

from __future__ import annotations

import argparse
import glob
import os
import pickle
import sys
import time
from typing import Any

from bench.daemon import Daemon
from bench.generate import load_manifest
from bench.run import FILTER, ORDER
from bench.stats import summary
from bench.worker_client import REPO


def _store(stores_dir: str, n: int) -> dict[str, Any]:
    bases = sorted(glob.glob(os.path.join(stores_dir, f"n{n}-*")))
    for base in bases:
        m = load_manifest(base)
        if m is not None:
            return m
    raise SystemExit(f"no store of {n} runs in {stores_dir}: run `python -m bench --sizes {n}` once")


def _ms(s: dict[str, Any]) -> str:
    return f"p50 {s['median'] * 1000:.2f} ms / p99 {s['p99'] * 1000:.2f} ms"


def socket_query(m: dict[str, Any], cache: str, calls: int) -> dict[str, Any]:
    root = m["paths"]["file_root"]
    d = Daemon(os.path.join(cache, "d"), os.path.join(cache, "snapshots"))
    d.start()
    try:
        with d.client() as c:
            c.call("octostore/open", root=root)
            c.call("octostore/sync", root=root)
            d.wait_idle()
            args = {"root": root, "filter": FILTER, "order_by": ORDER, "limit": 100}
            for _ in range(10):  # warm-up: compiled filter, lookup table, caches
                c.call("octostore/runs", args)
            xs = []
            cpu = d.cpu_s()
            for _ in range(calls):
                t = time.perf_counter()
                res = c.call("octostore/runs", args)
                xs.append(time.perf_counter() - t)
            cpu = d.cpu_s() - cpu
    finally:
        d.stop()
    return {"summary": summary(xs), "total": res["total"], "cpu_ms": cpu * 1000 / calls}


def _index(m: dict[str, Any], cache: str) -> Any:
    from octostored.index.state import RootIndex
    from octostored.sources.filestore import scan_store

    path = os.path.join(cache, f"runs-{len(m['run_ids'])}.pickle")
    try:
        with open(path, "rb") as f:
            runs = pickle.load(f)
    except OSError:
        runs = scan_store(m["paths"]["mlruns"], "file").runs
        with open(path + ".tmp", "wb") as f:
            pickle.dump(runs, f)
        os.replace(path + ".tmp", path)
    idx = RootIndex(m["paths"]["file_root"], "bench")
    idx.apply({r.run_id: r for r in runs}, {})
    return idx


def inproc(m: dict[str, Any], cache: str, calls: int) -> None:
    import orjson

    from octostored.query import compile_filter, parse_order_by, search_page
    from octostored.rpc.handlers.runs import search_runs
    from octostored.rpc.params import Params

    idx = _index(m, cache)

    class _Root:
        path = idx.root
        index = idx

    def t(fn: Any) -> dict[str, Any]:
        for _ in range(5):
            fn()
        xs = []
        for _ in range(calls):
            s = time.perf_counter()
            fn()
            xs.append(time.perf_counter() - s)
        return summary(xs)

    runs = list(idx.runs.values())
    order = parse_order_by(ORDER)
    pred = compile_filter(FILTER)
    print(f"  in process, {len(runs)} runs:")
    print(f"    search_page (filter + top 100): "
          f"{_ms(t(lambda: search_page(runs, FILTER, ORDER, 'active', 100, 0, idx.runs_with)))}")
    cands = idx.runs_with("params", "model").get("rf", [])
    print(f"    select over {len(cands)} candidates: {_ms(t(lambda: pred.select_stage(cands, 'active')))}")
    hits = pred.select_stage(cands, "active")
    key = order.key_function(hits)
    import heapq
    print(f"    top 100 of {len(hits)} hits: {_ms(t(lambda: heapq.nsmallest(100, hits, key=key)))}")
    params = {"root": idx.root, "filter": FILTER, "order_by": ORDER, "limit": 100}
    print(f"    handler (search_runs): "
          f"{_ms(t(lambda: search_runs(_Root, Params('octostore/runs', params))))}")
    reply = search_runs(_Root, Params("octostore/runs", params))
    env = {"jsonrpc": "2.0", "id": 1, "result": reply}
    print(f"    orjson of the reply ({len(orjson.dumps(env))} bytes): "
          f"{_ms(t(lambda: orjson.dumps(env, default=lambda o: o.__bytes__())))}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.query", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--inproc", action="store_true", help="also time the handler's steps in process")
    ap.add_argument("--no-socket", action="store_true", help="only the in-process breakdown")
    ap.add_argument("--stores-dir", default=os.path.join(REPO, "bench", ".stores"))
    ap.add_argument("--cache-dir", default=os.path.join(REPO, "bench", ".stores", "query-cache"))
    a = ap.parse_args(argv)
    print(f"load: {os.getloadavg()[0]:.2f}", flush=True)
    for n in [int(s) for s in a.sizes.split(",") if s.strip()]:
        m = _store(a.stores_dir, n)
        cache = os.path.join(a.cache_dir, str(n))
        os.makedirs(cache, exist_ok=True)
        print(f"N = {n}:", flush=True)
        if not a.no_socket:
            r = socket_query(m, cache, a.calls)
            print(f"  over the socket: {_ms(r['summary'])}, {r['total']} hits, daemon CPU "
                  f"{r['cpu_ms']:.2f} ms a call", flush=True)
        if a.inproc:
            inproc(m, cache, max(50, a.calls // 4))
    print(f"load: {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
