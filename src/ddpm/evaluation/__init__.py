"""Sample quality: IS, FID, KID and precision/recall through torch-fidelity.

Two feature extractors: torch-fidelity's Inception-v3 (the numbers papers report; its weights
are a file, see :func:`ddpm.evaluation.inception.resolve_inception_weights`) and a small
classifier trained on the dataset's own labels (:mod:`.classifier`), registered with
torch-fidelity so that the same metric code runs on features that mean something for digits.
Metric keys are prefixed with the extractor.

- :mod:`.scoring`: :func:`~ddpm.evaluation.scoring.compute_metrics` and the metrics files;
- :mod:`.spread`: the within-run bootstrap spread;
- :mod:`.study`: scoring as the study does it (every extractor, the real-data floor).

Like every package of the library, this one imports nothing itself: names are imported from
their modules.
"""
