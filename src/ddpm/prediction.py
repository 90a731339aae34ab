"""What the network predicts: the names of the targets and which losses fit each.

Kept apart from :mod:`ddpm.diffusion` (which needs PyTorch) so that the workflow's config check
can refuse an unknown target or an impossible combination before any job runs.
"""

from __future__ import annotations

__all__ = ["PREDICTIONS", "prediction_problem"]

PREDICTIONS = ("eps", "x0", "v", "mu")
"""The targets: the noise eps (Ho et al.), the clean image x0, the velocity v (Salimans & Ho
2022) and the posterior mean mu (Ho et al.'s ablation, trained on the bound's terms)."""

# mu is trained on the variational bound's own terms, ||mu~ - mu||^2 / (2 sigma_t^2): a
# squared error by construction, which only the "mse" loss is.
_LOSSES_OF = {"mu": ("mse",)}


def prediction_problem(prediction: str, loss: str) -> str | None:
    """Why ``prediction`` cannot be trained with ``loss`` (one line naming both), or None."""
    if prediction not in PREDICTIONS:
        return f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}"
    allowed = _LOSSES_OF.get(prediction)
    if allowed is not None and loss not in allowed:
        return (
            f"prediction {prediction!r} cannot be trained with loss {loss!r}: its loss is the "
            f"variational bound's squared-error term; use loss {' or '.join(map(repr, allowed))} "
            "or another prediction"
        )
    return None
