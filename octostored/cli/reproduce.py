"""``octostore reproduce``, ``octostore jobs``, ``octostore cancel`` and ``octostore ci init``.

``reproduce`` starts a job in the daemon (``octostore/reproduce``) and
follows its ``octostore/job`` notifications: a progress display on stderr
(one line per phase, each input's case, the console log streamed with a
``|`` margin, a spinner with the elapsed time on a terminal; none of it with
``-q``, which prints only the verdict or the error), then the comparison on stdout
(or the whole result as JSON with ``--json``).  Ctrl-C cancels the job (the
daemon stops its processes and removes its worktree) and exits 130.

Before a command that the repo recorded runs for the first time on this
machine, the daemon answers ``CONFIRMATION_REQUIRED`` with what would run;
``reproduce`` shows it (interpreter, script, arguments, environment, working
folder, the tag it came from, and why it is *unusual* when it is), asks y/N
on a terminal and sends the request again confirmed.  ``--yes`` accepts
without asking; with no terminal and no ``--yes`` it shows the command, says
how to accept it and exits 5.  ``--dry-run`` shows the plan and the command
and starts nothing.

Exit codes: 0 reproduced (or, with ``--set``, any finished comparison: a
changed parameter is expected to move metrics), 3 diverged, 4 failed, 5 not
run (the command was not accepted), 130 cancelled; 2 and 1 as every command
(usage or request error, no daemon).

``ci init`` writes ``.github/workflows/octostore-reproduce.yml`` locally
(:mod:`octostored.reproduce.ci`); no daemon is needed.

Imports stay light (the standard library, orjson and the client), like cli.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from typing import Any

from ..client import (
    Client,
    DaemonUnavailable,
    OctostoreClientError,
    RequestError,
    Timeout,
    default_root,
)
from ..inert import inert
from ..rpc.protocol import CONFIRMATION_REQUIRED  # the contract: import-free, light

EXIT_DIVERGED = 3
EXIT_FAILED = 4
EXIT_NOT_ACCEPTED = 5
EXIT_CANCELLED = 130
TERMINAL = ("done", "failed", "cancelled")


def _usage(msg: str) -> Exception:
    from .common import UsageError

    return UsageError(msg)


# -- parsers ---------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    p = sub.add_parser("reproduce", help="re-run a run from its commit and environment, and "
                       "compare the metrics")
    p.add_argument("run_id", metavar="RUN_ID", help="the run (id or 6+ character prefix)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="change a parameter (repeatable), e.g. --set n_estimators=300")
    p.add_argument("--env", choices=["auto", "captured", "model", "project", "current"],
                   default="auto", help="the environment: the captured lock, the logged "
                   "model's, the repo's files at the run's commit, or an interpreter as it is "
                   "(default: the first of these that exists)")
    p.add_argument("--python", help="the interpreter for --env current (default: the python on "
                   "PATH)")
    p.add_argument("--tolerance", type=float, metavar="REL", help="relative tolerance for "
                   "metrics (default: [tool.octostore.reproduce] tolerance, else exact)")
    p.add_argument("--ignore-metric", dest="ignore", action="append", default=[],
                   metavar="KEY", help="leave a metric out of the verdict (repeatable)")
    p.add_argument("--tracking-uri", help="where the new run goes (default: $MLFLOW_TRACKING_URI, "
                   "else the original run's store)")
    p.add_argument("--keep-worktree", action="store_true",
                   help="keep the checked-out worktree afterwards (its path is printed)")
    p.add_argument("--allow-env-differences", action="store_true",
                   help="go on when the environment cannot be rebuilt exactly (another Python, "
                        "packages that no longer install)")
    p.add_argument("--rebuild-env", action="store_true",
                   help="build the environment again even if it is cached")
    p.add_argument("-y", "--yes", action="store_true",
                   help="run the command the run recorded without asking, even the first time "
                        "(accepts it for this repo)")
    p.add_argument("--dry-run", action="store_true",
                   help="show the plan and the command that would run; start nothing")
    p.add_argument("--detach", action="store_true",
                   help="start the job and print its id without waiting")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress: only the verdict "
                   "(or the error)")
    p.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("jobs", help="list the daemon's jobs (reproductions)")
    p.add_argument("job", nargs="?", help="one job in full")
    p.add_argument("--root", help="only this repo's jobs")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job", help="the job id (see `octostore jobs`)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("ci", help="continuous integration helpers")
    ci_sub = p.add_subparsers(dest="ci_command", required=True)
    c = ci_sub.add_parser("init", help="write a GitHub Actions workflow that reproduces a run")
    c.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    c.add_argument("--package", "--octostore", dest="package", default=None, metavar="SPEC",
                   help="what the workflow installs for octostore (--octostore, as for init), a pip requirement such as "
                   "'octostore @ git+https://github.com/OWNER/octostore@COMMIT' (default: "
                   "where this octostore was installed from, when a runner can reach it)")
    c.add_argument("--python", default=None, help="Python version when the run does not say "
                   "(default: 3.11)")
    c.add_argument("--force", action="store_true", help="overwrite an existing workflow")
    c.add_argument("--json", action="store_true", help="print JSON")


def _root(args: argparse.Namespace) -> str:
    root = os.path.abspath(args.root) if getattr(args, "root", None) else default_root()
    if not os.path.isdir(root):
        raise _usage(f"{args.root} is not a folder; pass --root with the path of your repo")
    return root


# -- reproduce -------------------------------------------------------------------------------
def cmd_reproduce(c: Client, args: argparse.Namespace) -> int:
    root = _root(args)
    for item in args.sets:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise _usage(f"--set {item!r} is not KEY=VALUE; e.g. --set n_estimators=300")
    if args.tolerance is not None and args.tolerance < 0:
        raise _usage("--tolerance must be 0 or more")
    params: dict[str, Any] = {"root": root, "run_id": args.run_id, "env": args.env,
                              "set": args.sets, "keep_worktree": args.keep_worktree,
                              "allow_env_differences": args.allow_env_differences,
                              "rebuild_env": args.rebuild_env}
    if args.tolerance is not None:
        params["tolerance"] = args.tolerance
    if args.ignore:
        params["ignore_metrics"] = args.ignore
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        params["tracking_uri"] = uri
    if args.env == "current":
        params["python"] = args.python or _current_python()
    elif args.python:
        raise _usage("--python goes with --env current")
    if args.dry_run:
        return _dry_run(c, params, args)
    if args.yes:
        params["confirmed"] = True
    try:
        started = c.call("octostore/reproduce", params)
    except RequestError as exc:
        if exc.code != CONFIRMATION_REQUIRED:
            raise
        command = (exc.data or {}).get("command") or {}
        sys.stderr.write(f"octostore: run {inert(args.run_id)} would run a command that its "
                         "repo recorded, not yet accepted on this machine:\n")
        sys.stderr.write(format_command(command))
        if not sys.stdin.isatty():
            sys.stderr.write("octostore: not run: check the command above, then accept it with "
                             f"`octostore reproduce {inert(args.run_id)} --yes` (or run this in "
                             "a terminal to be asked)\n")
            return EXIT_NOT_ACCEPTED
        if not _ask():
            sys.stderr.write("octostore: not run\n")
            return EXIT_NOT_ACCEPTED
        params["confirmed"] = True
        started = c.call("octostore/reproduce", params)
    job = started["job"]
    if args.detach:
        if args.json:
            _print_json(started)
        else:
            print(job)
        return 0
    display = Progress(job, enabled=not args.quiet)
    display.start(args.run_id)
    try:
        final = _follow(c, job, display)
    except KeyboardInterrupt:
        display.note("cancelling (stopping its processes, removing its worktree)...")
        try:
            c.call("octostore/cancel", job=job, timeout=120)
        except OctostoreClientError:
            pass
        display.stop()
        return EXIT_CANCELLED
    display.stop()
    result = final.get("result") or {}
    if args.json:
        _print_json({"job": job, "state": final["state"], "error": final.get("error"),
                     "timings": final.get("timings"), **result})
    else:
        _print_result(result, final, quiet=args.quiet)
    return exit_code(final["state"], result, bool(args.sets))


def _ask() -> bool:
    """y/N on the terminal; False without one."""
    if not sys.stdin.isatty():
        return False
    sys.stderr.write("Run it? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def format_command(cmd: dict[str, Any]) -> str:
    """The daemon's display of a command (``data.command``), every string made inert."""
    def line(label: str, value: Any) -> str:
        return f"  {label:<13}{inert(value)}\n"

    env = cmd.get("env") or {}
    out = [line("command:", cmd.get("display", ""))]
    out.append(line("interpreter:", cmd.get("interpreter") or "-"))
    out.append(line("script:", cmd.get("script") or "-"))
    args = cmd.get("args") or []
    out.append(line("arguments:", " ".join(_quote(str(a)) for a in args) if args else "-"))
    commit = str(cmd.get("commit") or "")[:10]
    out.append(line("working dir:", f"{cmd.get('cwd', '.')} (in a checkout of commit {commit})"))
    for i, (k, v) in enumerate(env.items()):
        out.append(line("environment:" if i == 0 else "", f"{k}={v}"))
    out.append(line("from:", cmd.get("source", "")))
    if cmd.get("notebook"):
        out.append(line("notebook:", cmd["notebook"]))
    if cmd.get("unusual"):
        for i, reason in enumerate(cmd.get("reasons") or []):
            out.append(line("UNUSUAL:" if i == 0 else "", reason))
    elif cmd.get("kind") == "notebook":
        out.append(line("", "(a notebook of the repo, executed by octostore's notebook runner)"))
    else:
        out.append(line("", "(a Python interpreter running a file of the repo at that commit)"))
    return "".join(out)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _dry_run(c: Client, params: dict[str, Any], args: argparse.Namespace) -> int:
    res = c.call("octostore/reproduce", {**params, "dry_run": True})
    if args.json:
        _print_json(res)
        return 0
    plan = res.get("plan") or {}
    print(f"run {inert(plan.get('run_id', args.run_id))} at commit "
          f"{inert(str(plan.get('commit', ''))[:10])}, environment "
          f"{inert(plan.get('environment', ''))}, new run goes to "
          f"{inert((plan.get('store') or {}).get('uri', ''))}")
    print("would run:" + ("" if res.get("accepted") else " (not yet accepted on this machine)"))
    sys.stdout.write(format_command(res.get("command") or {}))
    for item in plan.get("inputs") or []:
        print(f"input {inert(item.get('case'))}: {inert(item.get('detail'))}")
    for note in plan.get("notes") or []:
        print(f"note: {inert(note)}")
    return 0


