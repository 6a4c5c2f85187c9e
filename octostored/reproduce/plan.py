"""Resolve: what a reproduction of one run needs, decided before anything is built.

From the run's tags (and the repo's history) :func:`resolve` works out:

* **the commit** (``mlflow.source.git.commit``, else octostore's own
  ``octostore.git.commit``: MLflow records none for a notebook run), which must
  be in the repo (else: which commit is missing, and ``git fetch``);
* **the patch** (``octostore.git.patch``): the uncommitted changes of a run
  from a dirty tree, found under ``.octostore/patches/`` and checked against
  its hash; untracked source files the patch could not carry are listed;
* **the entry point**: the captured command line (``octostore.argv``, run in
  ``octostore.cwd``); else the run's MLproject entry point with its params;
  else its source (``mlflow.source.name``); a notebook run
  (``octostore.notebook``, or a notebook in the command line or source) is
  executed with nbclient: the copy of the notebook as it stood when the run
  started (``octostore.notebook.copy``), else the notebook at the commit.
  ``--set`` changes are applied here (:mod:`.overrides`; for a notebook, to
  the cell tagged ``parameters``), so a run whose params cannot be changed
  from outside is refused before anything is built;
* **what will run, shown before it runs** (:mod:`.command`): the command taken
  apart (interpreter, script, arguments, environment changes, working folder,
  the tag it came from), marked unusual when it is not a Python interpreter
  running a file tracked at the commit, with its hash; a repo is untrusted, so
  it runs only once this user accepted it (:mod:`.trust`);
* **the inputs** (:mod:`.inputs`): the files the run read, each found in the
  commit, provided from the user's clone, differing, or missing (refused here,
  before anything runs, each named with its size, hash and why);
* **the environment's source** (:mod:`.envspec`): the captured lock, the
  model's recorded environment, the repo's files at the commit, or an
  interpreter as it is;
* **the store** the new run is logged to: the caller's tracking URI, else
  the store the original lives in (unless that is octostore's committed
  export, which only ``octostore commit`` writes), else the root's configured
  store, else MLflow's own default in the run's folder (``mlflow.db``).

MLproject files and notebooks are read at the commit with ``git show``; the
environment files are read from the worktree later (the environment phase).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..capture import files as capture_files
from ..digest import sha256_file
from ..inert import inert
from ..jobs import JobError
from . import command, envspec, overrides, worktree
from . import inputs as run_inputs

if TYPE_CHECKING:
    from ..index.state import SourceInfo
    from ..model import Run

ENV_KINDS = ("auto", "captured", "model", "project", "current")
HEX64 = re.compile(r"[0-9a-f]{64}")
NOTEBOOK_TOOLS = ("nbconvert", "papermill", "nbclient", "jupyter", "ipykernel")


@dataclass
class EntryPoint:
    kind: str
    """argv, mlproject, script or notebook."""
    cwd: str = "."
    """Where it runs, relative to the repo's top."""
    argv: list[str] | None = None
    """argv/script: the command, interpreter spelled ``python``."""
    command: str | None = None
    """mlproject: the shell command, parameters rendered."""
    template: str | None = None
    """mlproject: the command as the MLproject file writes it (placeholders unrendered)."""
    notebook: str | None = None
    """notebook: its path relative to the repo's top."""
    copy: str | None = None
    """notebook: sha256 of the copy that runs (``.octostore/notebooks/<sha256>.ipynb``);
    None: the notebook as committed runs."""
    params_settable: bool = True
    changes: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_name: str = ""

    def display(self) -> str:
        if self.kind == "mlproject":
            return self.command or ""
        if self.kind == "notebook":
            return f"notebook {self.notebook}" + (f" (copy {self.copy[:12]})" if self.copy
                                                  else "")
        return shlex.join(self.argv or [])

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "cwd": self.cwd, "argv": self.argv, "command": self.command,
                "notebook": self.notebook, "notebook_copy": self.copy,
                "display": self.display(), "changes": self.changes,
                "notes": self.notes}


@dataclass
class Store:
    uri: str
    kind: str
    """sqlite, file or remote."""
    helper_cwd: str
    """Working folder of MLflow-side processes (a new experiment's artifacts go below it)."""
    why: str


