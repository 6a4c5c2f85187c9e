"""The fast paths of the cold index and the query agree with the exact ones they shortcut.

* a run's signature built from the ``fstat`` of the files the reader opens equals the one the
  verify pass builds with ``stat`` alone, for odd folders too (nested keys, symlinks, a FIFO,
  an unreadable file), and changes when any file does;
* the metric fast path (one regex pass, steps only) gives what the line-by-line parser gives;
* ``count_dirs`` counts what ``os.walk`` counts, and stops at its bound;
* ``RootIndex.apply(removed=...)`` removes a run only when no source has it any more, and the
  equality lookup (``runs_with``) gives the same pages as a scan of every run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from octostored.index.state import RootIndex
from octostored.model import Experiment, Run
from octostored.query import search_page
from octostored.sources import filestore
from octostored.sources.metricfile import latest_of, parse_points, scan_latest
from octostored.watch import count_dirs

T0 = 1_767_250_000_000


def _run_folder(base: Path, rid: str = "a" * 32) -> tuple[Path, Experiment]:
    exp_dir = base / "1"
    exp_dir.mkdir(parents=True)
    (exp_dir / "meta.yaml").write_text("experiment_id: '1'\nname: e\nlifecycle_stage: active\n"
                                       "artifact_location: x\n")
    rd = exp_dir / rid
    for sub in ("params", "tags", "metrics", "artifacts"):
        (rd / sub).mkdir(parents=True)
    (rd / "meta.yaml").write_text(
        f"run_id: {rid}\nrun_uuid: {rid}\nexperiment_id: '1'\nstatus: 3\nstart_time: {T0}\n"
        f"end_time: {T0 + 5}\nlifecycle_stage: active\nuser_id: u\nartifact_uri: x\n")
    (rd / "params" / "lr").write_text("0.1")
    (rd / "params" / "nested").mkdir()
    (rd / "params" / "nested" / "depth").write_text("3")
    (rd / "tags" / "mlflow.runName").write_text("r")
    (rd / "metrics" / "loss").write_text(f"{T0} 0.5 0\n{T0 + 1} 0.25 1\n")
    exp = filestore.read_experiment(str(exp_dir), "1", "s")
    assert exp is not None
    return rd, exp


def _same_signature(rd: Path, exp: Experiment) -> bytes:
    run, state = filestore.read_run(str(rd), exp, "s")
    assert run is not None
    assert state.signature == filestore.run_signature(str(rd)), "scan and verify disagree"
    return state.signature


def test_signature_of_the_read_equals_the_verify_walk(tmp_path: Path) -> None:
    rd, exp = _run_folder(tmp_path)
    sigs = [_same_signature(rd, exp)]
    os.symlink(rd / "params", rd / "params" / "loop")  # a symlink to a folder: not followed
    sigs.append(_same_signature(rd, exp))
    os.symlink(rd / "params" / "lr", rd / "tags" / "link")  # a symlink to a file: read
    sigs.append(_same_signature(rd, exp))
    os.symlink(rd / "nowhere", rd / "tags" / "dangling")
    sigs.append(_same_signature(rd, exp))
    os.mkfifo(rd / "params" / "fifo")
    sigs.append(_same_signature(rd, exp))
    (rd / "metrics" / "secret").write_text(f"{T0} 1.0 0\n")
    os.chmod(rd / "metrics" / "secret", 0)
    sigs.append(_same_signature(rd, exp))
    (rd / "inputs" / "abc").mkdir(parents=True)
    (rd / "inputs" / "abc" / "meta.yaml").write_text("source_type: DATASET\nsource_id: x\n")
    sigs.append(_same_signature(rd, exp))
    with open(rd / "metrics" / "loss", "a") as f:  # an append changes it
        f.write(f"{T0 + 2} 0.125 2\n")
    sigs.append(_same_signature(rd, exp))
    (rd / "params" / "nested" / "depth").write_text("4")  # a nested key rewritten, same size
    os.utime(rd / "params" / "nested" / "depth", ns=(1, 2))
    sigs.append(_same_signature(rd, exp))
    assert len(set(sigs)) == len(sigs)
    os.chmod(rd / "metrics" / "secret", 0o644)


def test_the_read_keeps_what_the_exact_reader_reports(tmp_path: Path) -> None:
    rd, exp = _run_folder(tmp_path)
    os.symlink(rd / "params", rd / "params" / "loop")
    os.mkfifo(rd / "tags" / "fifo")
    (rd / "metrics" / "noisy").write_bytes(b"%d 0.25 0\nhello world\n%d abc 1\n%d 0.75 2\n"
                                           % (T0, T0, T0))
    run, _ = filestore.read_run(str(rd), exp, "s")
    assert run is not None
    assert run.params == {"lr": "0.1", "nested/depth": "3"}
    assert run.metrics["loss"] == (0.25, T0 + 1, 1)
    assert run.metrics["noisy"] == (0.75, T0, 2)
    assert "params/loop: symlink to a folder; not followed" in run.warnings
    assert "tags/fifo: not a regular file" in run.warnings
    assert any(w.startswith("metrics/noisy line 2:") for w in run.warnings)
    assert any(w.startswith("metrics/noisy line 3:") for w in run.warnings)


def test_metric_fast_path_equals_the_line_parser() -> None:
    rng = random.Random(7)
    pieces = [b"%d" % T0, b"-3", b"0", b"1.5", b"nan", b"-inf", b"1e-05", b"2.5e+20", b"x",
              b"99999999999999999999", b"", b"1.2.3", b"007"]
    cases = [b"1 2 3\n", b"1 2\n3 4 5 6\n", b"1  2 3\n", b"1\t2 3\n", b"1 2 3\n\n", b"1 2 3",
             b"5 nan 2\n5 1.0 2\n", b"5 1.0 2\n5 nan 2\n", b"3 1.0 7\n2 2.0 7\n"]
    for _ in range(3000):
        lines = []
        for _ in range(rng.randint(1, 6)):
            n = rng.choice((3, 3, 3, 2, 4))
            lines.append(b" ".join(rng.choice(pieces) if rng.random() < 0.3 else
                                   b"%d" % rng.randint(0, 5) for _ in range(n)))
        cases.append(b"\n".join(lines) + (b"\n" if rng.random() < 0.9 else b""))
    for data in cases:
        points, consumed, warnings = parse_points(data)
        assert repr(scan_latest(data)) == repr((latest_of(points), consumed, warnings)), data


def test_count_dirs_counts_what_os_walk_counts(tmp_path: Path) -> None:
    rd, _ = _run_folder(tmp_path)
    (rd / "artifacts" / "model" / "data" / "deep").mkdir(parents=True)
    os.symlink(rd / "artifacts", rd / "artifacts" / "loop")
    walked = sum(1 for _ in os.walk(tmp_path))
    assert count_dirs([str(tmp_path)]) == walked
    assert count_dirs([str(tmp_path)], stop_after=3) == 3


def _run(rid: str, source: str, **kw: object) -> Run:
    return Run(run_id=rid, experiment_id="1", source=source, sources=[source], **kw)  # type: ignore[arg-type]


def test_apply_removed_drops_a_run_only_when_no_source_keeps_it() -> None:
    idx = RootIndex("/r", "i")
    idx.sources = {}
    idx.apply({"a": _run("a", "db"), "b": _run("b", "db")}, {})
    idx.apply({"b": _run("b", "files")}, {})
    assert idx.runs["b"].sources == ["db", "files"]
    ch = idx.apply({}, {}, removed={"db": ["a", "b", "zzz"]})
    assert ch is not None and ch.removed == ["a"] and ch.runs == []
    assert "a" not in idx.runs and idx.runs["b"].sources == ["files"]
    assert idx.apply({}, {}, removed={"db": ["a"]}) is None


def test_equality_lookup_gives_the_pages_a_full_scan_gives() -> None:
    rng = random.Random(3)
    idx = RootIndex("/r", "i")
    runs = {}
    for i in range(400):
        rid = f"{i:032x}"
        runs[rid] = _run(rid, "s", params={"model": rng.choice(["rf", "svm", "lr"])},
                         tags={"team": rng.choice(["a", "b"])},
                         metrics={"m": (rng.random(), 1, 0)}, start_time=rng.randint(0, 50),
                         lifecycle_stage=rng.choice(["active", "active", "deleted"]))
    idx.apply(runs, {})
    for flt in ("params.model = 'rf'", "metrics.m < 0.5 and tags.team = 'b'",
                "params.model = 'none'", "params.model != 'rf'", None):
        for view in ("active", "all"):
            want = search_page(list(idx.runs.values()), flt, ["metrics.m DESC"], view, 50, 5)
            got = search_page(list(idx.runs.values()), flt, ["metrics.m DESC"], view, 50, 5,
                              idx.runs_with)
            assert [r.run_id for r in got[1]] == [r.run_id for r in want[1]] and got[0] == want[0]
    # The lookup follows the index: a changed run is found under its new value.
    rid = next(iter(runs))
    idx.apply({rid: _run(rid, "s", params={"model": "new"})}, {})
    assert [r.run_id for r in idx.runs_with("params", "model")["new"]] == [rid]


def test_a_changed_run_shows_on_the_next_page_never_a_stale_row() -> None:
    """``octostore/runs`` reuses each run's encoded row; any change of the run, by a new
    record, by a source leaving it, or by a store read setting fields on a reused record,
    shows on the next page (encoded as the server encodes replies)."""
    import orjson

    from octostored.rpc.handlers.runs import search_runs
    from octostored.rpc.params import Params

    idx = RootIndex("/r", "i")
    idx.apply({f"{i:032x}": _run(f"{i:032x}", "db", params={"model": "rf"},
                                 metrics={"m": (i / 10, 1, 0)}, start_time=i) for i in range(10)}, {})

    class Root:  # what search_runs reads of a root
        path = "/r"
        index = idx

    def page(**extra: object) -> dict[str, dict[str, object]]:
        p = Params("octostore/runs", {"root": "/r", "filter": "params.model = 'rf'",
                                      "order_by": ["metrics.m DESC"], "limit": 5, **extra})
        reply = orjson.loads(orjson.dumps(search_runs(Root, p)))  # type: ignore[arg-type]
        return {r["run_id"]: r for r in reply["runs"]}

    top = f"{9:032x}"
    assert page()[top]["metrics"] == {"m": 0.9} and page()[top]["sources"] == ["db"]
    idx.apply({top: _run(top, "db", params={"model": "rf"}, metrics={"m": (5.0, 2, 1)},
                         start_time=9, status="FAILED")}, {})
    row = page()[top]
    assert row["metrics"] == {"m": 5.0} and row["status"] == "FAILED"
    assert row["clock"] == idx.tick
    idx.apply({top: _run(top, "files", params={"model": "rf"}, metrics={"m": (5.0, 2, 1)},
                         start_time=9, status="FAILED")}, {})
    assert page()[top]["sources"] == ["db", "files"]
    idx.apply({}, {}, removed={"files": [top]})  # changes the record in place
    assert page()[top]["sources"] == ["db"]
    idx.runs[top].experiment_key = "1@other"  # a store read setting a reused record's fields
    idx.runs[top].committed = True
    row = page()[top]
    assert row["experiment_key"] == "1@other" and row["committed"] is True
    # Asked-for columns are shaped per request, next to the cached full rows.
    assert page(columns=["metric.m"])[top]["params"] == {} and page()[top]["params"] == {
        "model": "rf"}


def test_a_search_in_a_worker_thread_sees_a_consistent_index_while_the_updater_writes() -> None:
    """``octostore/runs`` runs in a worker thread while the updater applies batches on the
    loop: with switches every microsecond, a search that iterated ``removed`` or the runs in
    Python raised 'dictionary changed size during iteration'."""
    import sys
    import threading

    from octostored.index.search import RunQuery

    idx = RootIndex("/r", "i")
    idx.apply({f"{i:032x}": _run(f"{i:032x}", "db", start_time=i) for i in range(3000)}, {})
    since = idx.clock
    idx.apply({}, {}, removed={"db": [f"{i:032x}" for i in range(1500)]})
    errors: list[BaseException] = []
    done = threading.Event()

    def searcher() -> None:
        try:
            while not done.is_set():
                idx.search(RunQuery(since=since, limit=10))
                idx.search(RunQuery(filter="attributes.start_time > 10", limit=10))
                idx.search(RunQuery(order_by=("attributes.start_time DESC",), limit=10))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=searcher)
    t.start()
    try:
        for n in range(300):  # runs come and go, tombstones grow and shrink
            new = {f"{9000 + n:032x}": _run(f"{9000 + n:032x}", "db", start_time=n)}
            idx.apply(new, {})
            idx.apply({}, {}, removed={"db": [f"{9000 + n - 1:032x}"]})
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(old)
    assert errors == []
