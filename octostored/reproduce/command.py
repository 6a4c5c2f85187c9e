"""What a reproduction will run, shown (and accepted) before it runs.

The command a reproduction runs comes from the repo: a run's ``octostore.argv``
tag, its MLproject entry point, its source script or notebook.  A repo is
untrusted input (someone else may have written that tag), so before the command
runs for the first time on this machine the person sees exactly what will run
and accepts it (:mod:`.trust` remembers the acceptance).  :func:`describe` is
that display, the same for the CLI, the editor and the protocol
(``octostore/reproduce`` error ``CONFIRMATION_REQUIRED``, ``data.command``):

* ``argv``: what will be executed (``python`` is the interpreter of the run's
  rebuilt environment; an MLproject command runs under ``bash -c``);
* ``interpreter``, ``script``, ``args``: the same, taken apart;
* ``env``: the environment variables the reproduction sets for it;
* ``cwd``: its working folder, relative to a checkout of ``commit``;
* ``source``: the tag or file it came from;
* ``unusual`` and ``reasons``: it is *usual* when it is a Python interpreter
  running a file tracked at the run's commit, or ``python -m module``;
  anything else (``bash -c ...``, an absolute path, ``python -c``, a script
  not in the commit's tree, shell syntax in an MLproject command) is unusual,
  with one reason each;
* ``notebook``: for a notebook run, what its execution does (nbclient, the
  parameter cell, where the executed notebook goes); else null;
* ``hash``: sha256 of the exact argv, env and cwd: what an acceptance is for
  (for a notebook, argv names the copy that runs and the parameter cell).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from typing import TYPE_CHECKING, Any

from .overrides import PY_OPTS_WITH_VALUE

if TYPE_CHECKING:
    from .plan import Plan

PYTHON = "python"
NOTEBOOK_RUNNER = "<octostore's notebook runner>"
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][\w-]*\}")
_SHELL_OPS = set("();<>|&")


def env_changes(plan: Plan) -> dict[str, str]:
    """The variables the run phase sets for the entry point (``job._run_env``), with the
    parts only known later (the built environment, the job's id) named in angle brackets."""
    from .mlflow_link import store_env

    env: dict[str, str] = {}
    if plan.env_kind == "current":
        env["PATH"] = f"{os.path.dirname(plan.interpreter or '') or '<its folder>'}:$PATH"
    else:
        env["PATH"] = "<the rebuilt environment's bin folder>:$PATH"
        env["VIRTUAL_ENV"] = "<the rebuilt environment>"
    env["PYTHONPATH"] = "<the repo's local packages at the commit, when its environment names any>"
    env.update(store_env(plan.store))
    env["MLFLOW_EXPERIMENT_NAME"] = plan.experiment
    env["MLFLOW_RUN_CONTEXT"] = '{"octostore.job": "<job id>"}'
    env["OCTOSTORE_CAPTURE"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def digest(argv: list[str], env: dict[str, str], cwd: str) -> str:
    """sha256 of exactly what runs: an acceptance holds for this and nothing else."""
    text = json.dumps({"argv": argv, "env": env, "cwd": cwd}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe(plan: Plan, files: set[str]) -> dict[str, Any]:
    """The display of what ``plan`` will run (see the module's doc); ``files`` are the paths
    tracked at the run's commit."""
    entry = plan.entry
    cwd = entry.cwd or "."
    reasons: list[str] = []
    notebook: str | None = None
    if entry.kind == "mlproject":
        command = entry.command or ""
        argv = ["bash", "-c", command]
        interpreter, script, args = "bash -c", None, [command]
        template = entry.template or command
        syntax = shell_syntax(template)
        if syntax:
            reasons.append(f"the MLproject command runs through a shell with {syntax}")
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
            reasons.append("the MLproject command is not a well-formed command line")
        if words and not syntax:
            interpreter, script, args = _analyse(words, cwd, files, reasons)
        source = entry.notes[0] if entry.notes else "the run's MLproject entry point"
    elif entry.kind == "notebook":
        nb = entry.notebook or ""
        args = [c["arg"] for c in entry.changes]
        argv = [PYTHON, NOTEBOOK_RUNNER, nb, *(["--copy", entry.copy] if entry.copy else []),
                *args]
        interpreter, script = PYTHON, nb
        if nb not in files and not entry.copy:
            reasons.append(f"the notebook {_short(nb)} is not tracked at commit {plan.commit[:10]}")
        if entry.copy:
            source = (f"the notebook {nb} as it stood when the run started (its copy "
                      f".octostore/notebooks/{entry.copy}.ipynb, tag octostore.notebook.copy)")
        else:
            source = (f"the notebook {nb} as committed at {plan.commit[:10]} (tag "
                      "octostore.notebook, mlflow.source.name or octostore.argv)")
        notebook = (f"every cell of {nb} runs in order with nbclient, in a python3 kernel of "
                    "the interpreter above, in the notebook's folder"
                    + (f"; after the cell tagged 'parameters' a cell sets {', '.join(args)}"
                       if args else "")
                    + "; the executed notebook is kept as the new run's artifact "
                    "octostore/notebook.ipynb")
    else:
        argv = list(entry.argv or [])
        interpreter, script, args = _analyse(argv, cwd, files, reasons)
        source = ("tag octostore.argv" if entry.kind == "argv"
                  else "tag mlflow.source.name (no command line was recorded)")
    if plan.env_kind == "current" and interpreter == PYTHON:
        interpreter = f"{PYTHON} ({plan.interpreter}, as it is)"
    elif interpreter == PYTHON:
        interpreter = f"{PYTHON} (the run's environment, rebuilt: {plan.env_kind})"
    env = env_changes(plan)
    return {"argv": argv, "display": shlex.join(argv), "interpreter": interpreter,
            "script": script, "args": args, "env": env, "cwd": cwd, "commit": plan.commit,
            "source": f"{source}, run {plan.run_id}", "kind": entry.kind,
            "unusual": bool(reasons), "reasons": reasons, "hash": digest(argv, env, cwd),
            "notebook": notebook}


def _analyse(argv: list[str], cwd: str, files: set[str],
             reasons: list[str]) -> tuple[str, str | None, list[str]]:
    """(interpreter, script, args) of a command line, adding why it is unusual to ``reasons``."""
    if not argv:
        reasons.append("the command line is empty")
        return "", None, []
    first = argv[0]
    if first != PYTHON:
        where = " (an absolute path)" if os.path.isabs(first) else ""
        reasons.append(f"it runs {_short(first)}{where}, not a Python interpreter running a "
                       "file of the repo")
        return first, None, argv[1:]
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "-c":
            reasons.append("it runs Python code given on the command line (python -c)")
            return PYTHON, None, argv[i:]
        if a == "-m":
            if i + 1 >= len(argv):
                reasons.append("python -m names no module")
                return PYTHON, None, argv[i:]
            return PYTHON, f"-m {argv[i + 1]}", argv[i + 2:]
        if a in PY_OPTS_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-") and a != "-":
            i += 1
            continue
        break
    if i >= len(argv) or argv[i] == "-":
        reasons.append("python reads its program from standard input")
        return PYTHON, None, argv[i + 1:]
    script = argv[i]
    if os.path.isabs(script):
        reasons.append(f"the script {_short(script)} is an absolute path, outside the checkout")
    else:
        rel = os.path.normpath(os.path.join(cwd, script)).replace(os.sep, "/")
        if rel.startswith("../") or rel == ".." or rel not in files:
            reasons.append(f"the script {_short(script)} is not a file tracked at the run's commit")
    return PYTHON, script, argv[i + 1:]


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def shell_syntax(command: str) -> str:
    """What in an MLproject command makes the shell do more than run one program ("" if
    nothing): several lines, expansions, operators and redirections.  Placeholders
    (``{alpha}``) are rendered quoted, so they count as plain words."""
    text = _PLACEHOLDER.sub("X", command)
    bare = re.sub(r"'[^']*'", "X", text)  # single quotes: nothing is special inside
    found: list[str] = []
    if "\n" in bare.strip():
        found.append("several lines")
    if "$" in bare or "`" in bare:
        found.append("expansions ($ or `)")
    outside = re.sub(r'"(?:\\.|[^"\\])*"', "X", bare)  # double quotes: no operators inside
    ops = sorted({ch for ch in outside if ch in _SHELL_OPS})
    if ops:
        found.append("operators " + " ".join(ops))
    return ", ".join(found)
