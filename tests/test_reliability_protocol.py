"""Hostile bytes on the socket: every one gets an error or a closed connection, nothing more.

One daemon serves the whole module.  A *witness* client stays connected
throughout and must be served after every attack.  Hypothesis generates the
attacks: broken framing (missing, negative, non-numeric or lying
``Content-Length``, endless headers, half frames), bodies that are not JSON or
not UTF-8, nested past any parser's depth, batches, and well-formed requests
for every method with parameters of every wrong type.  A well-formed request
must get a JSON-RPC error with one of the documented codes, never an internal
error (-32603, a crash of a handler); broken framing gets at most an error and
a closed connection, always within a deadline.  At the end the daemon's memory
and its log are still small.  Artifact and metric reads are then tried with
paths that leave the run's folder, and must not leave it.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octostored.client import Client, RequestError
from octostored.rpc import protocol

from . import broken_stores as bs
from .conftest import DaemonProc

DEADLINE = 10.0
"""Seconds within which the daemon must answer or close a connection we stopped writing to."""
DOCUMENTED = {-32700, -32600, -32601, -32602} | {
    v for k, v in vars(protocol).items()
    if k.isupper() and isinstance(v, int) and k != "PROTOCOL_VERSION"}
"""Error codes a client's mistake may earn; -32603 (internal error) is always a bug."""
ACTIONS = {"octostore/shutdown", "octostore/commit", "octostore/reproduce", "octostore/cancel"}
"""Methods that act (stop the daemon, write git commits, start jobs): never fuzzed."""
READS = [m for m in protocol.METHODS if m not in ACTIONS]
SECRET = "octostore-secret-outside-the-run"


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="oct-pr-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def repo(base: Path) -> dict[str, Any]:
    """A root with one experiment; one run has artifacts, symlinks out and a lookalike folder."""
    root = base / "repo"
    store = root / "mlruns"
    bs.write_experiment(store, "0", "Default")
    exp = bs.write_experiment(store, "1", "proto")
    ids = []
    for i in range(5):
        rd, e = bs.write_run(exp, "1", name=f"r{i}", params={"alpha": str(i)},
                             metrics={"loss": [(bs.T0 + s, 1 / (s + 1), s) for s in range(50)]})
        ids.append(e.run_id)
    run = exp / ids[0]
    art = run / "artifacts"
    (art / "inner").mkdir(parents=True)
    (art / "ok.txt").write_text("inside\n")
    (art / "inner" / "deep.txt").write_text("deep\n")
    (root / "secret.txt").write_text(SECRET)
    (run / "artifacts-evil").mkdir()
    (run / "artifacts-evil" / "secret.txt").write_text(SECRET)
    (run / "params" / "hidden").write_text(SECRET)
    (art / "link_out").symlink_to(root / "secret.txt")
    (art / "dir_out").symlink_to(root)
    (art / "inner" / "up").symlink_to("../..")
    (art / "abs_etc").symlink_to("/etc")
    return {"root": str(root), "runs": ids, "run": ids[0]}


@pytest.fixture(scope="module")
def daemon(base: Path, repo: dict[str, Any]) -> Iterator[DaemonProc]:
    (base / "d").mkdir()
    d = DaemonProc(base / "d").start()
    with d.client() as c:
        c.call("octostore/open", root=repo["root"])
    yield d
    d.stop()


