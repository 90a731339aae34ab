"""Shared start of every rule script: this repository's `ddpm`, a log file, thread count.

Snakemake appends the caller's search paths to a script's `sys.path`; inserting this
repository's `src/` first makes sure the rules run the library of this checkout.
"""

import logging
import os
import socket
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
while SRC in sys.path:  # it may already be there, behind another checkout's src/
    sys.path.remove(SRC)
sys.path.insert(0, SRC)


def start(snakemake) -> logging.Logger:
    """Send logging and stderr (tracebacks, warnings) to the rule's log file; set threads;
    say where the job runs (host, SLURM job, visible GPUs)."""
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    sys.excepthook = _one_line_for_errors_the_user_can_fix
    import torch

    torch.set_num_threads(max(1, int(snakemake.threads)))
    log = logging.getLogger(f"rule.{snakemake.rule}")
    log.info(
        "on %s, SLURM job %s, CUDA_VISIBLE_DEVICES=%s, %d thread(s)",
        socket.gethostname(),
        os.environ.get("SLURM_JOB_ID", "none"),
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
        torch.get_num_threads(),
    )
    return log


def _one_line_for_errors_the_user_can_fix(kind, error, traceback) -> None:
    """A :class:`ddpm.DDPMError` names the problem and the fix: the log gets that line alone
    (as the ``ddpm`` command prints it); anything else is a bug and keeps its traceback."""
    from ddpm import DDPMError

    if isinstance(error, DDPMError):
        print(f"error: {error}", file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, traceback)


def device(snakemake) -> str:
    """The job's device: the study's ``device`` param, ``cuda`` where the profile gave the job
    a GPU and the study leaves the device to ``auto`` (an error naming the cause where CUDA is
    not usable)."""
    from ddpm.runtime import gpu_request, resolve_job_device

    return str(resolve_job_device(snakemake.params.device, gpu_request(snakemake.resources)))