def exit_code(state: str, result: dict[str, Any], has_sets: bool) -> int:
    verdict = result.get("verdict")
    if state == "cancelled":
        return EXIT_CANCELLED
    if state != "done" or verdict == "failed":
        return EXIT_FAILED
    if verdict == "diverged" and not has_sets:
        return EXIT_DIVERGED
    return 0


def _current_python() -> str:
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and os.path.exists(os.path.join(venv, "bin", "python")):
        return os.path.join(venv, "bin", "python")
    import shutil

    found = shutil.which("python3") or shutil.which("python")
    if not found:
        raise _usage("no python on PATH for --env current; pass --python")
    return os.path.abspath(found)


def _follow(c: Client, job: str, display: Progress) -> dict[str, Any]:
    while True:
        try:
            n = c.wait_notification("octostore/job", timeout=5.0)
        except Timeout:
            # A lost notification must not hang us: ask.
            res = c.call("octostore/jobs", job=job, log_lines=0)
            info = res["jobs"][0]
            if info["state"] in TERMINAL:
                return info
            continue
        p = n["params"]
        if p.get("job") != job:
            continue
        display.event(p)
        if p.get("event") == "finished":
            return {"state": p["state"], "result": p.get("result"), "error": p.get("error"),
                    "timings": p.get("timings")}


