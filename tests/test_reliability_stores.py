"""Damaged stores cost warnings, never the daemon: the generated corpus of ``broken_stores``.

One real daemon reads a root holding a file store full of damage (every kind the
generator knows, next to healthy runs in the same experiments) and three broken
SQLite files.  It must answer within a deadline (a named pipe or ``/dev/zero``
where a file should be must not stall it), index every healthy run exactly,
index every readable damaged run with the data that is still good, and put a
warning naming the file and the problem where a person will see it: on the
run, on its experiment, or on its store when the run had to be skipped.

When the tests run as root the daemon runs with its capabilities dropped
(``setpriv --bounding-set=-all``), so ``chmod 000`` damage bites it too.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from octostored.sources import metricfile
from octostored.sources.metayaml import MetaError, parse_meta

from . import broken_stores as bs
from .conftest import DaemonProc, wait_for

DEADLINE = 60.0
"""Seconds the daemon may take to index the whole corpus (it takes about one)."""


class UnprivilegedDaemon(DaemonProc):
    """A daemon that file permissions apply to, even when the tests run as root."""

    def start(self) -> UnprivilegedDaemon:
        prefix = (["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
                  if os.geteuid() == 0 and shutil.which("setpriv") else [])
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "octostored.daemon", "--socket", self.socket],
                env=self.env(), stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        wait_for(self._answers, timeout=30, what="the daemon to answer")
        return self


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="oct-st-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(base: Path) -> Iterator[UnprivilegedDaemon]:
    (base / "d").mkdir()
    d = UnprivilegedDaemon(base / "d").start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def corpus(base: Path) -> bs.Corpus:
    root = base / "repo"
    root.mkdir()
    return bs.build(root)


@pytest.fixture(scope="module")
def indexed(daemon: UnprivilegedDaemon, corpus: bs.Corpus) -> dict[str, Any]:
    """Open the corpus's root once; what the daemon then says about it."""
    started = time.monotonic()
    with daemon.client(timeout=DEADLINE) as c:
        c.call("octostore/open", root=str(corpus.root))
        c.call("octostore/sync", root=str(corpus.root))
        took = time.monotonic() - started
        runs = c.call("octostore/runs", root=str(corpus.root), view="all", limit=10_000)
        exps = c.call("octostore/experiments", root=str(corpus.root), view="all")
        status = c.call("octostore/status")
    root = next(r for r in status["roots"] if r["root"] == str(corpus.root))
    return {"took": took, "runs": {r["run_id"]: r for r in runs["runs"]},
            "experiments": exps["experiments"], "root": root,
            "sources": {s["id"]: s for s in root["sources"]}}


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return got == want or (math.isnan(got) and math.isnan(want))
    return bool(got == want)


def check_run(got: dict[str, Any], want: bs.Expected) -> list[str]:
    """Differences between a run row and what the corpus says it must be."""
    diffs = []
    for f in ("experiment_id", "run_name", "status", "lifecycle_stage", "start_time",
              "end_time", "params", "tags"):
        if got[f] != getattr(want, f):
            diffs.append(f"{f}: {got[f]!r} != {getattr(want, f)!r}")
    if set(got["metrics"]) != set(want.metrics) or not all(
            _same(got["metrics"][k], v) for k, v in want.metrics.items()):
        diffs.append(f"metrics: {got['metrics']!r} != {want.metrics!r}")
    return diffs


PERMISSIONS_APPLY = os.geteuid() != 0 or shutil.which("setpriv") is not None
"""False only as root without setpriv: then ``chmod 000`` damage is not damage to the daemon."""


def applicable(corpus: bs.Corpus) -> list[bs.Damage]:
    return [d for d in corpus.damages if PERMISSIONS_APPLY or not d.needs_permissions]


def unaffected(corpus: bs.Corpus) -> set[str]:
    """Runs whose only damage is a permission the daemon does not feel (root, no setpriv)."""
    return {d.run_id for d in corpus.damages if d.run_id and d not in applicable(corpus)}


def test_the_daemon_indexes_the_corpus_in_time(indexed: dict[str, Any], daemon: DaemonProc) -> None:
    assert indexed["took"] < DEADLINE
    assert indexed["root"]["state"] == "ready", indexed["root"]["warnings"]
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_every_healthy_run_is_indexed_exactly(indexed: dict[str, Any], corpus: bs.Corpus) -> None:
    runs = indexed["runs"]
    problems = {want.run_name: check_run(runs[rid], want)
                for rid, want in corpus.healthy.items() if rid in runs}
    assert {k: v for k, v in problems.items() if v} == {}
    assert sorted(set(corpus.healthy) - set(runs)) == []


