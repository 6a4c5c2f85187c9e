"""Building a reproduction's environment, once per lock: uv when available, else venv + pip.

**Cache.**  An environment lives in ``<cache>/reproduce/envs/<key>/`` where
``key`` hashes the spec's material (the lock's sha256, or the env files'
bytes; :meth:`EnvSpec.key_material`) and the exact interpreter version used.
A finished build writes ``octostore-env.json`` last; only a folder with that
marker is reused, so a second reproduction of any run with the same lock
builds nothing.  Builds of one key are serialised by ``flock`` on
``<key>.lock`` (polled, so a waiting job stays cancellable); a folder
without its marker is a build that died, and is removed by whoever takes the
lock next.  A build that is cancelled removes its folder on the way out.
A job holds ``<key>.use`` (shared ``flock``) while it has the environment
(:meth:`BuiltEnv.hold`), and each use rewrites ``octostore-used.json`` in the
folder (atomically): ``octostore cache list|prune`` and the size cap
(``env_cache_max_gb``: after a new build, the least recently used environments
not in use are removed until the cache fits) read both (:mod:`.envcache`).

**Builder.**  ``uv venv`` + ``uv pip install`` with ``UV_COMPILE_BYTECODE=1``
(these machines set ``PYTHONDONTWRITEBYTECODE=1``: without bytecode every
import of the environment would compile from source, STACK.md section 7) and
``UV_PYTHON_DOWNLOADS=never`` (uv cannot fetch interpreters here; the error
must say so).  Requirements that are not a lock are first resolved by
``uv pip compile`` into exact pins, installed with ``--no-deps``.  Without uv:
``python -m venv`` and ``pip``.  Which uv and which Python:
:mod:`.interpreters`.

**Differences.**  The interpreter is matched to the wanted version (exact,
else same major.minor, noted; a missing minor is a *blocking* difference),
and a lock whose packages do not all install is retried one package at a
time to name the ones that fail (blocking).  Blocking differences stop the
job unless the caller allows them (``allow_differences``); what did install
is then used, and the environment is cached under a key that says so.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import paths, settings
from ..atomicfile import atomic_write
from ..capture import envlock as capture_envlock
from ..jobs import JobContext, JobError
from . import envcache, proc
from .envspec import EnvSpec, normalize_pin
from .interpreters import Interpreter, default_interpreter, find_python, find_uv, interpreters

MARKER = "octostore-env.json"
REQUIREMENTS = "octostore-requirements.txt"


@dataclass
class BuiltEnv:
    dir: str
    python: str
    version: str
    key: str
    tool: str
    cached: bool
    seconds: float
    lock: dict[str, Any] | None
    failed: list[str] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evicted: list[dict[str, Any]] = field(default_factory=list)
    """Environments removed to keep the cache under its cap when this one was built."""
    _release: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        out = {"dir": self.dir, "python": self.python, "python_version": self.version,
               "key": self.key, "tool": self.tool, "cached": self.cached,
               "build_seconds": round(self.seconds, 3), "failed_packages": self.failed,
               "notes": self.notes}
        if self.evicted:
            out["cache_evicted"] = self.evicted
        return out

    def hold(self, folder: str) -> None:
        """Mark the environment in use (a shared lock that pruning respects) until
        :meth:`release`, or until this object is garbage collected."""
        if self._release is not None or not self.key:
            return
        fd = envcache.hold_use(folder, self.key)
        self._release = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        """The job no longer runs in this environment: it may be pruned."""
        if self._release is not None:
            self._release()


def env_key(spec: EnvSpec, interp: Interpreter, tool: str) -> str:
    material = {**spec.key_material(), "python": [interp.implementation, interp.version],
                "platform": sys.platform, "machine": os.uname().machine, "tool": tool}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


# -- building ---------------------------------------------------------------------------------
class EnvCache:
    def __init__(self, folder: str, root: str | None = None) -> None:
        self.folder = folder
        self.root = root
        """The repo whose settings (``env_cache_max_gb``) apply; default: the job's root."""

    def path(self, key: str) -> str:
        return os.path.join(self.folder, key)

    async def _lock(self, key: str, ctx: JobContext | None) -> int:
        paths.private_folder(self.folder)  # built environments are the user's alone
        fd = os.open(os.path.join(self.folder, key + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        said = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if ctx is not None and not said:
                        ctx.progress("waiting for another build of the same environment")
                        said = True
                    await asyncio.sleep(0.1)
        except BaseException:
            os.close(fd)
            raise

    async def ensure(self, spec: EnvSpec, *, ctx: JobContext | None = None, allow: bool = False,
                     rebuild: bool = False,
                     on_line: Callable[[str], None] | None = None) -> BuiltEnv:
        """The environment for ``spec``, built unless a finished one is cached.

        Raises:
            JobError: blocking differences that ``allow`` does not allow, or a failed build
                (phase ``environment``).
        """
        if spec.kind == "current":
            return await self._current(spec)
        if spec.why and ctx is not None:
            ctx.progress(spec.why)
        interp, diffs = await find_python(spec.python)
        blocking = [d for d in diffs if d.get("blocking")]
        if interp is None:
            if not allow:
                raise _blocked(blocking, spec)
            interp = default_interpreter(await interpreters())
            diffs = [{**d, "reproduced": interp.version} for d in diffs]
        uv = find_uv()
        tool = "uv" if uv else "pip"
        if uv and not spec.no_deps and any(not r.startswith("-") for r in spec.requirements):
            spec = await _resolve(uv, interp, spec, ctx, on_line)
        key = env_key(spec, interp, tool)
        folder = self.path(key)
        if ctx is not None:
            ctx.record(env_dir=folder, env_lock=os.path.join(self.folder, key + ".lock"))
        fd = await self._lock(key, ctx)
        try:
            marker = _read_marker(folder)
            if marker is not None and not rebuild:
                failed = marker.get("failed") or []
                if failed and not allow:
                    raise _blocked([{"what": "package", "blocking": True, "name": n,
                                     "message": f"{n} does not install"} for n in failed], spec)
                env = BuiltEnv(folder, _bin(folder), marker.get("python_version", ""), key,
                               marker.get("tool", tool), True, 0.0, marker.get("lock"),
                               failed=failed, differences=diffs, notes=list(spec.notes))
                env.hold(self.folder)
                envcache.touch_used(folder)
                return env
            if ctx is not None:
                ctx.progress(f"building with {tool}: Python {interp.version}, "
                             f"{len([r for r in spec.requirements if not r.startswith('-')])} "
                             "requirement(s)")
            t0 = time.monotonic()
            try:
                built = await self._build(folder, spec, interp, uv, ctx, allow, diffs,
                                          on_line or (ctx.log if ctx is not None else None))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            built.seconds = time.monotonic() - t0
            built.key = key
            built.notes = list(spec.notes)
            _write_marker(folder, built, spec)
            built.hold(self.folder)
            envcache.touch_used(folder)
            await self._cap(built, ctx)
            return built
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if ctx is not None:
                ctx.record(env_dir=None, env_lock=None)

    async def _cap(self, built: BuiltEnv, ctx: JobContext | None) -> None:
        """Keep the cache under ``env_cache_max_gb`` (the user's config.toml): the least
        recently used environments go first, never one in use; say so when it happens."""
        root = self.root or (ctx.job.root if ctx is not None else None)
        if root is None:
            return
        warnings: list[str] = []
        cap = settings.env_cache_max_gb(root, warnings)
        for w in warnings:
            built.notes.append(w)
        if cap is None:
            return
        removed, total = await asyncio.to_thread(envcache.enforce_cap, self.folder, cap,
                                                 frozenset({built.key}))
        if not removed:
            if total > cap * envcache.GB:
                built.notes.append(
                    f"the environment cache holds {envcache.human(total)}, over its "
                    f"{cap:g} GB cap (env_cache_max_gb), and nothing more can be removed "
                    "(the others are in use, or this one alone is over the cap); see "
                    "`octostore cache list`")
            return
        freed = sum(e.size_bytes for e in removed)
        built.evicted = [{"key": e.key, "source": e.source, "size_bytes": e.size_bytes,
                          "last_used": e.last_used} for e in removed]
        msg = (f"the environment cache went over its {cap:g} GB cap (env_cache_max_gb): "
               f"removed {len(removed)} least recently used environment(s), "
               f"{envcache.human(freed)} freed")
        built.notes.append(msg)
        if ctx is not None:
            ctx.progress(msg)

    async def _current(self, spec: EnvSpec) -> BuiltEnv:
        python = spec.interpreter or getattr(sys, "_base_executable", sys.executable)
        _check_interpreter(python)
        lock = await lock_of(python)
        if lock is None:
            raise JobError("environment", f"{python} does not run as a Python interpreter",
                           "pass --python with the path of a Python interpreter (for example "
                           "the python of your virtual environment)")
        version = ((lock or {}).get("python") or {}).get("version", "")
        prefix = os.path.dirname(os.path.dirname(python))
        return BuiltEnv(prefix, python, version, "", "current", True, 0.0, lock)

    async def _build(self, folder: str, spec: EnvSpec, interp: Interpreter, uv: str | None,
                     ctx: JobContext | None, allow: bool, diffs: list[dict[str, Any]],
                     on_line: Callable[[str], None] | None) -> BuiltEnv:
        shutil.rmtree(folder, ignore_errors=True)
        env = build_env()
        if uv:
            cmd = [uv, "venv", "--no-project", "--python", interp.path, folder]
        else:
            cmd = [interp.path, "-m", "venv", folder]
        res = await proc.run(cmd, env=env, ctx=ctx, on_line=on_line)
        if res.code != 0:
            raise JobError("environment", f"cannot create a virtual environment with "
                           f"{interp.path}", "see the log above", log_tail=res.lines[-30:])
        os.chmod(folder, 0o700)
        python = _bin(folder)
        reqs_path = os.path.join(folder, REQUIREMENTS)
        with open(reqs_path, "w", encoding="utf-8") as f:
            f.write("\n".join(spec.requirements) + "\n")
        failed: list[str] = []
        if any(not r.startswith("-") for r in spec.requirements):
            if ctx is not None:
                ctx.progress(f"installing with {'uv' if uv else 'pip'}")
            res = await _install(uv, python, ["-r", reqs_path], spec.no_deps, spec.workdir,
                                 env, ctx, on_line)
            if res.code != 0:
                if not spec.no_deps:
                    raise JobError("environment", "the environment's requirements do not "
                                   "install: " + _error_line(res.lines),
                                   "fix the requirements at the run's commit, or try another "
                                   "--env", log_tail=res.lines[-30:])
                failed = await self._without_failures(uv, python, spec, env, ctx, on_line,
                                                      res.lines, allow, reqs_path)
                if failed and not allow:
                    raise _blocked([{"what": "package", "blocking": True, "name": n,
                                     "message": f"{n} does not install here"} for n in failed],
                                   spec)
        if spec.extras:
            if ctx is not None:
                ctx.progress(f"adding {', '.join(spec.extras)}")
            res = await _install(uv, python, list(spec.extras), False, spec.workdir, env, ctx,
                                 on_line)
            if res.code != 0:
                raise JobError("environment", f"cannot add {', '.join(spec.extras)} to the "
                               "environment: " + _error_line(res.lines),
                               "see the log above", log_tail=res.lines[-30:])
        if spec.capture_plugin:
            await _install_capture_plugin(uv, python, env, ctx, on_line)
        lock = await lock_of(python)
        version = ((lock or {}).get("python") or {}).get("version", interp.version)
        return BuiltEnv(folder, python, version, "", "uv" if uv else "pip", False, 0.0, lock,
                        failed=failed, differences=diffs)

    async def _without_failures(self, uv: str | None, python: str, spec: EnvSpec,
                                env: dict[str, str], ctx: JobContext | None,
                                on_line: Callable[[str], None] | None, error: list[str],
                                allow: bool, reqs_path: str) -> list[str]:
        """The lock's packages that do not install; with ``allow`` the others are installed.

        The installer's error usually names the package (``foo==1.2``): those are dropped
        and the rest retried, a few rounds at most.  When the error names none, each
        package is tried on its own (slow, but it says which).
        """
        remaining = [r for r in spec.requirements if not r.startswith("-")]
        options = [r for r in spec.requirements if r.startswith("-")]
        failed: list[str] = []
        for _ in range(5):
            named = failing_pins(error, remaining)
            if not named:
                break
            failed += named
            remaining = [r for r in remaining if r not in named]
            if not allow:
                return failed
            with open(reqs_path, "w", encoding="utf-8") as f:
                f.write("\n".join(options + remaining) + "\n")
            res = await _install(uv, python, ["-r", reqs_path], True, spec.workdir, env, ctx,
                                 on_line)
            if res.code == 0:
                return failed
            error = res.lines
        return failed + await self._one_by_one(uv, python, spec, env, ctx, on_line,
                                               [r for r in remaining])

    async def _one_by_one(self, uv: str | None, python: str, spec: EnvSpec,
                          env: dict[str, str], ctx: JobContext | None,
                          on_line: Callable[[str], None] | None,
                          reqs: list[str]) -> list[str]:
        """Install packages one at a time; those that fail."""
        options = [r for r in spec.requirements if r.startswith("-")]
        failed = []
        for n, req in enumerate(reqs, 1):
            if ctx is not None:
                ctx.progress(f"finding what does not install ({n}/{len(reqs)})", n / len(reqs))
            args = [a for o in options for a in o.split(None, 1)] + [req]
            res = await _install(uv, python, args, True, spec.workdir, env, ctx, None)
            if res.code != 0:
                failed.append(req)
                if on_line is not None:
                    on_line(f"does not install: {req}: {_error_line(res.lines)}")
        return failed


async def _resolve(uv: str, interp: Interpreter, spec: EnvSpec, ctx: JobContext | None,
                   on_line: Callable[[str], None] | None) -> EnvSpec:
    """``spec`` with its requirements resolved by uv into an exact closure (``--no-deps``).

    Raises:
        JobError: the requirements do not resolve (phase ``environment``).
    """
    import dataclasses
    import tempfile

    if ctx is not None:
        ctx.progress("resolving the requirements with uv")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(spec.requirements) + "\n")
        path = f.name
    try:
        code, out, err = await proc.output(
            [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python",
             interp.path, path], cwd=spec.workdir, env=build_env(), timeout=600)
    finally:
        os.unlink(path)
    if code != 0:
        lines = err.splitlines()
        if on_line is not None:
            for line in lines:
                on_line(line)
        raise JobError("environment", "the environment's requirements do not resolve: "
                       + _error_line(lines), "fix the requirements at the run's commit, or "
                       "try another --env", log_tail=lines[-30:])
    options = [r for r in spec.requirements if r.startswith("-") and not r.startswith(
        ("-c", "--constraint"))]
    pins = [line.strip() for line in out.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    spec = dataclasses.replace(spec, requirements=options + pins, no_deps=True,
                               notes=[*spec.notes, f"resolved by uv into {len(pins)} pinned "
                                      "packages"])
    return spec


async def _install(uv: str | None, python: str, args: list[str], no_deps: bool,
                   cwd: str | None, env: dict[str, str], ctx: JobContext | None,
                   on_line: Callable[[str], None] | None) -> proc.Result:
    extra = ["--no-deps"] if no_deps else []
    if uv:
        cmd = [uv, "pip", "install", "--python", python, *extra, *args]
    else:
        cmd = [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
               *extra, *args]
    return await proc.run(cmd, cwd=cwd, env=env, ctx=ctx, on_line=on_line)


async def _install_capture_plugin(uv: str | None, python: str, env: dict[str, str],
                                  ctx: JobContext | None,
                                  on_line: Callable[[str], None] | None) -> None:
    """``octostore-capture`` from the wheel built here (no index has it), as
    ``octostore capture install`` puts it in: ``--no-deps``, offline.

    Raises:
        JobError: it does not install (phase ``environment``).
    """
    import tempfile

    from .. import capture_wheel

    if ctx is not None:
        ctx.progress(f"adding {capture_wheel.DIST} {capture_wheel.version()} (octostore's "
                     "capture plugin, built here)")
    with tempfile.TemporaryDirectory(prefix="octostore-capture-") as tmp:
        wheel = await asyncio.to_thread(capture_wheel.build_wheel, tmp)
        res = await _install(uv, python, ["--no-index", wheel], True, None, env, ctx, on_line)
    if res.code != 0:
        raise JobError("environment", f"cannot add {capture_wheel.DIST} to the environment: "
                       + _error_line(res.lines), "see the log above", log_tail=res.lines[-30:])


def failing_pins(error: list[str], reqs: list[str]) -> list[str]:
    """The requirement lines an installer's error message names (``foo==1.2``)."""
    text = "\n".join(error).lower().replace("_", "-")
    out = []
    for req in reqs:
        pin = normalize_pin(req)
        if "==" in pin and re.search(rf"(?<![\w.-]){re.escape(pin)}(?![\w.])", text):
            out.append(req)
    return out


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(UV_COMPILE_BYTECODE="1", UV_PYTHON_DOWNLOADS="never", PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH",
                "UV_PROJECT_ENVIRONMENT"):
        env.pop(var, None)
    return env


async def lock_of(python: str) -> dict[str, Any] | None:
    """The environment lock of ``python`` (as the capture plugin writes it), or None."""
    with open(capture_envlock.__file__, encoding="utf-8") as f:
        source = f.read()
    env = build_env()
    try:
        code, out, _ = await proc.output([python, "-c", source], env=env, timeout=120)
    except (TimeoutError, OSError):
        return None
    if code != 0:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def lock_digest(lock: dict[str, Any]) -> tuple[str, str]:
    """(sha256, canonical text) of a lock, as the capture plugin names it."""
    text = capture_envlock.lock_text(lock)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), text


def _bin(folder: str) -> str:
    return os.path.join(folder, "bin", "python")


def _read_marker(folder: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not os.access(_bin(folder), os.X_OK):
        return None
    return data if isinstance(data, dict) else None


def _check_interpreter(python: str) -> None:
    """Raises JobError (one sentence) when ``python`` is not a program that can run."""
    why = None
    if not os.path.exists(python):
        why = "does not exist"
    elif os.path.isdir(python):
        why = "is a folder, not an interpreter"
    elif not os.access(python, os.X_OK):
        why = "is not executable"
    if why is not None:
        raise JobError("environment", f"the interpreter {python} {why}",
                       "pass --python with the path of a Python interpreter (for example the "
                       "python of your virtual environment), or leave out --env current")


def _write_marker(folder: str, built: BuiltEnv, spec: EnvSpec) -> None:
    data = {"key": built.key, "tool": built.tool, "python_version": built.version,
            "built": time.time(), "seconds": round(built.seconds, 3), "failed": built.failed,
            "spec": spec.describe(), "lock": built.lock,
            "lock_sha256": lock_digest(built.lock)[0] if built.lock else ""}
    atomic_write(os.path.join(folder, MARKER), json.dumps(data).encode())


def _error_line(lines: list[str]) -> str:
    for line in reversed(lines):
        text = line.strip().lstrip("×╰─▶ ").strip()
        if text and not text.startswith(("hint:", "help:")):
            return text[:300]
    return "no message"


def _blocked(diffs: list[dict[str, Any]], spec: EnvSpec) -> JobError:
    what = "; ".join(d.get("message") or str(d.get("name")) for d in diffs)
    return JobError("environment", f"the environment of the run cannot be rebuilt as it was "
                    f"({spec.source}): {what}",
                    "allow the differences with --allow-env-differences, or choose another "
                    "environment with --env", differences=diffs)


def remove_unfinished(folder: str) -> None:
    """Remove env folders without their marker whose lock nobody holds (builds that died)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if name.endswith(".lock") or not os.path.isdir(path) or os.path.exists(
                os.path.join(path, MARKER)):
            continue
        try:
            fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            if not os.path.exists(os.path.join(path, MARKER)):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
