"""``octostore run -- CMD``: the console passed through unchanged and kept in a log.

Every command here really runs: through a real pseudo-terminal (the test holds its
master, as a terminal emulator would, and the command's session has it as its
controlling terminal, so Ctrl-C and resizes come from the kernel), or through
pipes.  The terminal must see exactly what it sees when the script runs alone,
byte for byte; the log (``.octostore/logs/<id>.log`` at the repo's top) must hold
everything, its ``.idx`` must end with the exit code, and runs made with MLflow
(a real file store under tmp) must carry the log's path as a tag.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from octostored.console import logformat

from .conftest import REPO, make_repo, wait_for

PY = sys.executable


def base_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), MLFLOW_ALLOW_FILE_STORE="true",
               OCTOSTORE_CAPTURE_CACHE=str(tmp / "capture-cache"))
    for k in (logformat.ENV_LOG, "MLFLOW_RUN_CONTEXT", "MLFLOW_TRACKING_URI",
              "OCTOSTORE_RUN_ARGV", "OCTOSTORE_CAPTURE"):
        env.pop(k, None)
    return env


def under_run(*cmd: str) -> list[str]:
    return [PY, "-m", "octostored.cli", "run", "--", *cmd]


def logs(repo: Path) -> list[Path]:
    return sorted((repo / logformat.LOGS_DIR).glob("*.log"))


def the_log(repo: Path) -> tuple[bytes, list[dict]]:
    (log,) = logs(repo)
    return log.read_bytes(), logformat.read_index(logformat.index_path(str(log)))


def _ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A real pty: the command's controlling terminal; ``out`` is what the screen got."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], rows: int = 30,
                 cols: int = 100) -> None:
        master, slave = os.openpty()
        self.master = master
        self.resize(rows, cols)
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True, preexec_fn=_ctty)
        os.close(slave)
        self.out = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.out += data

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        os.close(self.master)
        return code


def in_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[bytes, int]:
    t = Terminal(argv, cwd, env)
    code = t.wait()
    return bytes(t.out), code


CONSOLE = r"""
import shutil, sys
tty = sys.stdout.isatty()
cols, rows = shutil.get_terminal_size((0, 0))
print(f"stdout tty={tty} stderr tty={sys.stderr.isatty()} size={cols}x{rows}")
for i in range(300):
    line = f"\x1b[32mline {i}\x1b[0m" if tty else f"line {i}"
    sys.stdout.write(line + "\n")
    sys.stderr.write("\r" + "P" * (i % 7 + 1))
    if i % 40 == 0:
        sys.stdout.flush()
        sys.stderr.flush()
sys.stderr.write("\r")
print("done")
"""
"""stdout never uses ``P`` or ``\\r``; stderr only uses them: the log splits by alphabet."""


def split_streams(log: bytes) -> tuple[bytes, bytes]:
    err = bytes(c for c in log if c in b"\rP")
    return bytes(c for c in log if c not in b"\rP"), err


def test_through_a_terminal_the_screen_gets_exactly_what_the_script_alone_gives(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "console.py").write_text(CONSOLE)
    env = base_env(tmp_path)
    alone, code = in_terminal([PY, "console.py"], repo, env)
    assert code == 0 and b"stdout tty=True stderr tty=True size=100x30" in alone
    assert b"\x1b[32mline 299\x1b[0m\r\n" in alone and b"\rPPP" in alone
    teed, code = in_terminal(under_run(PY, "console.py"), repo, env)
    assert code == 0
    assert teed == alone
    log, idx = the_log(repo)
    # The log has the command's own bytes: the terminal's \n -> \r\n translation is the
    # real terminal's business, done once.
    assert log.replace(b"\n", b"\r\n") == alone
    assert idx[0]["v"] == 1 and idx[0]["argv"] == [PY, "console.py"] and idx[-1]["exit"] == 0
    assert idx[-1]["o"] == len(log)


def test_through_pipes_each_stream_is_unchanged_and_the_log_has_both(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "console.py").write_text(CONSOLE)
    env = base_env(tmp_path)
    alone = subprocess.run([PY, "console.py"], cwd=repo, env=env, capture_output=True,
                           timeout=60)
    teed = subprocess.run(under_run(PY, "console.py"), cwd=repo, env=env, capture_output=True,
                          timeout=60)
    assert teed.returncode == alone.returncode == 0
    assert b"stdout tty=False stderr tty=False size=0x0" in alone.stdout
    assert teed.stdout == alone.stdout and teed.stderr == alone.stderr
    log, idx = the_log(repo)
    assert split_streams(log) == (alone.stdout, alone.stderr)
    assert idx[-1] == {"o": len(log), "t": idx[-1]["t"], "exit": 0}

    # 2>&1 into one pipe: one channel, so even the order of the two streams is kept.
    for f in logs(repo):
        f.unlink()
    alone = subprocess.run([PY, "console.py"], cwd=repo, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
    teed = subprocess.run(under_run(PY, "console.py"), cwd=repo, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert teed.stdout == alone.stdout
    assert the_log(repo)[0] == alone.stdout


CRASH = r"""
import os, signal, sys
for i in range(500):
    print(f"step {i}")
    print(f"warn {i}", file=sys.stderr)
