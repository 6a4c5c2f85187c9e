"""Capture: what a run needs to be reproduced, recorded as tags when it starts.

MLflow records a run's git commit but not its uncommitted changes, its command
line or its exact packages.  This package adds them, from two entry points:

* :class:`~octostored.capture.provider.OctostoreRunContext`, an MLflow run
  context provider (entry point group ``mlflow.run_context_provider``) that
  every fluent ``mlflow.start_run()`` passes through where octostore is
  installed;
* ``octostore run -- CMD ...`` (:mod:`octostored.cli.commit`), for
  environments without the plugin: it computes the same tags and hands them to
  MLflow through ``MLFLOW_RUN_CONTEXT``.

Tags (all strings, as MLflow wants them):

``octostore.env``
    sha256 of the environment lock (Python version and implementation,
    platform, every installed distribution with its version, editable installs
    marked), written once to ``.octostore/envs/<sha256>.json``.
``octostore.python``
    the interpreter's version, e.g. ``3.11.7``.
``octostore.argv``
    the command line as a JSON list, interpreter spelled ``python``.
``octostore.cwd``
    the working folder relative to the repo (``.`` at its top); absolute
    outside a git repo.
``octostore.git.dirty``
    ``true`` when tracked files differ from HEAD or untracked source files
    exist, else ``false``.
``octostore.git.patch``
    sha256 of ``git diff HEAD`` of tracked files (binary-safe, applicable with
    ``git apply``), written once to ``.octostore/patches/<sha256>.patch``;
    absent when there is no diff.
``octostore.git.untracked``
    JSON list of the untracked source files the patch leaves out.
``octostore.git.commit``
    HEAD's commit (MLflow records none for notebook runs).
``octostore.git.big``
    JSON list of tracked files over 4 MiB that changed since HEAD: left out of the patch
    (diffing a 200 MB data file stalled every run 20 s), recorded by hash as inputs.
``octostore.inputs``
    the token of ``.octostore/inputs/<token>.json``: the files under the repo the training
    process read (size, sha256) and the big changed files (:mod:`~.inputs`).
``octostore.notebook``, ``octostore.notebook.copy``
    for a run inside a Jupyter kernel: the notebook's path in the repo and the sha256 of
    its copy ``.octostore/notebooks/<sha256>.ipynb`` as it stood (:mod:`~.notebook`).
``octostore.capture_error``
    set instead of failing the run when anything above went wrong.
``octostore.console_log``
    the root-relative path of the run's console log
    (``.octostore/logs/<id>.log``), when the process runs under
    ``octostore run`` or the project set ``capture_console = true``
    (:mod:`~octostored.capture.consolelog`, :mod:`octostored.console`).
``octostore.console_capture``
    why the in-process console capture turned itself off (instead of the above).

The plugin comes with octostore (its entry point in ``pyproject.toml``), or alone, into any
environment, as the distribution ``octostore-capture`` (``octostore capture install``,
:mod:`octostored.capture_dist`): this package is then ``octostore_capture.capture``, beside
the few octostored modules it imports (:mod:`octostored.capture_wheel`), hence relative
imports only, and code that runs on Python 3.9.  A lock records it as ``octostore-capture``
at its version, and reproduce installs it from that same wheel.  Where both are installed,
the lone copy stands aside (:func:`~octostored.capture.provider.stands_aside`).

This package imports only the standard library (a run context provider loads
at ``import mlflow`` in the user's training process, whatever environment that
is), and costs a few milliseconds per run: the lock is cached per interpreter
and invalidated by the mtimes of ``sys.path`` folders (see
:mod:`~octostored.capture.envlock`); the two git processes run concurrently.
Measured in ``bench/capture_overhead.py``.
"""
