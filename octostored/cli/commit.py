"""``octostore commit``, ``octostore init`` and ``octostore run -- CMD``.

* ``commit`` asks the daemon (``octostore/commit``): the daemon knows which
  runs exist and which are committed.  When the repo's SQLite store is not
  ignored by git it offers to add it to ``.gitignore`` (asked on a terminal,
  or ``--gitignore-db``).
* ``init`` scaffolds a project locally (no daemon needed).
* ``run -- CMD ...`` records the capture tags for a command whose environment
  lacks the octostore plugin: it locks the environment of the interpreter the
  command will use, computes the git state, and hands the tags to MLflow in
  ``MLFLOW_RUN_CONTEXT`` (applied by every fluent ``mlflow.start_run``), then
  runs the command with its console teed into ``.octostore/logs/`` at the root
  (:mod:`octostored.console.runner`: the terminal sees what it would have, signals
  reach the command, the exit code is the command's); every run it starts is
  tagged ``octostore.console_log``.
  ``octostore run RUN_ID`` (one run in full) is a different command; ``run``
  followed by ``--`` is this one.

Imports stay light (the standard library, orjson and the client), like cli.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from ..client import Client, RequestError, default_root
from ..rpc.protocol import HOOK_REFUSED  # the contract: import-free, light


def _fail(msg: str) -> int:
    """One sentence on stderr, exit 2 (as cli.py does for usage errors; raising its
    ``UsageError`` would not work under ``python -m octostored.cli``, where cli is
    ``__main__`` and this module would see a second copy of the class)."""
    print(f"octostore: {msg}", file=sys.stderr)
    return 2


# -- parsers ---------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    p = sub.add_parser("commit", help="commit runs to git (one commit, only octostore's files)")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                   help="runs to commit (ids or 6+ character prefixes; default: every run not "
                        "committed yet)")
    p.add_argument("-m", "--message", help="the commit's subject (a summary line follows)")
    p.add_argument("--experiment", action="append", help="only runs of this experiment "
                   "(name or id; repeatable)")
    p.add_argument("--dry-run", action="store_true", help="show what would be committed")
    p.add_argument("--push", action="store_true", help="git push the branch afterwards")
    p.add_argument("--max-artifact-mb", type=float,
                   help="artifacts above this go through Git LFS or are left out (default 10, "
                        "or [tool.octostore.commit] max_artifact_mb)")
    p.add_argument("--gitignore-db", action="store_true",
                   help="add the repo's MLflow database to .gitignore without asking")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the repo's pre-commit and commit-msg hooks")
    p.add_argument("--include-other-branches", action="store_true",
                   help="also commit runs made on other branches (their commit is not an "
                        "ancestor of HEAD; left out by default)")
    p.add_argument("--data", action="append", metavar="PATH",
                   help="also commit this data file or folder of the repo (repeatable): "
                        "through Git LFS over the size limit, with force when git-ignored")
    p.add_argument("--root", help="the repo (default: the git work tree of the current folder)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("init", help="scaffold a new ML project ready for octostore")
    p.add_argument("dir", nargs="?", default=".", help="the project folder (default: here)")
    p.add_argument("--package", help="the Python package name (default: from the folder name)")
    p.add_argument("--no-git", action="store_true", help="do not run `git init`")
    p.add_argument("--octostore", metavar="SPEC",
                   help="the requirement the README tells collaborators to install for "
                   "octostore, e.g. 'octostore @ git+https://github.com/OWNER/octostore@COMMIT' "
                   "(default: where this octostore was installed from, when others can reach it)")
    p.add_argument("--json", action="store_true",
                   help="print JSON; its next_steps are shell commands to run in order in its "
                   "root")


# -- commit ----------------------------------------------------------------------------------
def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def cmd_commit(c: Client, args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root) if args.root else default_root()
    if not os.path.isdir(root):
        return _fail(f"{args.root} is not a folder; pass --root with the path of your repo")
    params: dict[str, Any] = {"root": root, "dry_run": args.dry_run, "push": args.push,
                              "gitignore_db": args.gitignore_db}
    if args.no_verify:
        params["no_verify"] = True
    if args.include_other_branches:
        params["include_other_branches"] = True
    if getattr(args, "data", None):
        params["data"] = [os.path.abspath(d) for d in args.data]
    if args.run_ids:
        params["run_ids"] = args.run_ids
    if args.experiment:
        params["experiment"] = args.experiment
    if args.message:
        params["message"] = args.message
    if args.max_artifact_mb is not None:
        if args.max_artifact_mb < 0:
            return _fail("--max-artifact-mb must be 0 or more")
        params["max_artifact_mb"] = args.max_artifact_mb
    try:
        res = c.call("octostore/commit", params, timeout=3600)
    except RequestError as exc:
        if exc.code != HOOK_REFUSED or not isinstance(exc.data, dict):
            raise
        from ..inert import inert, inert_text

        output = str(exc.data.get("output") or "").rstrip()
        if output:
            sys.stderr.write(inert_text(output) + "\n")
        print(f"octostore: {inert(exc.message)}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
        return 0 if res.get("pushed") is not False else 2
    _print_result(res)
    _offer_gitignore(res)
    if res.get("pushed") is False:
        print(f"octostore: {res.get('push_error')}", file=sys.stderr)
        return 2
    return 0


def _print_result(res: dict[str, Any]) -> None:
    from ..inert import inert

    if res.get("recovered"):
        print(inert(res["recovered"]))
    runs = res["runs"]
    for w in res["warnings"]:  # they name paths and runs from the repo
        print(f"warning: {inert(w)}", file=sys.stderr)
    if res["nothing_to_commit"]:
        n = res["already_committed"]
        if not runs and any(not o.get("included") for o in res.get("other_branches") or []):
            print("nothing to commit: the runs not committed yet were made on other branches")
        elif not runs:
            extra = f" ({len(res['skipped'])} skipped: still running or deleted)" if res[
                "skipped"] else ""
            print(f"nothing to commit: all {n} run{'s are' if n != 1 else ' is'} already "
                  f"committed{extra}" if n else f"nothing to commit: no finished runs{extra}")
        else:
            print("nothing to commit: the runs are already committed as they are")
        _print_left_apart(res)
        return
    subject = res["message"].splitlines()[0] if res["message"] else ""
    art = res["artifacts"]
    extras = []
    if art["lfs"]:
        extras.append(f"{len(art['lfs'])} artifact(s) through Git LFS")
    if art["left_out"]:
        extras.append(f"{len(art['left_out'])} large artifact(s) left out")
    if res.get("logs"):
        extras.append(f"{len(res['logs'])} console log(s)")
    models = res.get("models") or []
    if models:
        gone = sum(1 for m in models if m.get("route") == "left-out" and m.get("model_id"))
        n = sum(1 for m in models if m.get("model_id")) - gone
        extras.append(f"{n} logged model(s)" + (f", {gone} left out" if gone else ""))
    detail = f"{res['files']} files, {_mb(res['bytes'])}" + (
        "; " + "; ".join(extras) if extras else "")
    if res["dry_run"]:
        print(f"would commit {len(runs)} run(s) on {res['branch'] or 'a detached HEAD'}:")
        print(f"  {inert(subject)}")
        print(f"  {detail}")
        for r in runs:
            print(f"  {inert(r['run_id'][:8])}  {inert(r['run_name'] or '-'):24}  "
                  f"{inert(r['experiment'])}")
        for s in res["skipped"]:
            print(f"  skipped {inert(s['run_id'][:8])}: {inert(s['reason'])}")
        _print_models(res)
        _print_data(res)
        _print_left_apart(res)
        _print_origins(res.get("origins") or [])
        return
    print(f"committed {len(runs)} run(s) as {res['commit'][:10]} on "
          f"{res['branch'] or 'a detached HEAD'}")
    print(f"  {inert(subject)}")
    print(f"  {detail}")
    for s in res["skipped"]:
        print(f"  skipped {inert(s['run_id'][:8])}: {inert(s['reason'])}")
    _print_models(res)
    _print_data(res)
    _print_left_apart(res)
    if res.get("lfs_setup"):
        print("  set up Git LFS in this repo (git lfs install --local)")
    if res.get("pushed"):
        print("  pushed")


ROUTES = {"git": "git", "git-lfs": "Git LFS", "left-out": "LEFT OUT"}
SHOWN_MODELS = 20


def _print_models(res: dict[str, Any]) -> None:
    """Each run's logged models: size and route (git, Git LFS, left out and why)."""
    from ..inert import inert

    models = res.get("models") or []
    if not models:
        return
    print("  logged models:")
    # Every model left out, and the first SHOWN_MODELS of the others.
    shown = [m for m in models if m.get("route") == "left-out"]
    rest = [m for m in models if m.get("route") != "left-out"]
    models = rest[:SHOWN_MODELS] + shown
    for m in models:
        route = ROUTES.get(m.get("route", ""), inert(str(m.get("route"))))
        if m.get("model_id") is None:  # a server run: its models are not fetched
            print(f"    {inert(m['run_id'][:8])}  {route}: {inert(str(m.get('reason')))}")
            continue
        line = (f"    {inert(m['run_id'][:8])}  {inert(m.get('name') or '-'):12}  "
                f"{inert(m['model_id'])}  {_mb(int(m.get('size') or 0))}  {route}")
        if m.get("route") == "left-out" and m.get("reason"):
            line += f": {inert(m['reason'])}"
        elif m.get("lfs_files"):
            line += f" ({', '.join(inert(p) for p in m['lfs_files'][:3])})"
        print(line)
    if len(rest) > SHOWN_MODELS:
        print(f"    ... and {len(rest) - SHOWN_MODELS} more (all listed with --json)")