sys.stdout.flush()
if sys.argv[1] == "raise":
    raise RuntimeError("boom at step 500")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how, code", [("raise", 1), ("kill", 128 + signal.SIGKILL)])
def test_a_crash_keeps_everything_up_to_it_and_the_exit_code(tmp_path: Path, how: str,
                                                               code: int) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "crash.py").write_text(CRASH)
    proc = subprocess.run(under_run(PY, "crash.py", how), cwd=repo, env=base_env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert proc.returncode == code
    log, idx = the_log(repo)
    assert log == proc.stdout
    text = log.decode()
    assert all(f"step {i}\n" in text and f"warn {i}\n" in text for i in range(500))
    assert ("RuntimeError: boom at step 500" in text) == (how == "raise")
    assert idx[-1]["exit"] == code and idx[-1]["o"] == len(log)


BIG = r"""
import sys
block = b"".join(b"%07d " % i + b"x" * 91 + b"\n" for i in range(10_000))  # ~1 MB
for _ in range(100):
    sys.stdout.buffer.write(block)
"""


def test_100_mb_reach_the_file_and_the_log_complete(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "big.py").write_text(BIG)
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        proc = subprocess.run(under_run(PY, "big.py"), cwd=repo, env=base_env(tmp_path),
                              stdout=f, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0, proc.stderr
    block = b"".join(b"%07d " % i + b"x" * 91 + b"\n" for i in range(10_000))
    expected = hashlib.sha256(block * 100).hexdigest()
    assert out.stat().st_size == len(block) * 100 >= 100_000_000
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    (log,) = logs(repo)
    assert hashlib.sha256(log.read_bytes()).hexdigest() == expected
    idx = logformat.read_index(logformat.index_path(str(log)))
    assert idx[-1]["o"] == len(block) * 100 and "lost" not in idx[-1]
    assert [m["o"] for m in idx] == sorted(m["o"] for m in idx)


TWO_RUNS = r"""
import sys, time
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("console")
ids = []
for name in ("first", "second"):
    with mlflow.start_run(run_name=name) as run:
        for i in range(20):
            print(f"{name} line {i}", flush=True)
            time.sleep(0.01)
        mlflow.log_metric("m", 1.0)
    ids.append(run.info.run_id)
    time.sleep(0.5)
print("ids", *ids, flush=True)
"""


def cut(log: bytes, idx: list[dict], start: int, end: int) -> tuple[bytes, dict, dict]:
    """A run's part: from the last mark at or before its start to the first at or after
    its end (how the daemon cuts it)."""
    lo = max((m for m in idx if m["t"] <= start), key=lambda m: m["o"])
    hi = min((m for m in idx if m["t"] >= end), key=lambda m: m["o"])
    return log[lo["o"]:hi["o"]], lo, hi


def test_two_runs_of_one_command_share_the_log_and_the_marks_cut_their_parts(
        tmp_path: Path) -> None:
    from mlflow import MlflowClient

    repo = make_repo(tmp_path / "repo")
    (repo / "two.py").write_text(TWO_RUNS)
    store = (tmp_path / "store").as_uri()
    proc = subprocess.run(under_run(PY, "two.py", store), cwd=repo, env=base_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split("ids", 1)[1].split()
    log, idx = the_log(repo)
    (path,) = logs(repo)
    client = MlflowClient(store)
    for run_id, name, other in zip(ids, ("first", "second"), ("second", "first"), strict=True):
        run = client.get_run(run_id)
        assert run.data.tags[logformat.TAG] == logformat.rel_path(str(repo), str(path))
        part, lo, hi = cut(log, idx, run.info.start_time, run.info.end_time)
        assert lo["t"] <= run.info.start_time and hi["t"] >= run.info.end_time
        text = part.decode()
        assert all(f"{name} line {i}\n" in text for i in range(20)), text
        assert f"{other} line" not in text
    assert idx[-1]["exit"] == 0


HANDLER = r"""
import os, signal, sys, time
got = []
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda s, f: got.append(s))
r, w = os.pipe()  # one byte per signal delivered (Python's own handler coalesces)
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
print("ready", flush=True)
deadline = time.time() + 30
while not got and time.time() < deadline:
    time.sleep(0.01)
time.sleep(0.3)  # a second copy of the signal would arrive by now
os.set_blocking(r, False)
print("got", *(signal.Signals(b).name for b in os.read(r, 100)), flush=True)
sys.exit(42)
"""


def test_ctrl_c_at_the_terminal_reaches_the_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "handler.py").write_text(HANDLER)
    t = Terminal(under_run(PY, "handler.py"), repo, base_env(tmp_path))
    wait_for(lambda: b"ready" in t.out, timeout=30, what="the script to start")
    t.type(b"\x03")  # the terminal's Ctrl-C: SIGINT to the foreground process group
    assert t.wait() == 42
    assert b"got SIGINT\r\n" in t.out
    log, idx = the_log(repo)
    assert b"got SIGINT\n" in log and idx[-1]["exit"] == 42


def test_ctrl_c_stops_a_script_as_it_would_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "sleepy.py").write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    t = Terminal(under_run(PY, "sleepy.py"), repo, base_env(tmp_path))
    wait_for(lambda: b"ready" in t.out, timeout=30, what="the script to start")
    t.type(b"\x03")
    assert t.wait() == 128 + signal.SIGINT
    assert b"KeyboardInterrupt" in t.out and b"octostore" not in t.out
    assert the_log(repo)[1][-1]["exit"] == 128 + signal.SIGINT


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_sent_to_octostore_are_passed_on_once(tmp_path: Path, sig: int) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "handler.py").write_text(HANDLER)
    proc = subprocess.Popen(under_run(PY, "handler.py"), cwd=repo, env=base_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 42
    assert out == f"got {signal.Signals(sig).name}\n".encode()


RESIZE = r"""
import os, signal, sys, time
def show(*_):
    print("size", *os.get_terminal_size(1), flush=True)
signal.signal(signal.SIGWINCH, show)
show()
deadline = time.time() + 30
while time.time() < deadline:
    time.sleep(0.02)
    if os.get_terminal_size(1).columns == 120:
        break
time.sleep(0.2)
"""


def test_the_window_size_is_the_terminals_and_follows_resizes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "resize.py").write_text(RESIZE)
    t = Terminal(under_run(PY, "resize.py"), repo, base_env(tmp_path), rows=30, cols=100)
    wait_for(lambda: b"size 100 30" in t.out, timeout=30, what="the first size")
    t.resize(50, 120)
    assert t.wait() == 0
    assert b"size 120 50\r\n" in t.out  # the command was told after its pty was resized