def test_readable_damaged_runs_keep_their_good_data(indexed: dict[str, Any],
                                                    corpus: bs.Corpus) -> None:
    runs = indexed["runs"]
    expected = corpus.expected_runs()
    damaged = {d.expect.run_id: d.expect for d in applicable(corpus) if d.expect is not None}
    assert len(damaged) >= 10
    for rid, want in damaged.items():
        assert rid in runs, f"{want.run_name}: a readable damaged run is missing"
        assert check_run(runs[rid], want) == [], want.run_name
    # Nothing else: no run made of a broken folder, no key made of a symlink loop.
    assert set(runs) - unaffected(corpus) == set(expected) - unaffected(corpus)


def test_skipped_runs_are_not_indexed(indexed: dict[str, Any], corpus: bs.Corpus) -> None:
    skipped = {d.run_id for d in applicable(corpus) if d.level == "source" and d.run_id}
    assert len(skipped) >= 12
    assert skipped.isdisjoint(indexed["runs"])


def test_every_damage_has_a_warning_naming_file_and_problem(
        indexed: dict[str, Any], corpus: bs.Corpus) -> None:
    missing = []
    for d in applicable(corpus):
        if d.level == "run":
            where = indexed["runs"].get(d.run_id or "", {}).get("warnings", [])
        elif d.level == "experiment":
            where = [w for e in indexed["experiments"] if e["key"] == d.experiment_id
                     for w in e["warnings"]]
        else:
            where = indexed["sources"].get(d.source, {}).get("warnings", [])
        if not any(d.file in w and re.search(d.problem, w, re.I) for w in where):
            missing.append(f"{d.kind}: no warning naming {d.file!r} and /{d.problem}/ in {where}")
    assert missing == []


def test_healthy_runs_carry_no_warnings(indexed: dict[str, Any], corpus: bs.Corpus) -> None:
    noisy = {corpus.healthy[r].run_name: indexed["runs"][r]["warnings"]
             for r in corpus.healthy if indexed["runs"][r]["warnings"]}
    assert noisy == {}


def test_a_100k_step_metric_is_read_whole_and_served_downsampled(
        daemon: DaemonProc, indexed: dict[str, Any], corpus: bs.Corpus) -> None:
    rid, key, n = corpus.long_metric
    with daemon.client() as c:
        run = c.call("octostore/run", root=str(corpus.root), run_id=rid)
        assert run["metrics"][key]["step"] == n - 1
        hist = c.call("octostore/metric_history", root=str(corpus.root), run_ids=[rid],
                      keys=[key], max_points=500)["series"][0]
    assert hist["points"] == n and len(hist["x"]) <= 500
    assert hist["x"][0] == 0 and hist["x"][-1] == n - 1 and hist["y"][-1] == (n - 1) / n


def test_a_half_written_line_counts_once_it_is_finished(
        daemon: DaemonProc, indexed: dict[str, Any], corpus: bs.Corpus) -> None:
    rid, key, path = corpus.half_line
    with daemon.client() as c:
        before = c.call("octostore/run", root=str(corpus.root), run_id=rid)["metrics"][key]
        assert (before["value"], before["step"]) == (0.8, 1)
        with open(path, "ab") as f:
            f.write(b"5 2\n")  # the writer finishes its line: "... 0.75 2"
        c.call("octostore/sync", root=str(corpus.root))
        after = c.call("octostore/run", root=str(corpus.root), run_id=rid)["metrics"][key]
        hist = c.call("octostore/metric_history", root=str(corpus.root), run_ids=[rid],
                      keys=[key])["series"][0]
    assert (after["value"], after["step"]) == (0.75, 2)
    assert hist["y"] == [0.9, 0.8, 0.75]


def test_a_locked_sqlite_store_keeps_its_runs_and_says_why(daemon: DaemonProc, base: Path) -> None:
    root = base / "locked-repo"
    root.mkdir()
    want = bs.write_sqlite(root / "mlflow.db", runs=4)
    with daemon.client() as c:
        c.call("octostore/open", root=str(root))
        c.call("octostore/sync", root=str(root))
        listed = c.call("octostore/runs", root=str(root))["runs"]
        assert {r["run_id"] for r in listed} == set(want)
        writer = sqlite3.connect(root / "mlflow.db", isolation_level=None, timeout=0)
        try:
            writer.execute("BEGIN EXCLUSIVE")  # a writer in the middle of a commit
            writer.execute("UPDATE runs SET status = 'FAILED'")
            os.utime(root / "mlflow.db")  # the file changed: the daemon must try to read it
            c.call("octostore/sync", root=str(root))
            during = c.call("octostore/runs", root=str(root))["runs"]
            src = c.call("octostore/open", root=str(root))["sources"][0]
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert {r["run_id"] for r in during} == set(want), "a locked database lost its runs"
        assert any("locked" in w and "mlflow.db" in w for w in src["warnings"]), src
        os.utime(root / "mlflow.db")
        c.call("octostore/sync", root=str(root))
        src = c.call("octostore/open", root=str(root))["sources"][0]
        assert src["warnings"] == [] and src["runs"] == len(want)