class Progress:
    """The progress display on stderr: phase lines, the streamed log, a spinner on a tty."""

    def __init__(self, job: str, enabled: bool = True) -> None:
        self.job = job
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.phase = ""
        self.phase_start = time.monotonic()
        self.lock = threading.Lock()
        self.status = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, run_id: str) -> None:
        if not self.enabled:
            return
        self._write(f"octostore: reproducing {run_id} (job {self.job}); Ctrl-C cancels\n")
        if self.tty:
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        for ch in itertools.cycle("|/-\\"):
            if self._stop.wait(0.2):
                return
            with self.lock:
                if self.phase:
                    line = (f"{ch} {self.phase} {time.monotonic() - self.phase_start:5.1f}s  "
                            f"{self.status}")[:max(20, _width() - 1)]
                    sys.stderr.write("\r\033[K" + line)
                    sys.stderr.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        if self.tty:
            with self.lock:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()

    def _write(self, text: str) -> None:
        with self.lock:
            if self.tty:
                sys.stderr.write("\r\033[K")
            sys.stderr.write(text)
            sys.stderr.flush()

    def note(self, text: str) -> None:
        if self.enabled:
            self._write(f"octostore: {text}\n")

    def event(self, p: dict[str, Any]) -> None:
        if not self.enabled:
            return
        kind = p.get("event")
        phases = p.get("phases") or []
        if kind == "phase":
            self.phase = p.get("phase", "")
            self.phase_start = time.monotonic()
            self.status = p.get("message") or ""
            n = phases.index(self.phase) + 1 if self.phase in phases else 0
            self._write(f"[{n}/{len(phases)}] {self.phase:<12} {self.status}\n")
        elif kind == "progress":
            self.status = p.get("message") or ""
            if not self.tty and self.status:
                self._write(f"      {'':<12} {self.status}\n")
            elif self.tty:
                self._write(f"      {'':<12} {self.status}\n")
        elif kind == "log":
            self._write("".join(f"      | {line}\n" for line in p.get("lines") or []))
        elif kind == "finished":
            self.phase = ""


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def _print_result(result: dict[str, Any], final: dict[str, Any], quiet: bool = False) -> None:
    """The verdict on stdout; with ``quiet`` only the verdict (its line, the metric table, the
    params that differ) or the error, without the environment, inputs and notes."""
    verdict = result.get("verdict") or final["state"]
    err = final.get("error") or result.get("failed")
    if final["state"] == "cancelled":
        print(f"cancelled during {err.get('phase') if err else 'the job'}")
        return
    if verdict == "failed" and err:
        print(f"verdict: failed in phase {inert(err.get('phase'))}: {inert(err.get('message'))}")
        if err.get("remedy"):
            print(f"  {inert(err['remedy'])}")
        tail = err.get("log_tail") or []
        if tail:
            print("  last lines of the log:")
            for line in tail[-15:]:
                print(f"    | {line}")
        for d in err.get("differences") or []:
            print(f"  - {d.get('message') or d}")
        if result.get("new_run_id"):
            print(f"new run: {result['new_run_id']} (tagged octostore.verdict=failed)")
        return
    rows = result.get("metrics") or []
    tol = result.get("tolerance") or 0
    moved = [r for r in rows if r["status"] in ("diverged", "missing")]
    equal = [r for r in rows if r["status"] == "equal"]
    how = "exact" if not tol else f"relative tolerance {tol:g}"
    differing = result.get("diverged_inputs") or []
    if verdict == "reproduced":
        print(f"verdict: reproduced ({len(equal)} metric(s) equal, {how})")
    else:
        why = [f"input {inert(p)} differs" for p in differing]
        if moved or not differing:
            why.append(f"{len(moved)} of {len(rows)} metric(s) moved"
                       + (f": {inert(', '.join(r['key'] for r in moved))}" if moved else ""))
        print(f"verdict: diverged; {'; '.join(why)} ({how})")
    if rows:
        from .common import table

        print(table(["metric", "original", "reproduced", "diff", "rel", "status"],
                    [[r["key"], _fmt(r["original"]), _fmt(r["reproduced"]),
                      _fmt(r["abs_diff"]),
                      f"{r['rel_diff'] * 100:+.3g}%" if r["rel_diff"] is not None else "-",
                      r["status"]] for r in rows]))
    params = result.get("params") or []
    if params:
        print("params that differ:")
        for d in params:
            print(f"  {inert(d['key'])}: {inert(d['original'])} -> {inert(d['reproduced'])}"
                  + ("  (--set)" if d.get("expected") else ""))
    if quiet:
        return
    for item in result.get("inputs") or []:
        print(f"input {inert(item.get('case'))}: {inert(item.get('detail'))}")
    env = result.get("environment") or {}
    diffs = env.get("differences") or []
    if env:
        state = "cached" if env.get("cached") else f"built in {env.get('build_seconds', 0):.1f} s"
        print(f"environment: {env.get('kind')} ({env.get('source')}), Python "
              f"{env.get('python_version')}, {state}")
    for d in diffs[:20]:
        print(f"  differs: {d.get('name')}: {d.get('original')} -> {d.get('reproduced')}")
    if len(diffs) > 20:
        print(f"  ... and {len(diffs) - 20} more differences")
    for note in (result.get("notes") or []) + (env.get("notes") or []):
        print(f"note: {inert(note)}")
    if result.get("new_run_id"):
        print(f"new run: {result['new_run_id']} in experiment {result.get('experiment')!r} "
              f"(octostore.reproduces={result['run_id'][:8]})")
    if result.get("worktree"):
        print(f"worktree kept at {result['worktree']} (remove it with `git worktree remove "
              f"{result['worktree']}`)")


