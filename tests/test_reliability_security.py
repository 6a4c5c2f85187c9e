"""Nobody in: the socket is its user's alone, and nothing from a repo or a store is run.

* The socket's folder is 0700 and the socket 0600; a folder that is a symlink or another
  user's is refused.  No TCP (or UDP) socket is ever opened.
* Another user is refused twice: by the folder's permissions, and, when those are
  loosened by mistake, by the daemon's peer-uid check (``SO_PEERCRED``).  As root the
  test creates that user and connects as them (``setpriv``); otherwise it checks the
  peer-uid function itself.
* A repo full of traps (git hooks and fsmonitor, YAML python tags, ``$(...)`` in
  ``.env`` and ``pyproject.toml``, a pickle artifact, ``setup.py``...) is opened, read
  through every method and changed under the watcher: no trap fires.  A daemon started
  from inside a hostile folder imports nothing from it.
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octostored.rpc import server

from . import broken_stores as bs
from .conftest import DaemonProc, make_repo, wait_for

OTHER_USER = "octorel"

RAW_CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
    except OSError as exc:
        print("REFUSED-CONNECT", exc.errno)
        sys.exit(0)
    body = b'{"jsonrpc":"2.0","id":1,"method":"octostore/status"}'
    s.settimeout(15)
    data = b""
    try:
        s.sendall(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
        while b"}" not in data:  # the end of a reply, or of the connection
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        print(("ANSWERED" if data else "REFUSED-IO"), exc)
        sys.exit(0)
    print("ANSWERED" if data else "REFUSED-CLOSED", len(data))
""")


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="oct-se-", dir="/tmp"))
    os.chmod(d, 0o711)  # another user may walk through, as through a home folder
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(base: Path) -> Iterator[DaemonProc]:
    folder = base / "d"
    folder.mkdir(mode=0o755)  # the user's own folder, readable by others: left as it is
    os.chmod(folder, 0o755)
    d = DaemonProc(folder).start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def other_user() -> Iterator[pwd.struct_passwd | None]:
    """A second user to connect as (root only; None elsewhere)."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        yield None
        return
    created = False
    try:
        pw = pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        OTHER_USER], check=True, capture_output=True)
        pw = pwd.getpwnam(OTHER_USER)
        created = True
    yield pw
    if created:
        subprocess.run(["userdel", OTHER_USER], capture_output=True)


def run_as(pw: pwd.struct_passwd, *cmd: str) -> str:
    out = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                          "--clear-groups", *cmd], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# -- the socket ------------------------------------------------------------------------------

def test_socket_folder_and_lock_are_private(daemon: DaemonProc) -> None:
    folder = os.lstat(os.path.dirname(daemon.socket))
    # a folder the user named keeps its mode (octostore changes only its own folders'):
    # others may see the socket, but it is 0600 and the daemon checks the peer's uid
    assert stat.S_IMODE(folder.st_mode) == 0o755 and folder.st_uid == os.getuid()
    sock = os.lstat(daemon.socket)
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.socket + ".lock").st_mode) & 0o077 == 0


def test_no_network_listener(daemon: DaemonProc) -> None:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    assert inodes, "the daemon holds no socket at all?"
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        rows = path.read_text().splitlines()[1:]
        mine = [r for r in rows if r.split()[9] in inodes]
        assert mine == [], f"the daemon has {table} sockets: {mine}"
    unix = [r.split() for r in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]]
    listening = {r[7] for r in unix if r[6] in inodes and len(r) > 7 and r[3] == "00010000"}
    assert listening == {daemon.socket}


@pytest.mark.parametrize("how", ["symlink", "another user's"])
def test_unsafe_socket_folders_are_refused(base: Path, other_user: Any, how: str) -> None:
    real = Path(tempfile.mkdtemp(prefix="real-", dir=base))
    folder = base / f"unsafe-{how[:3]}"
    words = "not a plain folder" if how == "symlink" else "belongs to another user"
    if how == "symlink":
        folder.symlink_to(real)
    elif os.geteuid() == 0:
        folder.mkdir(mode=0o700)
        uid = other_user.pw_uid if other_user is not None else 65534
        os.chown(folder, uid, uid)
    else:  # not root: "/" is a folder that is not ours (refused before any chmod)
        folder = Path("/")
    sock = str(folder / "d.sock")
    env = {**os.environ, "OCTOSTORE_SOCKET": sock}
    out = subprocess.run([sys.executable, "-m", "octostored.daemon", "--socket", sock], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and words in out.stderr, out.stderr
    assert not os.path.exists(sock)


def test_peer_uid_check_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The function the daemon runs on every accepted connection (SO_PEERCRED)."""
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        assert server._peer_is_us(a)
        me = os.getuid()
        monkeypatch.setattr(server.os, "getuid", lambda: me + 1)
        assert not server._peer_is_us(a)
    finally:
        a.close()
        b.close()