def test_mlflow_reads_the_healthy_runs_as_the_corpus_says(base: Path) -> None:
    """The generator writes MLflow's layout: MLflow itself agrees on every healthy run."""
    root = base / "mlflow-check"
    root.mkdir()
    corpus = bs.build(root, long_steps=10)
    # MLflow refuses a store with any of this damage, so give it the healthy experiments only.
    clean = root / "clean"
    clean.mkdir()
    for exp in ("0", "1", "abc"):
        shutil.copytree(corpus.store / exp, clean / exp, symlinks=True)
    refused = [e for e in corpus.healthy.values() if not e.mlflow_reads]
    assert refused
    for e in refused:
        shutil.rmtree(clean / e.experiment_id / e.run_id)
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    mlf = MlflowClient(tracking_uri=clean.as_uri())
    got = {r.info.run_id: r for r in mlf.search_runs(["0", "1", "abc"], run_view_type=ViewType.ALL,
                                                     max_results=1000)}
    want = {rid: e for rid, e in corpus.healthy.items() if e.experiment_id in ("1", "abc")
            and e.mlflow_reads and (corpus.store / e.experiment_id / rid).exists()}
    assert set(got) == set(want)
    for rid, e in want.items():
        r = got[rid]
        assert (r.info.run_name, r.info.status, r.info.lifecycle_stage, r.info.start_time,
                r.info.end_time) == (e.run_name, e.status, e.lifecycle_stage, e.start_time,
                                     e.end_time), e.run_name
        assert r.data.params == e.params and r.data.tags == e.tags, e.run_name
        assert r.data.metrics.keys() == e.metrics.keys(), e.run_name
        for k, v in r.data.metrics.items():
            assert _same(bs.json_value(v), e.metrics[k]), (e.run_name, k)


# -- the parsers themselves, fuzzed ---------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

_ints = st.integers(-(2**70), 2**70)
_line = st.one_of(
    st.tuples(_ints, st.floats(allow_nan=True), _ints).map(
        lambda t: f"{t[0]} {t[1]!r} {t[2]}\n".encode()),
    st.binary(max_size=30).map(lambda b: b + b"\n"),
    st.text(alphabet="0123456789 .-einfa\t", max_size=25).map(lambda s: (s + "\n").encode()),
    # Numbers, but not three of them: "1 2" then "3 4 5 6" also makes six tokens on two lines.
    st.lists(st.integers(0, 99), min_size=1, max_size=5).map(
        lambda xs: (" ".join(map(str, xs)) + "\n").encode()),
)


def _reference(data: bytes) -> list[tuple[int, float, int]]:
    """The obvious line-by-line reading of complete lines (what MLflow does, minus crashing)."""
    out = []
    for line in data[: data.rfind(b"\n") + 1].split(b"\n"):
        parts = line.strip().split(b" ")
        if len(parts) not in (2, 3, 5) or not line.strip():
            continue
        try:
            ts, v, step = int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            continue
        if all(-(2**63) <= x < 2**63 for x in (ts, step)):
            out.append((ts, v, step))
    return out


@FUZZ
@given(st.lists(_line, max_size=30), st.binary(max_size=12))
@example([b"1 2\n", b"3 4 5 6\n"], b"")
def test_metric_parsing_never_raises_and_reads_every_good_line(lines: list[bytes],
                                                                tail: bytes) -> None:
    data = b"".join(lines) + tail.replace(b"\n", b"")
    points, consumed, warnings = metricfile.parse_points(data)
    complete = _reference(data)
    assert len(points) in (len(complete), len(complete) + 1)  # + a finished-looking tail
    for got, want in zip(points, complete):
        assert got[0] == want[0] and got[2] == want[2] and _same(got[1], want[1]), (got, want)
    assert consumed == data.rfind(b"\n") + 1
    latest, used, _ = metricfile.scan_latest(data)
    assert used == consumed
    if complete:
        assert latest is not None


@FUZZ
@given(st.binary(max_size=300))
def test_meta_parsing_raises_only_meta_error(data: bytes) -> None:
    try:
        out = parse_meta(data)
    except MetaError:
        return
    assert isinstance(out, dict)


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63),
                    st.text(max_size=20), st.floats(allow_nan=False))


@FUZZ
@given(st.dictionaries(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
                       _scalar, min_size=1, max_size=8))