DATA_ROUTES = {"git": "git", "git-lfs": "Git LFS"}
SHOWN_DATA = 20


def _print_data(res: dict[str, Any]) -> None:
    """The ``--data`` files (size, route, forced when ignored) and the runs' inputs git does
    not hold: the plan always says what it leaves out and why."""
    from ..inert import inert

    data = res.get("data") or []
    if data:
        print("  data:")
        for d in data[:SHOWN_DATA]:
            route = DATA_ROUTES.get(d.get("route", ""), inert(str(d.get("route"))))
            note = f" ({inert(d['note'])})" if d.get("note") else ""
            print(f"    {inert(d['path'])}  {_mb(int(d.get('size') or 0))}  {route}{note}")
        if len(data) > SHOWN_DATA:
            print(f"    ... and {len(data) - SHOWN_DATA} more (all listed with --json)")
        if res.get("data_gitattributes"):
            print("    (Git LFS lines added to .gitattributes, as `git lfs track` does)")
    left = res.get("not_committed") or {}
    files = left.get("files") or []
    if files:
        print(f"  {inert(str(left.get('message')))}:")
        for f in files[:SHOWN_DATA]:
            size = _mb(int(f["size"])) if isinstance(f.get("size"), int) else "size unknown"
            print(f"    {inert(f['path'])}  {size}  {inert(str(f.get('why')))}")
        if len(files) > SHOWN_DATA:
            print(f"    ... and {len(files) - SHOWN_DATA} more (all listed with --json)")