def test_another_user_is_refused(daemon: DaemonProc, other_user: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if other_user is None:  # not root: no second user to be; the check itself is what we have
        test_peer_uid_check_itself(monkeypatch)
        return
    py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    # 1. The folder's permissions stop them before the daemon hears a thing.
    assert run_as(other_user, py, "-c", RAW_CLIENT, daemon.socket).startswith("REFUSED-CONNECT")
    # 2. Someone loosened the permissions: the daemon checks who is calling and hangs up.
    folder = os.path.dirname(daemon.socket)
    os.chmod(folder, 0o711)
    os.chmod(daemon.socket, 0o666)
    try:
        got = run_as(other_user, py, "-c", RAW_CLIENT, daemon.socket)
    finally:
        os.chmod(folder, 0o700)
        os.chmod(daemon.socket, 0o600)
    assert got.startswith("REFUSED-"), got
    with daemon.client() as c:  # and still serves its own user
        assert c.call("octostore/status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


# -- nothing runs -------------------------------------------------------------------------------

def trap_repo(root: Path, markers: Path) -> dict[str, Any]:
    """A repo where reading anything the wrong way runs ``touch <markers>/<name>``."""
    make_repo(root)
    m = str(markers)

    def touch(name: str) -> str:
        return f"touch {m}/{name}"

    with open(root / ".git" / "config", "a") as f:
        f.write(textwrap.dedent(f"""
            [core]
                fsmonitor = "{touch('fsmonitor')}"
                pager = {touch('pager')}
                sshCommand = {touch('ssh')}
                hooksPath = .githooks
                editor = {touch('editor')}
            [diff "trap"]
                textconv = {touch('textconv')}
            [diff]
                external = {touch('diff-external')}
            [filter "trap"]
                clean = {touch('clean')}
                smudge = {touch('smudge')}
                process = {touch('process')}
            [alias]
                status = !{touch('alias')}
        """))
    (root / ".gitattributes").write_text("* filter=trap diff=trap\n")
    for hooks in (root / ".githooks", root / ".git" / "hooks"):
        hooks.mkdir(exist_ok=True)
        for hook in ("post-checkout", "post-index-change", "pre-commit", "fsmonitor-watchman",
                     "reference-transaction", "post-merge"):
            h = hooks / hook
            h.write_text(f"#!/bin/sh\n{touch('hook-' + hook)}\n")
            h.chmod(0o755)
    (root / ".env").write_text(f"MLFLOW_TRACKING_URI=$({touch('env')})\nX=`{touch('env2')}`\n")
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "trap_backend"
        [project]
        name = "trap"
        dynamic = ["dependencies"]
        [tool.octostore]
        stores = ["$({touch('toml')})", "mlruns; {touch('toml2')}"]
    """))
    for name in ("setup.py", "conftest.py", "sitecustomize.py", "usercustomize.py",
                 "trap_backend.py", "train.py"):
        (root / name).write_text(f"import os\nos.system({touch('py-' + name)!r})\n")
    (root / "conda.yaml").write_text(
        f"name: !!python/object/apply:os.system [{touch('yaml-conda')!r}]\ndependencies: []\n")
    (root / "MLproject").write_text(textwrap.dedent(f"""
        name: trap
        conda_env: conda.yaml
        entry_points:
          main:
            command: "{touch('mlproject')}"
    """))
    (root / "requirements.txt").write_text(
        f"-e git+file:///nonexistent#egg=trap\n--install-option=\"$({touch('req')})\"\nnumpy\n")
    # The store: a python tag in meta.yaml, shell in params and keys, a pickle artifact.
    store = root / "mlruns"
    bs.write_experiment(store, "0", "Default")
    exp = bs.write_experiment(store, "1", "traps")
    rd, run = bs.write_run(exp, "1", name="trap", params={"cmd": f"$({touch('param')})"},
                           metrics={f"m;{touch('key')}": [(bs.T0, 1.0, 0)]})
    _, other = bs.write_run(exp, "1", name="other", params={"cmd": "x"})
    rd2, _ = bs.write_run(exp, "1", name="tagged")
    bs.set_meta(rd2, run_name=f"!!python/object/apply:os.system [{touch('yaml-meta')!r}]")

    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (touch("pickle"),))

    (rd / "artifacts").mkdir()
    (rd / "artifacts" / "model.pkl").write_bytes(pickle.dumps(Boom()))
    (rd / "artifacts" / "run.sh").write_text(f"#!/bin/sh\n{touch('artifact-sh')}\n")
    (rd / "artifacts" / "run.sh").chmod(0o755)
    return {"run": run.run_id, "other": other.run_id}


def fired(markers: Path) -> list[str]:
    return sorted(p.name for p in markers.iterdir())


def test_nothing_in_a_repo_or_store_is_ever_run(daemon: DaemonProc, base: Path) -> None:
    markers = base / "markers"
    markers.mkdir()
    root = base / "traps"
    ids = trap_repo(root, markers)
    # The traps are live: run the same way on purpose, they fire (then reset).
    subprocess.run(["sh", "-c", f"touch {markers}/selftest"], check=True)
    assert fired(markers) == ["selftest"]
    (markers / "selftest").unlink()
    r = str(root)
    with daemon.client() as c:
        c.call("octostore/open", root=r)
        c.call("octostore/subscribe", root=r)
        c.call("octostore/sync", root=r)
        c.call("octostore/runs", root=r, view="all", filter="params.cmd LIKE '%touch%'")
        c.call("octostore/experiments", root=r, view="all")
        for rid in (ids["run"], ids["other"]):
            c.call("octostore/run", root=r, run_id=rid)
        c.call("octostore/compare", root=r, run_ids=[ids["run"], ids["other"]])
        c.call("octostore/insights", root=r)
        c.call("octostore/environment", root=r)
        c.call("octostore/artifacts", root=r, run_id=ids["run"])
        for path in ("model.pkl", "run.sh"):
            c.call("octostore/artifact", root=r, run_id=ids["run"], path=path)
        c.call("octostore/metric_history", root=r, run_ids=[ids["run"]],
               keys=[f"m;touch {markers}/key"])
        # Change what the watcher watches: env files, git refs, HEAD, the store.
        (root / "requirements.txt").write_text("numpy\npandas\n")
        (root / ".env").write_text(f"MLFLOW_TRACKING_URI=$(touch {markers}/env3)\n")
        (root / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
        (root / ".git" / "refs" / "heads" / "other").write_text(
            (root / ".git" / "refs" / "heads" / "main").read_text())
        bs.write_run(root / "mlruns" / "1", "1", name="new", params={"c": "$(touch x)"})
        c.call("octostore/sync", root=r)
        c.call("octostore/environment", root=r)
        c.call("octostore/runs", root=r, view="all")
    assert fired(markers) == []


SHADOWED = ("asyncio", "argparse", "runpy", "tomllib", "msgpack", "orjson", "yaml", "sqlite3",
            "watchfiles", "pygls")


def hostile_folder(folder: Path, markers: Path) -> None:
    """Modules named like the daemon's imports: each records which process imported it."""
    folder.mkdir()
    for name in SHADOWED:
        (folder / f"{name}.py").write_text(textwrap.dedent(f"""
            import importlib as _il, os as _os, sys as _sys
            open(_os.path.join({str(markers)!r}, "{name}-%d" % _os.getpid()), "w").close()
            _here = _os.path.dirname(_os.path.abspath(__file__))
            _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _here]
            del _sys.modules[__name__]
            _sys.modules[__name__] = _il.import_module(__name__)
        """))


def _spawn_daemon_from(folder: Path, base: Path, markers: Path,
                       via_client: bool) -> tuple[int, list[str]]:
    sock = str(base / f"h{int(via_client)}" / "d.sock")
    env = {**os.environ, "OCTOSTORE_SOCKET": sock, "OCTOSTORE_CACHE_DIR": str(base / "hcache"),
           "XDG_STATE_HOME": str(base / "hstate")}
    if via_client:  # what `octostore runs` (a console script: no cwd on its path) does
        cmd = [sys.executable, "-P", "-c",
               "from octostored.client import Client; Client().call('octostore/status')"]
    else:  # what `octostored --detach` does
        cmd = [sys.executable, "-P", "-m", "octostored.daemon", "--detach"]
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    from octostored.client import Client

    with Client(sock, autostart=False) as c:
        pid = c.call("octostore/status")["pid"]
        c.call("octostore/shutdown")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
             Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", timeout=20,
             what="the detached daemon to stop")
    return pid, fired(markers)


def test_a_detached_daemon_imports_nothing_from_the_folder_it_started_in(base: Path) -> None:
    markers = base / "hmarkers1"
    markers.mkdir()
    hostile_folder(base / "hostile1", markers)
    pid, got = _spawn_daemon_from(base / "hostile1", base, markers, via_client=False)
    assert [m for m in got if m.endswith(f"-{pid}")] == []
    assert got == [], f"processes started by `octostored --detach` imported {got}"


def test_a_client_starting_the_daemon_imports_nothing_from_its_cwd(base: Path) -> None:
    markers = base / "hmarkers2"
    markers.mkdir()
    hostile_folder(base / "hostile2", markers)
    _, got = _spawn_daemon_from(base / "hostile2", base, markers, via_client=True)
    assert got == [], f"processes started by the client's autostart imported {got}"
