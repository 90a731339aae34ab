"""Training loop for the noise-prediction U-Net, with checkpoints that resume exactly.

:func:`ddpm.training.loop.train` fits a :class:`~ddpm.unet.UNet` to uint8 images with
L_simple (Adam, linear learning-rate warm-up, gradient clipping, an exponential moving average
(EMA) of the weights) and writes into ``run_dir``:

``model.pt``
    the EMA weights and the record needed to rebuild model and diffusion
    (read it back with :func:`ddpm.checkpoints.load_model`);
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
signals), :mod:`.outputs` (identity, record and files), :mod:`.loop` (``train``). Like every
package of the library, this one imports nothing itself: names are imported from their
modules.
"""