def _print_left_apart(res: dict[str, Any]) -> None:
    """Runs made on other branches: left out unless asked (or listed as taken)."""
    from ..inert import inert

    other = res.get("other_branches") or []
    left = [o for o in other if not o.get("included")]
    taken = [o for o in other if o.get("included")]
    if left:
        print(f"  left out {len(left)} run(s) made on other branches (commit them with "
              "--include-other-branches, or name them by id):")
    elif taken:
        print(f"  {len(taken)} run(s) made on other branches, taken as asked:")
    for o in left + taken:
        print(f"    {inert(o['run_id'][:8])}  {inert(o.get('run_name') or '-'):24}  "
              f"commit {inert(str(o.get('commit'))[:10])}: {inert(o['reason'])}")


def _print_origins(origins: list[dict[str, Any]]) -> None:
    """What comes from where: refused places outside the repo first, then each source."""
    from ..inert import inert

    if not origins:
        return
    print("  from where:")
    for o in origins:  # the daemon sends the refused ones first
        if o.get("refused"):
            print(f"    REFUSED (outside the repo) {inert(o['source'])} -> not committed")
        else:
            print(f"    {inert(o['source'])} -> {inert(o['dest'])}")


def _offer_gitignore(res: dict[str, Any]) -> None:
    suggest = res["gitignore"]["suggest"]
    if res["gitignore"]["added"]:
        print(f"added {', '.join(res['gitignore']['added'])} to .gitignore")
    if not suggest:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"hint: {suggest[0].lstrip('/')} is not in .gitignore; octostore never commits it "
              "(add it with `octostore commit --gitignore-db`)", file=sys.stderr)
        return
    try:
        answer = input(f"add {', '.join(suggest)} to .gitignore? [y/N] ").strip().lower()
    except EOFError:
        return
    if answer in ("y", "yes"):
        add_to_gitignore(res["root"], suggest)
        print("added to .gitignore (commit that change yourself)")


def add_to_gitignore(root: str, patterns: list[str]) -> list[str]:
    from ..gitops.contents import append_to_gitignore

    return append_to_gitignore(root, patterns)


# -- init ------------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from ..gitops.scaffold import ScaffoldError, next_steps, scaffold
    from ..inert import inert
    from ..installsource import resolve

    source = resolve(args.octostore, flag="--octostore")
    try:
        res = scaffold(os.path.abspath(args.dir), package=args.package, git_init=not args.no_git,
                       octostore=source.requirement)
    except ScaffoldError as exc:
        return _fail(str(exc))
    res["next_steps"] = next_steps(str(res["package"]), bool(res["fresh"]), _uv_word(),
                                   _octostore_words())
    res["octostore"] = source.as_dict()
    if args.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
        return 0
    root = str(res["root"])
    print(f"created {len(res['created'])} files in {inert(root)} (package {res['package']})")
    for rel in res["skipped"]:
        print(f"  kept your {rel}")
    if res["git_init"]:
        print("  ran git init")
    here = os.path.abspath(os.getcwd()) == root
    print("next, to log a first run and commit it (see README.md)"
          + ("" if here else f", in {inert(root)}") + ":")
    for step in res["next_steps"]:
        print(f"    {inert(step)}")
    if source.requirement is None:
        print(f"note: the README cannot say where to get octostore: {source.problem}")
    return 0


