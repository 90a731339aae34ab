"""What keeps a training run safe from its surroundings: one writer, and stopping on a signal.

``RunDirectoryLock``: an exclusive ``fcntl.flock`` on ``run_dir/.lock`` for the lifetime
of a training. The operating system drops it when the process ends, however it ends
(SIGKILL, a node crash), so a stale lock cannot block a retry; a second process asking
for it while the first lives is refused at once, with the holder's pid and host.

``StopSignals``: while a training runs in the main thread, SIGINT, SIGTERM and SIGUSR1 only
set a flag; the loop looks at it between steps and stops cleanly (:class:`TrainingInterrupted`).
SIGTERM is what SLURM, Kubernetes and ``kill`` send before ending a job, SIGUSR1 what SLURM
sends ahead of a time limit with ``sbatch --signal=USR1@<seconds>``; for both the run writes
a checkpoint at the current step, so that its retry resumes exactly there.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import threading
from pathlib import Path

from .. import TrainingError

__all__ = [
    "EXIT_CODES",
    "RunDirectoryLock",
    "StopSignals",
    "TrainingInterrupted",
]

#: Exit status for each signal, by the shell's convention 128 + the signal's number:
#: 130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1 (on Linux). All are non-zero, so a
#: workflow manager sees the job as failed and retries it, which then resumes.
EXIT_CODES = {sig: 128 + sig for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}

#: The signals on which the run writes a checkpoint before it stops. Ctrl-C (SIGINT) stops
#: at once and resumes from the last regular checkpoint.
CHECKPOINT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(SystemExit):
    """Training stopped on a signal; ``code`` is the exit status (see :data:`EXIT_CODES`).

    A :class:`SystemExit`, so a script or CLI that does not catch it exits with that status
    and without a traceback. ``signal`` and ``step`` say what stopped it and where;
    ``resume_step`` is the step the next start resumes from.
    """

    def __init__(self, signum: int, step: int, resume_step: int, message: str):
        super().__init__(EXIT_CODES[signum])
        self.signal = signum
        self.step = step
        self.resume_step = resume_step
        self.message = message

    def __str__(self) -> str:
        return self.message


class RunDirectoryLock:
    """``with RunDirectoryLock(run_dir):`` holds ``run_dir/.lock`` exclusively, or raises."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._handle = None

    def __enter__(self) -> RunDirectoryLock:
        handle = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            handle.close()
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise TrainingError(
                f"{self.path.parent} is being trained by {holder} (it holds {self.path}); "
                f"wait for that run to end or stop it, or train into another directory"
            ) from err
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        # Closing the file releases the lock; the file itself stays (deleting it would let a
        # waiting process lock a file that a third one no longer sees).
        self._handle.close()
        self._handle = None


class StopSignals:
    """``with StopSignals() as stop:`` turns the stop signals into ``stop.received``.

    Installed only in the main thread (Python delivers signals there only); elsewhere it
    does nothing and the signals keep their usual effect. The previous handlers return on
    exit. A second Ctrl-C while stopping raises KeyboardInterrupt at once.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @property
    def wants_checkpoint(self) -> bool:
        return self.received in CHECKPOINT_SIGNALS