def test_run_tags_and_failures_to_keep_a_log(tmp_path: Path) -> None:
    """Outside a git repo the log goes under the folder; where it cannot be written the
    command still runs, with one warning line."""
    work = tmp_path / "plain"
    work.mkdir()
    (work / "hello.py").write_text("print('hello')\n")
    env = base_env(tmp_path)
    proc = subprocess.run(under_run(PY, "hello.py"), cwd=work, env=env, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == b"hello\n" and proc.stderr == b""
    assert the_log(work)[0] == b"hello\n"

    blocked = tmp_path / "blocked"
    (blocked / ".octostore").mkdir(parents=True)
    (blocked / ".octostore" / "logs").write_text("not a folder")
    (blocked / "hello.py").write_text("print('hello')\n")
    proc = subprocess.run(under_run(PY, "hello.py"), cwd=blocked, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "hello\n"
    assert proc.stderr.startswith("octostore: cannot keep the console log in ")
    assert proc.stderr.count("\n") == 1 and "running without it" in proc.stderr


def test_the_log_writer_never_waits_for_the_disk(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck disk: past its buffer the writer drops (and counts) instead of blocking."""
    from octostored.console import logwriter

    w = logwriter.LogWriter(str(tmp_path / "logs" / "x.log"), ["cmd"], max_pending=1000)
    disk = threading.Event()
    real = logwriter._write_all

    def stuck(fd: int, data: bytes) -> None:
        disk.wait()
        real(fd, data)

    monkeypatch.setattr(logwriter, "_write_all", stuck)
    producer = threading.Thread(target=lambda: [w.feed(b"x" * 100) for _ in range(50)])
    producer.start()
    producer.join(30)
    assert not producer.is_alive()  # it never waited for the disk
    disk.set()
    w.close(0)
    data = (tmp_path / "logs" / "x.log").read_bytes()
    idx = logformat.read_index(str(tmp_path / "logs" / "x.idx"))
    assert len(data) == 1000 and w.lost == 4000
    assert idx[-1]["exit"] == 0 and idx[-1]["lost"] == 4000 and idx[-1]["o"] == 1000
    assert idx[0]["argv"] == ["cmd"] and idx[0]["pid"] == os.getpid()


@pytest.mark.parametrize("make, code, says", [
    (lambda p: (p.write_text("#!/bin/sh\necho hi\n"), p.chmod(0o644)), 126, "chmod +x"),
    (lambda p: (p.write_text("garbage\n"), p.chmod(0o755)), 126, "give it a #! line"),
    (lambda p: (p.write_text("#!/no/such/interpreter\n"), p.chmod(0o755)), 127,
     "check the interpreter its #! line names"),
    (lambda p: p.mkdir(), 126, "it is a folder"),
])
def test_a_command_that_cannot_start_says_why_and_leaves_no_log(
        tmp_path: Path, make: object, code: int, says: str) -> None:
    """The runner (the reproduce job's tee) on a file that is there but cannot run."""
    prog = tmp_path / "prog"
    make(prog)  # type: ignore[operator]
    log = tmp_path / "logs" / "x.log"
    proc = subprocess.run([PY, "-m", "octostored.console.runner", "--log", str(log), "--",
                           "./prog"], cwd=tmp_path, env=base_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == code, proc
    assert proc.stderr.startswith("octostore: cannot run ./prog") and says in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not log.exists() and not log.with_suffix(".idx").exists()  # nothing ran: no log


def test_a_failing_pump_still_lets_the_command_go(tmp_path: Path) -> None:
    """The pump's thread dying must not leave the command writing into a pipe no one reads."""
    from octostored.console import tee

    class Broken:
        def feed(self, data: bytes) -> None:
            raise RuntimeError("boom")

    out_r, out_w = os.pipe()
    saved = os.dup(1)
    os.dup2(out_w, 1)
    try:
        channels = tee.open_channels((1,), use_pty=False)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    (ch,) = channels
    os.write(ch.write_fd, b"hello\n")
    ch.close_parent_end()
    with pytest.raises(RuntimeError):
        tee.Pump(channels, Broken()).run()  # type: ignore[arg-type]
    assert not ch.open  # the read end is closed: a writer gets EPIPE instead of blocking
    for fd in (out_r, out_w):
        os.close(fd)
