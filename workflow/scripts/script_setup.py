"""Shared start of every rule script: this repository's `ddpm`, a log file, thread count.

Snakemake appends the caller's search paths to a script's `sys.path`; inserting this
repository's `src/` first makes sure the rules run the library of this checkout.
"""

import logging
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
while SRC in sys.path:  # it may already be there, behind another checkout's src/
    sys.path.remove(SRC)
sys.path.insert(0, SRC)


def start(snakemake) -> logging.Logger:
    """Send logging and stderr (tracebacks, warnings) to the rule's log file; set threads."""
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
    import torch

    torch.set_num_threads(max(1, int(snakemake.threads)))
    return logging.getLogger(f"rule.{snakemake.rule}")