@pytest.fixture(scope="module")
def witness(daemon: DaemonProc) -> Iterator[Client]:
    with daemon.client(timeout=DEADLINE) as c:
        yield c


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def exchange(sock: str, data: bytes,
             deadline: float = DEADLINE) -> tuple[list[dict[str, Any]], bool]:
    """Send ``data``, stop writing, read until the daemon closes; (replies, closed in time)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    end = time.monotonic() + deadline
    buf = b""
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it closed on us mid-send: fine, read what it said
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return parse_replies(buf), False
            s.settimeout(left)
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                return parse_replies(buf), False
            except ConnectionResetError:
                return parse_replies(buf), True
            if not chunk:
                return parse_replies(buf), True
            buf += chunk
    finally:
        s.close()


def parse_replies(buf: bytes) -> list[dict[str, Any]]:
    out = []
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        assert sep, f"a reply without a complete header: {buf[:200]!r}"
        assert head.lower().startswith(b"content-length: "), head
        n = int(head.split(b":")[1])
        assert len(rest) >= n, "a truncated reply"
        out.append(orjson.loads(rest[:n]))
        buf = rest[n:]
    return out


def assert_valid_reply(msg: dict[str, Any]) -> None:
    assert msg.get("jsonrpc") == "2.0", msg
    if "method" in msg:  # a notification (octostore/changed) is fine too
        return
    assert "id" in msg and ("result" in msg) != ("error" in msg), msg
    if "error" in msg:
        err = msg["error"]
        assert isinstance(err.get("code"), int) and isinstance(err.get("message"), str), msg
        assert err["code"] != -32603, f"internal error: {err['message'][:300]}"


# -- framing ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
                                                                            allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
_method = st.sampled_from([*READS, "initialize", "shutdown", "exit", "textDocument/hover",
                           "$/cancelRequest", "octostore/nope", "", "x" * 300])


@st.composite
def _message(draw: st.DrawFn) -> bytes:
    msg: dict[str, Any] = {}
    if draw(st.booleans()):
        msg["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2]))
    if draw(st.booleans()):
        msg["id"] = draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=8), _json))
    if draw(st.booleans()):
        msg["method"] = draw(st.one_of(_method, _json))
    if draw(st.booleans()):
        msg["params"] = draw(_json)
    return orjson.dumps(msg)


_body = st.one_of(
    _message(),
    _json.map(orjson.dumps),
    st.binary(max_size=64),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b'{"jsonrpc":"2.0","id":1,"method":"octostore/status","x":"\xff\xfe"}'),
    st.just(b'[{"jsonrpc":"2.0","id":1,"method":"octostore/status"}]'),
)


@st.composite
def _frame(draw: st.DrawFn) -> tuple[bytes, bool]:
    """One frame, and whether the connection must survive it: sound framing, and not the
    LSP ``exit`` or ``shutdown`` that end a connection on purpose."""
    body = draw(_body)
    try:
        msg = orjson.loads(body)
        ends = isinstance(msg, dict) and msg.get("method") in ("exit", "shutdown")
    except orjson.JSONDecodeError:
        ends = False
    framed, sound = _framing(draw, body)
    return framed, sound and not ends


def _framing(draw: st.DrawFn, body: bytes) -> tuple[bytes, bool]:
    kind = draw(st.sampled_from(["ok", "ok", "ok", "lie", "badlen", "nolen", "junkheaders",
                                 "half", "lowercase", "bare-lf"]))
    if kind == "ok":
        return frame(body), True
    if kind == "lie":
        return b"Content-Length: %d\r\n\r\n" % draw(st.integers(0, len(body) + 50)) + body, False
    if kind == "badlen":
        v = draw(st.sampled_from([b"-1", b"abc", b"", b"1e3", b"99999999999999999999999", b"0x10"]))
        return b"Content-Length: " + v + b"\r\n\r\n" + body, False
    if kind == "nolen":
        return b"Content-Type: x\r\n\r\n" + body, False
    if kind == "junkheaders":
        junk = draw(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
                             min_size=1, max_size=40))
        return b"".join(j + b"\r\n" for j in junk) + frame(body), False
    if kind == "half":
        whole = frame(body)
        return whole[: draw(st.integers(0, len(whole)))], False
    if kind == "lowercase":
        return b"content-length: %d\r\n\r\n" % len(body) + body, True
    return b"Content-Length: %d\n\n" % len(body) + body, True


LAST = frame(b'{"jsonrpc":"2.0","id":"last","method":"octostore/status"}')


FRAMING = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FRAMING
@given(st.lists(_frame(), min_size=1, max_size=3))
def test_any_bytes_get_errors_or_a_close_and_others_stay_served(
        daemon: DaemonProc, witness: Client, frames: list[tuple[bytes, bool]]) -> None:
    sound = all(ok for _, ok in frames)
    # Whatever the bodies say, soundly framed messages never cost the connection: a status
    # request after them is answered.
    data = b"".join(f for f, _ in frames) + (LAST if sound else b"")
    replies, closed = exchange(daemon.socket, data)
    assert closed, f"the daemon neither answered nor closed within {DEADLINE} s"
    for msg in replies:
        assert_valid_reply(msg)
    if sound:
        assert [m for m in replies if m.get("id") == "last" and "result" in m], replies
    assert witness.call("octostore/status")["protocol_version"] == protocol.PROTOCOL_VERSION


# -- well-formed requests with wrong params ----------------------------------------------------

_names = ["root", "filter", "order_by", "experiment_ids", "view", "columns", "offset", "limit",
          "since_clock", "run_id", "run_ids", "keys", "key", "x", "max_points", "path",
          "max_bytes", "metric", "lower_is_better", "name", "since"]


@st.composite
def _params(draw: st.DrawFn, repo: dict[str, Any]) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(_json)  # not even an object
    p: dict[str, Any] = {}
    p["root"] = draw(st.one_of(
        st.just(repo["root"]), st.just(repo["root"]), st.just(repo["root"]),
        st.just(repo["root"] + "/nope"), st.just(repo["root"] + "/secret.txt"),
        st.just(""), st.just("relative/nowhere"), _json))
    for name in draw(st.lists(st.sampled_from(_names), max_size=5, unique=True)):
        p[name] = draw(st.one_of(
            _json, st.integers(-(2**63), 2**63 - 1), st.sampled_from(repo["runs"]),
            st.sampled_from(["loss", "metrics.loss < 0.5", "params.alpha = '1'", "step",
                             "time", "all", "deleted", "../..", "ok.txt"]),
            st.lists(st.sampled_from(repo["runs"] + ["loss", "nope"]), max_size=3)))
    return p


PAYLOADS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def caller(daemon: DaemonProc) -> Iterator[Client]:
    with daemon.client(timeout=DEADLINE) as c:
        yield c


def test_every_method_answers_wrong_params_with_a_documented_error(
        daemon: DaemonProc, repo: dict[str, Any], caller: Client, witness: Client) -> None:
    seen: dict[int, int] = {}

    @PAYLOADS
    @given(st.sampled_from(READS), _params(repo))
    def one(method: str, params: Any) -> None:
        mid = 10**9 + len(seen)
        caller.send_raw(frame(orjson.dumps({"jsonrpc": "2.0", "id": mid, "method": method,
                                            "params": params})))
        deadline = time.monotonic() + DEADLINE
        while True:
            msg = caller._read(deadline)  # the reply, skipping notifications
            if msg.get("id") == mid:
                break
        assert_valid_reply(msg)
        if "error" in msg:
            code = msg["error"]["code"]
            assert code in DOCUMENTED, msg
            seen[code] = seen.get(code, 0) + 1
            assert msg["error"]["message"].strip(), msg
        else:
            seen[0] = seen.get(0, 0) + 1

    one()
    # The generator reached both sides: answers and each kind of mistake.
    assert seen.get(0) and seen.get(-32602) and seen.get(protocol.ROOT_NOT_FOUND), seen
    assert witness.call("octostore/status")["protocol_version"] == protocol.PROTOCOL_VERSION


# -- specific cases the issue names ------------------------------------------------------------

def test_named_bad_requests_get_their_errors(daemon: DaemonProc, repo: dict[str, Any],
                                              witness: Client) -> None:
    root = repo["root"]
    cases: list[tuple[bytes, int]] = [
        (frame(b"not json at all"), -32700),
        (frame(b'{"jsonrpc":"2.0","id":1,"method":"octostore/status","p":"\xff"}'), -32700),
        (frame(b"[" * 100_000 + b"]" * 100_000), -32700),
        (frame(b'[{"jsonrpc":"2.0","id":1,"method":"octostore/status"}]'), -32600),
        (frame(b'{"jsonrpc":"2.0","id":1,"method":"octostore/frobnicate"}'), -32601),
        (b"Content-Type: text/plain\r\n\r\n{}", -32600),
        (b"Content-Length: -7\r\n\r\n", -32600),
        (b"Content-Length: seven\r\n\r\n", -32600),
        (b"X-Junk: 1\r\n" * 100 + frame(b"{}"), -32600),
    ]
    for data, code in cases:
        replies, closed = exchange(daemon.socket, data)
        assert closed and [r["error"]["code"] for r in replies] == [code], (data[:60], replies)
    with daemon.client() as c:
        for params, code, words in [
            ({"root": root, "limit": -1}, -32602, "'limit' must be at least 0"),
            ({"root": root, "limit": "ten"}, -32602, "'limit' must be an integer"),
            ({"root": root, "offset": 1.5}, -32602, "'offset' must be an integer"),
            ({"root": root, "view": ["all"]}, -32602, "'view' must be a string"),
            ({"root": root + "/no/such/dir"}, protocol.ROOT_NOT_FOUND, "does not exist"),
            ({"root": root + "/secret.txt"}, protocol.ROOT_NOT_FOUND, "is a file"),
            ({"root": 7}, -32602, "'root' must be a string"),
            ({}, -32602, "needs 'root'"),
        ]:
            with pytest.raises(RequestError) as err:
                c.call("octostore/runs", params)
            assert err.value.code == code and words in err.value.message, (params, err.value)
        assert c.call("octostore/runs", root=root)["total"] == len(repo["runs"])


def test_a_root_with_a_nul_byte_is_a_root_error(daemon: DaemonProc, repo: dict[str, Any]) -> None:
    with daemon.client() as c, pytest.raises(RequestError) as err:
        c.call("octostore/runs", root=repo["root"] + "\x00/x")
    assert err.value.code == protocol.ROOT_NOT_FOUND, err.value.message


def test_odd_metric_keys_are_not_internal_errors(daemon: DaemonProc, repo: dict[str, Any]) -> None:
    with daemon.client() as c:
        for key in ("", ".", "loss\x00x", "a" * 5000, "loss/../../meta.yaml"):
            try:
                out = c.call("octostore/metric_history", root=repo["root"], run_ids=[repo["run"]],
                             keys=[key])
            except RequestError as err:
                assert err.code in DOCUMENTED, (key, err.message[:300])
            else:
                assert out["series"][0]["points"] == 0, key


def test_one_request_cannot_ask_for_unbounded_series(daemon: DaemonProc,
                                                     repo: dict[str, Any]) -> None:
    """run_ids x keys multiplies: 10,000 series of up to 100,000 points each would be gigabytes.
    A request for more series than a screen can show is refused, not computed."""
    with daemon.client(timeout=60) as c:
        with pytest.raises(RequestError) as err:
            c.call("octostore/metric_history", root=repo["root"], run_ids=repo["runs"] * 400,
                   keys=["loss"] * 5, max_points=100_000)
        assert err.value.code == -32602 and "series" in err.value.message


def test_a_100_mb_body_is_refused_without_reading_it(daemon: DaemonProc, witness: Client) -> None:
    assert daemon.proc is not None
    before = rss_kib(daemon.proc.pid)
    header = b"Content-Length: %d\r\n\r\n" % (100 << 20)
    replies, closed = exchange(daemon.socket, header + b" " * (8 << 20))
    assert closed and replies and replies[0]["error"]["code"] == protocol.REQUEST_TOO_LARGE
    assert "limit" in replies[0]["error"]["message"]
    assert rss_kib(daemon.proc.pid) - before < 32 * 1024
    # A long header line (no newline for megabytes) is refused too.
    replies, closed = exchange(daemon.socket, b"Content-Length: 1" + b"0" * (4 << 20))
    assert closed
    assert witness.call("octostore/status")["protocol_version"] == protocol.PROTOCOL_VERSION


def test_an_lsp_shutdown_answers_later_requests_with_an_error(daemon: DaemonProc) -> None:
    data = frame(b'{"jsonrpc":"2.0","id":1,"method":"shutdown"}') + frame(
        b'{"jsonrpc":"2.0","id":2,"method":"octostore/status"}')
    replies, closed = exchange(daemon.socket, data)
    assert closed and [r["id"] for r in replies] == [1, 2]
    assert replies[1]["error"]["code"] == -32600 and "shutdown" in replies[1]["error"]["message"]
    with daemon.client() as c:  # only that connection was shut down
        assert c.call("octostore/status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_memory_and_log_stay_bounded_after_the_fuzzing(daemon: DaemonProc, witness: Client) -> None:
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert rss_kib(daemon.proc.pid) < 400 * 1024
    # Thousands of bad requests were answered; none of them may cost a log line.
    assert daemon.log.stat().st_size < 64 * 1024, daemon.log.read_text()[-3000:]
    assert witness.call("octostore/status")["clients"] >= 1


# -- paths that leave the run ------------------------------------------------------------------

ESCAPES = [
    "../meta.yaml", "../../../../../../etc/passwd", "/etc/passwd", "link_out", "dir_out",
    "dir_out/secret.txt", "inner/../../meta.yaml", "../artifacts-evil/secret.txt",
    "inner/up/params/hidden", "inner/up/../secret.txt", "abs_etc/passwd", "..", "inner/../..",
    "./../params/hidden", "ok.txt/../../params/hidden",
]


def test_artifact_reads_never_leave_the_artifact_folder(daemon: DaemonProc,
                                                         repo: dict[str, Any]) -> None:
    root, run = repo["root"], repo["run"]
    with daemon.client() as c:
        got = c.call("octostore/artifact", root=root, run_id=run, path="inner/../ok.txt")
        assert got["text"] == "inside\n"
        for path in ESCAPES:
            with pytest.raises(RequestError) as err:
                c.call("octostore/artifact", root=root, run_id=run, path=path)
            assert err.value.code in (protocol.PATH_OUTSIDE, protocol.ARTIFACT_NOT_FOUND), path
            assert SECRET not in str(err.value.data) and "root:" not in err.value.message
        for path in ("..", "dir_out", "abs_etc", "inner/up", "/"):
            with pytest.raises(RequestError) as err:
                c.call("octostore/artifacts", root=root, run_id=run, path=path)
            assert err.value.code in (protocol.PATH_OUTSIDE, protocol.ARTIFACT_NOT_FOUND), path
        listed = [a["path"] for a in
                  c.call("octostore/artifacts", root=root, run_id=run)["artifacts"]]
        assert sorted(listed) == ["inner/deep.txt", "ok.txt"]
        for key in ("../params/hidden", "/etc/passwd", "../../../secret.txt", "../meta.yaml"):
            series = c.call("octostore/metric_history", root=root, run_ids=[run],
                            keys=[key])["series"][0]
            assert series["points"] == 0 and series["y"] == [], key