@dataclass
class Plan:
    run_id: str
    run_name: str | None
    experiment: str
    repo: str
    commit: str
    entry: EntryPoint
    env_kind: str
    store: Store
    overrides: dict[str, str]
    original_metrics: dict[str, float]
    original_params: dict[str, str]
    original_tags: dict[str, str]
    patch: str | None = None
    patch_digest: str | None = None
    untracked: list[str] = field(default_factory=list)
    lock: tuple[dict[str, Any], str, str] | None = None
    """(lock, its sha256, where it was found) for a captured environment."""
    model_dir: str | None = None
    interpreter: str | None = None
    notes: list[str] = field(default_factory=list)
    command: dict[str, Any] = field(default_factory=dict)
    """What will run, as shown before it runs (:func:`.command.describe`)."""
    inputs: run_inputs.Inputs = field(default_factory=run_inputs.Inputs)
    """The files the run read, each with its case (:mod:`.inputs`)."""

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_name": self.run_name, "experiment": self.experiment,
                "commit": self.commit, "patch": self.patch_digest, "untracked": self.untracked,
                "entry_point": self.entry.describe(), "environment": self.env_kind,
                "store": {"uri": self.store.uri, "kind": self.store.kind, "why": self.store.why},
                "overrides": self.overrides, "notes": self.notes, "command": self.command,
                "inputs": [i.describe() for i in self.inputs.items]}


async def resolve(repo: str, run: Run, experiment: str, sources: dict[str, SourceInfo], *,
                  sets: dict[str, str], env: str = "auto", tracking_uri: str | None = None,
                  python: str | None = None, artifact_dir: str | None = None) -> Plan:
    """Everything about ``run`` that the later phases need.

    Raises:
        JobError: (phase ``resolve``) the commit, patch, entry point, environment or
            ``--set`` cannot be had, with what to do.
    """
    tags = run.tags
    notes: list[str] = []
    top = await worktree.repo_top(repo)
    short = run.run_id[:8]
    commit_tag = tags.get("mlflow.source.git.commit") or tags.get("octostore.git.commit")
    if not commit_tag:
        raise JobError("resolve", f"run {short} records no git commit (tags "
                       "mlflow.source.git.commit and octostore.git.commit), so its code cannot "
                       "be checked out",
                       "make new runs inside a git repository with octostore installed in the "
                       "training environment (or with `octostore run -- python ...`): octostore "
                       "then records HEAD's commit for every run, notebooks included")
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", commit_tag):
        raise JobError("resolve", f"run {short} names a commit {commit_tag[:40]!r} that is not "
                       "a commit id", "the run's commit tag is damaged; reproduce another run")
    commit = await worktree.full_commit(top, commit_tag)
    if commit is None:
        raise JobError("resolve", f"commit {commit_tag} of run {short} is not in this "
                       "repository", f"fetch it (`git fetch --all`, or `git fetch origin "
                       f"{commit_tag}`) and try again", missing_commit=commit_tag)
    patch = patch_digest = None
    if tags.get("octostore.git.patch"):
        patch_digest = tags["octostore.git.patch"]
        if not HEX64.fullmatch(patch_digest):
            raise JobError("resolve", f"run {short} names a patch {patch_digest[:40]!r} that is "
                           "not a sha256", "the run's octostore.git.patch tag is damaged")
        patch = capture_files.patch_path(top, patch_digest)
        if not os.path.isfile(patch):
            raise JobError("resolve", f"run {short} was made from uncommitted changes whose "
                           f"patch ({patch_digest[:12]}) is not in "
                           f"{os.path.relpath(patch, top)}",
                           "commit the run with `octostore commit` on the machine that made it "
                           "(it commits the patch too), pull, and try again",
                           missing_patch=patch_digest)
        if sha256_file(patch) != patch_digest:
            raise JobError("resolve", f"the patch file {os.path.relpath(patch, top)} does not "
                           "match its hash", "restore it from git (`git checkout -- "
                           f"{os.path.relpath(patch, top)}`)")
    elif tags.get("octostore.git.dirty") == "true":
        notes.append("the run's tree was dirty but has no patch: only untracked files differed")
    untracked = _json_list(tags.get("octostore.git.untracked"))
    if untracked:
        notes.append(f"{len(untracked)} untracked file(s) at run time are not in the patch: "
                     + ", ".join(untracked[:5]))

    files = await _tree_files(top, commit)
    entry = await _entry_point(top, commit, run, files, sets)
    plan = Plan(run.run_id, run.run_name, experiment, top, commit, entry, "", _store(
        top, run, sources, tracking_uri, entry.cwd), sets,
        {k: v[0] for k, v in run.metrics.items()}, dict(run.params), dict(tags), patch,
        patch_digest, untracked, notes=notes)
    _choose_env(plan, run, env, python, artifact_dir, sources)
    plan.command = command.describe(plan, files)
    plan.inputs = run_inputs.load(top, tags)
    plan.notes += plan.inputs.notes
    if entry.kind == "notebook":  # the notebook is the code that runs (from its copy), not data
        plan.inputs.items = [i for i in plan.inputs.items if i.path != entry.notebook]
    datasets = [d for d in run.inputs if isinstance(d, dict)]
    if datasets:
        named = ", ".join(f"{d.get('name') or '?'} (digest {str(d.get('digest') or '?')[:12]}, "
                          f"{d.get('source_type') or 'source unknown'})" for d in datasets[:5])
        plan.notes.append(f"the run logged {len(datasets)} MLflow dataset(s) with log_input: "
                          f"{named}; these records are not checked, the files it read are")
    await run_inputs.check(top, commit, files, plan.inputs)
    return plan