def test_meta_fast_path_agrees_with_pyyaml(meta: dict[str, Any]) -> None:
    import yaml

    text = yaml.safe_dump(meta, default_flow_style=False, allow_unicode=True)
    want = yaml.safe_load(text)
    got = parse_meta(text.encode())
    assert got.keys() == want.keys()
    for k in want:
        assert _same(got[k], want[k]) and type(got[k]) is type(want[k]), (k, text)


_words = st.sampled_from([
    "yes", "No", "TRUE", "False", "on", "OFF", "null", "Null", "NULL", "~", "y", "n", "0x1F",
    "1_000", "+1", "1e5", ".5", "1.", "-.inf", ".nan", "0755", "2001-12-14", "12:30:00", "-",
    "'quoted'", "'it''s'", "\"double\"", "plain text", "a:b", "a: b", "x #c", "", "[]", "{}",
    "[1, 2]", "&anchor x", "*alias", "!tag x", "|", ">", "%", "@at", "`tick`", "=", "?", "1.0",
    "-7", "0", "007", "3.14e+2", "-0", "file:///a/b", "ünï", "tab\there", "25c02d8ac6e2",
    "1e5x", "12:30", "0x1Fz", "0b12", "2001-12-14t21:59:43.10-05:00", "1_0a", "9a: b", "3 #c",
    "1z", "7T", "4d 5"])
_keys = st.sampled_from(["run_id", "status", "no", "yes", "true", "null", "Off", "a.b", "a-b",
                         "_x", "1", "-k", "k k", "'q'"])


@FUZZ
@given(st.lists(st.tuples(_keys, st.one_of(_words, st.text(max_size=12))), min_size=1,
                max_size=6))
def test_meta_fast_path_never_disagrees_with_pyyaml(pairs: list[tuple[str, str]]) -> None:
    """Hand-edited meta.yaml files are not what safe_dump writes: whatever a line says, the
    fast parser reads it as PyYAML does, or hands it to PyYAML."""
    import yaml

    text = "".join(f"{k}: {v}\n" for k, v in pairs)
    try:  # the loader MLflow reads meta.yaml with (its YamlSafeLoader)
        want = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        want = None
    if not isinstance(want, dict) or not want:
        with pytest.raises(MetaError):
            parse_meta(text.encode())
        return
    got = parse_meta(text.encode())
    assert got.keys() == want.keys(), text
    for k in want:
        assert _same(got[k], want[k]) and type(got[k]) is type(want[k]), (k, text)


@FUZZ
@given(st.lists(_line, max_size=25), st.integers(1, 80), st.integers(0, 25))
def test_chunked_and_incremental_metric_reads_agree_with_one_read(
        lines: list[bytes], chunk: int, split: int) -> None:
    """A metric file read in chunks of any size, or in two goes (a writer appended in
    between), gives what one read of the whole file gives: same latest point, same end."""
    import tempfile as tf

    from octostored.sources import filestore

    data = b"".join(lines)
    with tf.TemporaryDirectory() as d:
        path = os.path.join(d, "m")
        Path(path).write_bytes(data)
        whole = filestore._read_metric_file(path, "m", os.stat(path), None, [])
        saved = filestore.METRIC_CHUNK
        filestore.METRIC_CHUNK = chunk
        try:
            chunked = filestore._read_metric_file(path, "m", os.stat(path), None, [])
            Path(path).write_bytes(b"".join(lines[:split]))
            first = filestore._read_metric_file(path, "m", os.stat(path), None, [])
            Path(path).write_bytes(data)  # appended: the rest of the lines
            os.utime(path, ns=(1, first.mtime_ns + 1 if first else 1))
            second = filestore._read_metric_file(path, "m", os.stat(path), first, [])
        finally:
            filestore.METRIC_CHUNK = saved
    assert whole is not None and chunked is not None and second is not None
    for got in (chunked, second):
        assert got.consumed == whole.consumed
        assert (got.latest is None) == (whole.latest is None)
        if whole.latest is not None and got.latest is not None:
            assert got.latest[1:] == whole.latest[1:] and _same(got.latest[0], whole.latest[0])
        # Every bad line is reported once, with its line number, however the file was read.
        assert got.warnings == whole.warnings


def test_a_line_of_megabytes_is_skipped_not_held(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from octostored.sources import filestore

    monkeypatch.setattr(filestore, "METRIC_CHUNK", 16)
    monkeypatch.setattr(filestore, "MAX_METRIC_LINE", 64)
    path = tmp_path / "m"
    path.write_bytes(b"1 0.5 1\n" + b"9" * 1000 + b"\n2 0.25 2\n3 0.125")
    st = filestore._read_metric_file(str(path), "m", os.stat(path), None, [])
    assert st is not None and st.latest == (0.25, 2, 2)
    assert st.consumed == path.stat().st_size - len(b"3 0.125")
    assert st.warnings == ["metrics/m line 2: longer than 64 bytes; line skipped"]
