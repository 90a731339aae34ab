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


def prediction_problem(prediction: str, loss: str, zero_terminal_snr: bool = False) -> str | None:
    """Why ``prediction`` cannot be trained with ``loss`` (and on a schedule with zero terminal
    SNR, if ``zero_terminal_snr``): one line naming the cause and the fix, or None."""
    if prediction not in PREDICTIONS:
        return f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}"
    if zero_terminal_snr and prediction != "v":
        # alpha_bar_T = 0: x_0 from eps divides by sqrt(alpha_bar_T), eps from x0 by
        # sqrt(1 - alpha_bar_T)/sqrt(alpha_bar_T) (DDIM), and mu from eps by sqrt(alpha_T);
        # only v gives both x_0 and eps at t = T (Lin et al. 2024, sec. 3.2).
        return (
            f"prediction {prediction!r} cannot be trained on a schedule with zero terminal SNR "
            "(alpha_bar_T = 0, where it cannot give both x_0 and the noise at t = T): set "
            "diffusion.prediction to 'v' as Lin et al. 2024 do, or zero_terminal_snr to false"
        )
    allowed = _LOSSES_OF.get(prediction)
    if allowed is not None and loss not in allowed:
        return (
            f"prediction {prediction!r} cannot be trained with loss {loss!r}: its loss is the "
            f"variational bound's squared-error term; use loss {' or '.join(map(repr, allowed))} "
            "or another prediction"
        )
    return None