def _json_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


async def _tree_files(top: str, commit: str) -> set[str]:
    code, out, err = await worktree.git(top, "ls-tree", "-r", "--name-only", "-z", commit)
    if code != 0:
        raise JobError("resolve", f"cannot list commit {commit[:10]}: "
                       f"{worktree.first_line(err)}", "check the repository with `git fsck`")
    return {p for p in out.split("\0") if p}


def map_path(path: str, files: set[str], cwd: str = ".") -> str | None:
    """A path from the run (absolute on another machine, or relative to ``cwd``) in the repo."""
    if not path:
        return None
    p = path.replace("\\", "/")
    if not p.startswith("/"):
        rel = os.path.normpath(os.path.join(cwd, p)).replace(os.sep, "/")
        if rel in files:
            return rel
        if p in files:
            return p
    parts = [x for x in p.split("/") if x]
    for i in range(len(parts)):
        cand = "/".join(parts[i:])
        if cand in files:
            return cand
    return None


async def _show(top: str, commit: str, rel: str) -> str | None:
    code, out, _ = await worktree.git(top, "show", f"{commit}:{rel}")
    return out if code == 0 else None


async def _entry_point(top: str, commit: str, run: Run, files: set[str],
                       sets: dict[str, str]) -> EntryPoint:
    tags = run.tags
    cwd = tags.get("octostore.cwd") or "."
    if os.path.isabs(cwd) or cwd.startswith(".."):
        cwd = "."
    source = tags.get("mlflow.source.name", "")
    argv = _json_list(tags.get("octostore.argv"))
    notes: list[str] = []
    if argv and any(a.startswith("... and ") and a.endswith(" more") for a in argv[-1:]):
        notes.append("the captured command line was too long to record whole; not used")
        argv = []
    if "octostore.notebook" in tags:
        return await _tagged_notebook(top, commit, run, files, sets, source)
    if argv:
        nb = _notebook_in_argv(argv)
        if nb is not None:
            rel = map_path(nb, files, cwd)
            if rel is None:
                raise JobError("resolve", f"the run's notebook {nb} is not in commit "
                               f"{commit[:10]}", "commit the notebook, then run it again")
            return await _notebook_entry(top, commit, rel, sets, source)
        if "ipykernel_launcher" in " ".join(argv):
            if source.endswith(".ipynb") and (rel := map_path(source, files, cwd)):
                return await _notebook_entry(top, commit, rel, sets, source)
            raise JobError("resolve", "the run was made in an interactive Jupyter kernel and "
                           "does not say which notebook it came from",
                           "run the notebook with `octostore run -- jupyter nbconvert --execute "
                           "--to notebook NOTEBOOK.ipynb` so that it can be reproduced")
        argv = _map_script(argv, files, cwd, notes)
        try:
            new_argv, changes = overrides.rewrite_argv(argv, sets, run.params)
        except overrides.CannotOverride as exc:
            raise JobError("resolve", exc.message, exc.remedy) from None
        return EntryPoint("argv", cwd, new_argv, changes=changes, notes=notes,
                          source_name=source)
    mlproject = await _mlproject_entry(top, commit, run, files, cwd, source, sets)
    if mlproject is not None:
        mlproject.notes = notes + mlproject.notes
        return mlproject
    if source:
        rel = map_path(source, files, cwd)
        if rel is None:
            raise JobError("resolve", f"the run's source {source} is not in commit {commit[:10]}",
                           "start runs with the octostore plugin installed, or with `octostore "
                           "run -- python train.py`, so that their command line is recorded")
        if rel.endswith(".ipynb"):
            return await _notebook_entry(top, commit, rel, sets, source)
        if sets:
            raise JobError("resolve", "this run's parameters cannot be changed from outside: it "
                           "records neither its command line nor an MLproject entry point",
                           "reproduce it without --set, or make new runs with `octostore run -- "
                           "python ...` (or the plugin installed) so that their command line is "
                           "recorded")
        folder = os.path.dirname(rel) or "."
        notes.append("no command line was recorded: the script runs without arguments, so its "
                     "defaults apply")
        return EntryPoint("script", folder, ["python", os.path.basename(rel)],
                          params_settable=False, notes=notes, source_name=source)
    raise JobError("resolve", f"run {run.run_id[:8]} records neither its command line "
                   "(octostore.argv) nor its source (mlflow.source.name)",
                   "start runs with the octostore plugin installed, or with `octostore run -- "
                   "python train.py`")