def _uv_word() -> str | None:
    """uv as a shell word: ``uv`` on PATH, else the one installed with octostore, else None."""
    import shlex

    from ..reproduce.interpreters import find_uv

    if shutil.which("uv"):
        return "uv"
    found = find_uv()
    return shlex.quote(found) if found else None


def _octostore_words() -> str:
    """This octostore's CLI as shell words: ``octostore`` when PATH finds this one."""
    import shlex

    beside = os.path.join(os.path.dirname(sys.executable), "octostore")
    found = shutil.which("octostore")
    if found and (not os.path.exists(beside) or os.path.samefile(found, beside)):
        return "octostore"
    if os.access(beside, os.X_OK):
        return shlex.quote(beside)
    return f"{shlex.quote(sys.executable)} -m octostored.cli"


LOCAL = {"init": cmd_init}
"""Commands that work without the daemon."""
COMMANDS = {"commit": cmd_commit}


# -- run -- CMD ------------------------------------------------------------------------------
def is_run_command(argv: list[str]) -> bool:
    """``octostore run -- CMD ...`` (``octostore run RUN_ID`` shows a run)."""
    return len(argv) >= 2 and argv[0] == "run" and argv[1] == "--"


def main_run(argv: list[str]) -> int:
    """Run the command with the capture tags, its console teed into a log at the root."""
    from ..console import logformat, runner
    from ..paths import repo_top

    cmd = argv[2:]
    if not cmd:
        print("octostore: nothing to run; use `octostore run -- python train.py ...`",
              file=sys.stderr)
        return 2
    exe = runner.find_program(cmd[0])
    if exe is None:
        print(f"octostore: command not found: {cmd[0]}; check its name and your PATH",
              file=sys.stderr)
        return 127
    root = repo_top(os.getcwd())
    writer = runner.open_log(root, cmd)
    env = dict(os.environ)
    env.update(capture_env(cmd, exe, console_log=logformat.rel_path(root, writer.path)
                           if writer is not None else None))
    return runner.run(cmd, exe, env, writer)


def target_python(cmd: list[str], exe: str) -> str:
    """The interpreter ``cmd`` will use: itself when it is Python, else the one on PATH."""
    base = os.path.basename(cmd[0])
    if base.startswith(("python", "pypy")):
        return exe
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and os.path.exists(os.path.join(venv, "bin", "python")):
        return os.path.join(venv, "bin", "python")
    return shutil.which("python3") or shutil.which("python") or sys.executable


def capture_env(cmd: list[str], exe: str, console_log: str | None = None) -> dict[str, str]:
    """Environment variables that make MLflow tag the command's runs with the capture tags
    (and ``octostore.console_log`` = ``console_log``, the root-relative log path, if given)."""
    from ..capture import collect, envlock, gitstate

    cwd = os.getcwd()
    argv = collect.portable_argv(cmd)
    python = target_python(cmd, exe)
    lock_text: str | None = None
    version: str | None = None
    errors: list[str] = []
    # Not realpath: a virtualenv's python is a symlink to the base interpreter, whose
    # packages differ.
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        repo = gitstate.find_repo(cwd)
        try:
            with open(envlock.__file__, encoding="utf-8") as f:
                source = f.read()
            proc = subprocess.run([python, "-c", source, *([repo] if repo else [])],
                                  capture_output=True, text=True, timeout=120,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                lock_text = proc.stdout
                version = json.loads(lock_text)["python"]["version"]
            else:
                errors.append(f"environment: {python} failed to list its packages")
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
            errors.append(f"environment: cannot run {python} ({exc})")
    tags = collect.collect(cwd=cwd, argv=argv, lock_text=lock_text, python=version)
    if errors:
        if lock_text is None:
            tags.pop(collect.ENV_TAG, None)  # it would describe octostore's interpreter instead
            tags.pop(collect.PYTHON_TAG, None)
        old = tags.get(collect.ERROR_TAG)
        tags[collect.ERROR_TAG] = "; ".join([*errors, *([old] if old else [])])
    context: dict[str, str] = {}
    existing = os.environ.get("MLFLOW_RUN_CONTEXT")
    if existing:
        try:
            loaded = json.loads(existing)
            if isinstance(loaded, dict):
                context.update({str(k): str(v) for k, v in loaded.items()})
        except ValueError:
            pass
    context.update(tags)
    if console_log:
        from ..console.logformat import TAG

        context[TAG] = console_log
    return {"MLFLOW_RUN_CONTEXT": json.dumps(context), collect.ARGV_ENV: json.dumps(argv)}