# -- jobs, cancel -------------------------------------------------------------------------------
def cmd_jobs(c: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.job:
        params["job"] = args.job
        params["log_lines"] = 200
    elif args.root:
        params["root"] = os.path.abspath(args.root)
    res = c.call("octostore/jobs", params)
    if args.json:
        _print_json(res["jobs"])
        return 0
    if not res["jobs"]:
        print("no jobs")
        return 0
    if args.job:
        j = res["jobs"][0]
        print(f"job {j['job']} ({j['kind']}) {j['state']}, phase {j['phase']}: {j['message']}")
        for line in j["log_tail"]:
            print(f"  | {line}")
        if j.get("result"):
            print(json.dumps(j["result"], indent=2, default=str))
        return 0
    from .common import table

    rows = [[j["job"], j["kind"], j["state"], j["phase"],
             str((j.get("params") or {}).get("run_id", ""))[:8],
             str((j.get("result") or {}).get("verdict") or ""), j["message"][:50]]
            for j in res["jobs"]]
    print(table(["job", "kind", "state", "phase", "run", "verdict", "message"], rows))
    return 0


def cmd_cancel(c: Client, args: argparse.Namespace) -> int:
    res = c.call("octostore/cancel", job=args.job, timeout=120)
    if args.json:
        _print_json(res)
        return 0
    if res["cancelled"]:
        print(f"cancelled {res['job']} during {res['phase']}")
    else:
        print(f"{res['job']} was already {res['state']}")
    return 0


# -- ci init -----------------------------------------------------------------------------------
def cmd_ci(args: argparse.Namespace) -> int:
    from ..installsource import resolve
    from ..reproduce import ci

    root = _root(args)
    source = resolve(args.package)
    if source.requirement is None:
        raise _usage(f"the workflow cannot install octostore: {source.problem}")
    try:
        res = ci.write_workflow(root, package=source.requirement, python=args.python,
                                force=args.force)
    except (ci.WorkflowExists, ValueError) as exc:
        raise _usage(str(exc)) from None
    res["package"], res["package_source"] = source.requirement, source.kind
    if args.json:
        _print_json(res)
        return 0
    print(f"wrote {res['path']} (it installs {inert(source.requirement)})")
    print("next: commit it, push, then run it from the Actions tab or with "
          "`gh workflow run octostore-reproduce.yml -f run_id=<RUN_ID>`")
    return 0


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


LOCAL = {"ci": cmd_ci}
"""Commands that work without the daemon."""
COMMANDS = {"reproduce": cmd_reproduce, "jobs": cmd_jobs, "cancel": cmd_cancel}

__all__ = ["LOCAL", "COMMANDS", "add_parsers", "DaemonUnavailable"]