def _notebook_in_argv(argv: list[str]) -> str | None:
    joined = " ".join(argv)
    if not any(t in joined for t in NOTEBOOK_TOOLS):
        return None
    for a in argv:
        if a.endswith(".ipynb"):
            return a
    return None


def _map_script(argv: list[str], files: set[str], cwd: str, notes: list[str]) -> list[str]:
    start = overrides.script_start(argv)
    idx = start - 1
    if argv and argv[0] == "python" and 0 < idx < len(argv) and argv[idx - 1] not in ("-m", "-c"):
        script = argv[idx]
        if script.startswith("/") and not os.path.exists(script):
            rel = map_path(script, files, cwd)
            if rel is not None:
                new = os.path.relpath(rel, cwd if cwd != "." else ".").replace(os.sep, "/")
                notes.append(f"the script {script} is {rel} in the repo")
                return [*argv[:idx], new, *argv[idx + 1:]]
    return argv


async def _tagged_notebook(top: str, commit: str, run: Run, files: set[str],
                           sets: dict[str, str], source: str) -> EntryPoint:
    """A run made in a Jupyter kernel: its notebook (``octostore.notebook``), run from the copy
    taken when the run started (``octostore.notebook.copy``) when this clone has it."""
    tags = run.tags
    short = run.run_id[:8]
    nb = tags.get("octostore.notebook") or ""
    if not nb:
        raise JobError("resolve", f"run {short} was made in a Jupyter kernel that did not say "
                       "which notebook it ran", "run the notebook with `jupyter nbconvert "
                       "--execute --to notebook NOTEBOOK.ipynb` (or from JupyterLab or VS Code) "
                       "so that its path is recorded")
    norm = os.path.normpath(nb).replace(os.sep, "/")
    outside = os.path.isabs(norm) or norm == ".." or norm.startswith("../")
    rel = map_path(norm, files) if not outside else None
    digest = tags.get("octostore.notebook.copy") or ""
    copy = None
    notes: list[str] = []
    if digest and HEX64.fullmatch(digest):
        path = nb_copy_path(top, digest)
        if os.path.isfile(path) and not os.path.islink(path) and \
                sha256_file(path) == digest:
            copy = digest
        else:
            notes.append(f"the copy of the notebook as it ran ({digest[:12]}) is not in this "
                         "clone: the notebook as committed runs, and may differ")
    if rel is None:
        if copy is None or outside:
            raise JobError("resolve", f"the run's notebook {nb[:200]} is "
                           + ("outside the repo" if outside else f"not in commit {commit[:10]}")
                           + (" and no copy of it is in this clone" if copy is None else ""),
                           "keep notebooks in the repo and commit them before their runs")
        rel = norm
    entry = await _notebook_entry(top, commit, rel, sets, source, copy)
    entry.notes = notes + entry.notes
    return entry


