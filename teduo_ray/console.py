"""What the operator sees: a start line, a progress bar and a summary per stage; the rest goes to
``RUN/logs/<stage>.log``.

A run that takes hours is followed on the console, so the console carries only the project's
own lines: each stage's start line (what, how many units, where it writes), its tqdm bars,
its summary, warnings from ``teduo_ray`` loggers and the one-line ``teduo: error:``.
Everything else a driver produces is written to the stage's log file:

- Python logging of Ray, Ray Data, RLlib, Ray Train, DeepSpeed, transformers, ... (through
  the root logger, or through the handlers these libraries attach to stderr themselves:
  :class:`_Stderr` sends writes that come from the ``logging`` module to the log, whenever
  the handler was made);
- ``warnings`` (``logging.captureWarnings``), library ``print``s (``sys.stdout``) and C++
  output of Ray's core worker (file descriptors 1 and 2 point at the log).

Ray workers' output stays in Ray's session logs (``log_to_driver=False``) and Ray Data's own
progress bars are off. ``--verbose`` turns all of this off: everything on the console, as
before. Only the CLI calls :func:`setup`; library users and tests keep Python's defaults.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from teduo_ray.rundir import RunDir

LOGS = "logs"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class _State:
    """The console streams (duplicates of the original stdout / stderr) and the open log."""

    verbose: bool
    out: IO[str]
    err: IO[str]
    log: IO[str] | None = None


_state: _State | None = None


class _Stderr:
    """``sys.stderr`` for a quiet console: writes made by ``logging`` handlers (libraries often
    bind one to stderr at import time) go to the stage log; everything else (tqdm bars,
    tracebacks) to the console."""

    def __init__(self, state: _State) -> None:
        self._state = state

    def _target(self) -> IO[str]:
        from_logging = sys._getframe(2).f_globals.get("__name__") == "logging"
        return self._state.log if from_logging and self._state.log is not None else self._state.err

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._state.err.flush()
        if self._state.log is not None:
            self._state.log.flush()

    def isatty(self) -> bool:
        return self._state.err.isatty()

    def fileno(self) -> int:
        return self._state.err.fileno()

    def __getattr__(self, name: str) -> object:
        return getattr(self._state.err, name)


class _OwnWarnings(logging.Filter):
    """Console filter: the project's warnings and errors only (everything with --verbose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("teduo_ray") and record.levelno >= logging.WARNING


def setup(verbose: bool) -> None:
    """Configure this process for the CLI: console handler, captured warnings, quiet Ray.

    Args:
        verbose: show every library's logs on the console (and Ray workers' output).
    """
    global _state
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    err = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    _state = _State(verbose, out, err)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(err)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if not verbose else _FORMAT))
    if not verbose:
        console.addFilter(_OwnWarnings())
        sys.stderr = _Stderr(_state)  # type: ignore[assignment]
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Writing model shards"
    root.addHandler(console)
    logging.captureWarnings(True)


def is_verbose() -> bool:
    """Whether library output belongs on the console (``--verbose``, or no CLI at all)."""
    return _state is None or _state.verbose


def say(text: str) -> None:
    """Print one of the project's own lines on the console (stdout without the CLI)."""
    stream = _state.out if _state is not None else sys.stdout
    print(text, file=stream, flush=True)


@contextmanager
def stage_log(run: RunDir, stage: str) -> Iterator[str | None]:
    """Send this process's logs to ``RUN/logs/<stage>.log`` while a stage runs.

    Without :func:`setup` (library use, tests) nothing changes. On a remote run directory the
    log is written locally and uploaded when the stage ends.

    Yields:
        The log's path in the run directory (None without the CLI).
    """
    if _state is None:
        yield None
        return
    local = _is_local(run)
    if local:
        run.fs.create_dir(run.path(LOGS), recursive=True)
        path = run.path(LOGS, f"{stage}.log")
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="teduo-log-"), f"{stage}.log")
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logging.getLogger().addHandler(handler)
    previous, _state.log = _state.log, log
    if not _state.verbose:
        sys.stdout.flush()
        os.dup2(log.fileno(), 1)  # C-level output (Ray's core worker) and library prints
        os.dup2(log.fileno(), 2)
    try:
        yield run.path(LOGS, f"{stage}.log")
    finally:
        logging.getLogger().removeHandler(handler)
        _state.log = previous
        sys.stdout.flush()
        log.close()
        if not local:
            with open(path, "rb") as f:
                run.write_bytes(f.read(), LOGS, f"{stage}.log")


def _is_local(run: RunDir) -> bool:
    """Whether the run directory is on this machine's filesystem."""
    import pyarrow.fs as pafs

    return isinstance(run.fs, pafs.LocalFileSystem)


class _SharedBar:
    """A sub-step's view of its stage's one bar: everything is forwarded, except ``close``
    (the stage closes it when it ends)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bar, name)

    def close(self) -> None:
        pass

    def __enter__(self) -> _SharedBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@dataclass
class _Bars:
    stage: str | None = None
    bar: Any = None


_bars = _Bars()


@contextmanager
def stage_bar(stage: str) -> Iterator[None]:
    """While a stage runs, its sub-steps share one progress bar (:func:`progress_bar`): the
    console shows one line per stage, re-labelled "stage: sub-step", not one per sub-step."""
    previous = (_bars.stage, _bars.bar)
    _bars.stage, _bars.bar = stage, None
    try:
        yield
    finally:
        if _bars.bar is not None:
            _bars.bar.close()
        _bars.stage, _bars.bar = previous


def progress_bar(step: str, total: int, unit: str, initial: int = 0, disable: bool = False) -> Any:
    """A tqdm bar for one sub-step: the running stage's bar, reset to ``total`` and labelled
    with ``step``, or (outside :func:`stage_bar`) a bar of its own."""
    from tqdm import tqdm

    if _bars.stage is None or disable:
        return tqdm(total=total, initial=initial, desc=step, unit=unit, disable=disable)
    desc = step if step == _bars.stage else f"{_bars.stage}: {step}"
    if _bars.bar is None:
        _bars.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit)
    else:
        _bars.bar.unit = unit
        _bars.bar.set_description(desc, refresh=False)
        _bars.bar.reset(total=total)
        _bars.bar.update(initial)
    return _SharedBar(_bars.bar)

