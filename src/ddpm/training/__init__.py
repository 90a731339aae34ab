"""Training loop for the noise-prediction U-Net, with checkpoints that resume exactly.

``train`` fits a :class:`~ddpm.unet.UNet` to uint8 images with L_simple (Adam, linear
learning-rate warm-up, gradient clipping, an exponential moving average (EMA) of the
weights) and writes into ``run_dir``:

``model.pt``
    the EMA weights and the record needed to rebuild model and diffusion
    (read it back with :func:`load_model`);
``train_log.csv``
    columns ``step, loss, lr, seconds``; ``loss`` is the mean over each log interval;
``run.json``
    the record of ``model.pt`` as JSON, plus the wall time, the precision and why it was
    chosen, and the fingerprint of the code that computed the weights;
``snapshots.npz``
    (only with ``snapshot_every``) arrays ``steps`` (K,) and ``images`` uint8
    (K, snapshot_count, C, H, W): EMA-model DDIM samples from one fixed noise seed.

Rolling checkpoints go to ``run_dir/checkpoints/``. They hold everything the run
depends on (:class:`~ddpm.training.state.TrainState`), so a run killed at any step and
started again resumes from the newest intact checkpoint and ends, on the CPU, with
weights bit-identical to a run that was never interrupted. A checkpoint that is damaged,
or was written with other settings, data or code, is set aside, never resumed.

The modules: :mod:`.config` (settings), :mod:`.state` (the training state),
:mod:`.monitor` (NaN and divergence checks), :mod:`.guards` (run-directory lock,
signals), :mod:`.fingerprint` (code identity), :mod:`.outputs` (record and files),
:mod:`.loop` (``train``).
"""

from ..checkpoints import ModelFileError, load_model
from ..files import StorageError
from ..runtime import resolve_device, resolve_precision
from .config import RESUMABLE_CHANGES, TrainingConfig, TrainingConfigError
from .fingerprint import code_fingerprint
from .guards import EXIT_CODES, RunDirectoryBusyError, TrainingInterrupted
from .loop import train
from .monitor import DivergenceError, NonFiniteLossError
from .outputs import RECORD_KEYS as _RECORD_KEYS
from .state import _BatchSampler

__all__ = [
    "EXIT_CODES",
    "RESUMABLE_CHANGES",
    "DivergenceError",
    "ModelFileError",
    "NonFiniteLossError",
    "RunDirectoryBusyError",
    "StorageError",
    "TrainingConfig",
    "TrainingConfigError",
    "TrainingInterrupted",
    "_BatchSampler",
    "_RECORD_KEYS",
    "code_fingerprint",
    "load_model",
    "resolve_device",
    "resolve_precision",
    "train",
]