def nb_copy_path(top: str, digest: str) -> str:
    return os.path.join(top, capture_files.OCTOSTORE_DIR, "notebooks", digest + ".ipynb")


async def _notebook_entry(top: str, commit: str, rel: str, sets: dict[str, str],
                          source: str, copy: str | None = None) -> EntryPoint:
    if copy is not None:
        with open(nb_copy_path(top, copy), encoding="utf-8", errors="replace") as f:
            text: str | None = f.read()
    else:
        text = await _show(top, commit, rel)
    has_params = False
    try:
        nb = json.loads(text or "{}")
        has_params = any("parameters" in ((c.get("metadata") or {}).get("tags") or [])
                         for c in nb.get("cells", []))
    except (ValueError, AttributeError):
        pass
    if sets and not has_params:
        raise JobError("resolve", f"the notebook {rel} has no cell tagged 'parameters', so its "
                       "parameters cannot be changed from outside",
                       "tag the cell that sets its parameters 'parameters' (as papermill does)")
    return EntryPoint("notebook", os.path.dirname(rel) or ".", notebook=rel, copy=copy,
                      params_settable=has_params, source_name=source,
                      changes=[{"key": k, "how": "parameter cell", "arg": f"{k} = {v}"}
                               for k, v in sets.items()])


async def _mlproject_entry(top: str, commit: str, run: Run, files: set[str], cwd: str,
                           source: str, sets: dict[str, str]) -> EntryPoint | None:
    from ..envfiles import parse_env_file

    candidates = []
    for folder in (cwd, os.path.dirname(map_path(source, files, cwd) or "") or None, "."):
        if folder is None:
            continue
        rel = os.path.normpath(os.path.join(folder, "MLproject")).replace(os.sep, "/")
        rel = rel.removeprefix("./")
        if rel in files and rel not in candidates:
            candidates.append(rel)
    if not candidates:
        return None
    wanted = run.tags.get("mlflow.project.entryPoint")
    for rel in candidates:
        text = await _show(top, commit, rel)
        if text is None:
            continue
        with tempfile.TemporaryDirectory(prefix="octostore-mlproject-") as tmp:
            with open(os.path.join(tmp, "MLproject"), "w", encoding="utf-8") as f:
                f.write(text)
            rec = parse_env_file(tmp, "MLproject")
        eps: dict[str, Any] = rec.get("entry_points") or {}
        name = wanted if wanted in eps else None
        if name is None and not wanted and source:
            base = os.path.basename(source)
            hits = [n for n, ep in eps.items() if ep.get("command") and base in ep["command"]]
            name = hits[0] if len(hits) == 1 else ("main" if "main" in hits else None)
        if name is None or not eps[name].get("command"):
            continue
        declared = eps[name].get("parameters") or {}
        values = {k: run.params[k] for k in declared if k in run.params}
        values.update(sets)
        try:
            overrides.check_mlproject_keys(sets, declared, name)
            rendered, missing = overrides.render_mlproject(eps[name]["command"], declared,
                                                           values)
        except overrides.CannotOverride as exc:
            raise JobError("resolve", exc.message, exc.remedy) from None
        notes = [f"MLproject entry point {name!r} ({rel})"]
        if missing:
            notes.append(f"parameters without a value: {', '.join(missing)}")
        return EntryPoint("mlproject", os.path.dirname(rel) or ".", command=rendered,
                          template=str(eps[name]["command"]), notes=notes, source_name=source,
                          changes=[{"key": k, "how": "parameter", "arg": f"{k}={v}"}
                                   for k, v in sets.items()])
    return None


def _store(top: str, run: Run, sources: dict[str, SourceInfo], tracking_uri: str | None,
           cwd: str) -> Store:
    if tracking_uri:
        return _store_from_uri(tracking_uri, top, "the tracking URI you gave")
    for sid in [run.source, *run.sources]:
        info = sources.get(sid)
        if info is None or info.committed:
            continue
        if info.kind == "sqlite":
            return Store("sqlite:///" + info.path, "sqlite", os.path.dirname(info.path),
                         f"the store the run lives in ({info.id})")
        if info.kind == "file":
            return Store("file://" + info.path, "file", os.path.dirname(info.path),
                         f"the store the run lives in ({info.id})")
    from ..sources.discover import configured_stores

    configured = configured_stores(top, [])
    if configured:
        store = _store_from_uri(configured[0], top, "the repo's configured store")
        from ..servertrust import is_trusted, origin

        if store.kind == "remote" and not is_trusted(store.uri):  # the run gets our credentials
            raise JobError("resolve", f"the repo names the tracking server "
                           f"{origin(store.uri)} to log to, which you have not trusted",
                           f"run `octostore remote trust {origin(store.uri)}`, or give "
                           "another store with --tracking-uri")
        return store
    folder = os.path.normpath(os.path.join(top, cwd))
    return Store("sqlite:///" + os.path.join(folder, "mlflow.db"), "sqlite", folder,
                 "MLflow's default store in the run's folder")


def _store_from_uri(uri: str, top: str, why: str) -> Store:
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        path = path if os.path.isabs(path) else os.path.join(top, path)
        return Store("sqlite:///" + path, "sqlite", os.path.dirname(path), why)
    if uri.startswith("file:") or "://" not in uri:
        path = uri[len("file://"):] if uri.startswith("file://") else uri.removeprefix("file:")
        path = path if os.path.isabs(path) else os.path.join(top, path)
        return Store("file://" + os.path.normpath(path), "file", os.path.dirname(path), why)
    return Store(uri, "remote", top, why)


def _choose_env(plan: Plan, run: Run, env: str, python: str | None,
                artifact_dir: str | None, sources: dict[str, SourceInfo]) -> None:
    tags = run.tags
    digest = tags.get("octostore.env")
    if digest is not None and not HEX64.fullmatch(digest):
        plan.notes.append(f"the run's octostore.env tag {digest[:40]!r} is not a sha256; ignored")
        digest = None
    lock = envspec.find_lock(plan.repo, digest) if digest else None
    why_not: list[str] = []
    if digest is None:
        why_not.append("no captured environment (tag octostore.env)")
    elif lock is None:
        why_not.append(f"the captured lock {digest[:12]} is not in "
                       f".octostore/envs/ nor in the capture cache")
    if lock is not None:
        plan.lock = (lock[0], digest or "", lock[1])
    if env == "current":
        plan.env_kind = "current"
        plan.interpreter = python
        return
    if env in ("auto", "captured"):
        if lock is not None:
            plan.env_kind = "captured"
            return
        if env == "captured":
            raise JobError("resolve", f"run {run.run_id[:8]} has {why_not[0]}",
                           "use --env project (the repo's environment files at the run's "
                           "commit) or --env current")
    if env in ("auto", "model"):
        chosen, why = envspec.choose_model(
            envspec.run_models(run, sources, plan.repo, artifact_dir), run.run_id[:8])
        if chosen is not None:
            plan.env_kind = "model"
            plan.model_dir = chosen.folder
            plan.notes.append(f"the environment of the run's model {inert(chosen.label())}")
            if env == "auto":
                plan.notes.append(f"{why_not[0] if why_not else 'no lock'}: using the "
                                  "environment the run's logged model recorded")
            return
        if env == "model":
            raise JobError("resolve", inert(why), "use --env project or --env captured")
        why_not.append(inert(why))
    plan.env_kind = "project"
    if env == "auto":
        plan.notes.append(f"{'; '.join(why_not)}: falling back to the repo's environment "
                          "files at the run's commit")


def config(top: str) -> dict[str, Any]:
    """The ``[tool.octostore.reproduce]`` table (``pyproject.toml``), or ``[reproduce]``
    (``octostore.toml``).

    Keys: ``tolerance`` (relative, default 0 = exact), ``ignore_metrics`` (list of keys,
    e.g. timings that never reproduce).  A file that cannot be read counts as empty.
    """
    from .. import settings

    rep = settings.table(top, "reproduce")
    out: dict[str, Any] = {}
    if rep is None:
        return out
    if isinstance(rep.get("tolerance"), (int, float)) and rep["tolerance"] >= 0:
        out["tolerance"] = float(rep["tolerance"])
    if isinstance(rep.get("ignore_metrics"), list):
        out["ignore_metrics"] = [str(k) for k in rep["ignore_metrics"]]
    return out
