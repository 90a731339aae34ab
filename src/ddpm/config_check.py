"""Checks of a study configuration that a JSON schema cannot express.

The workflow validates the config against its schema (types, allowed names, missing
keys) and then calls :func:`check_study_config` so that a config that would fail in
some job hours later (a schedule whose betas reach 1 at small T, a model that cannot
take the image size, more KID subsets than samples) stops before any job runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .schedules import ScheduleError, make_schedule

__all__ = ["check_study_config", "library_files"]


def check_study_config(config: dict) -> list[str]:
    """Every problem found in ``config``, each naming the key and what is allowed."""
    problems: list[str] = []
    grid = config["grid"]
    defined = config["schedules"]
    for label in grid["schedules"]:
        if label not in defined:
            problems.append(
                f"grid.schedules: {label!r} is not defined under `schedules` "
                f"(defined: {sorted(defined)})"
            )
            continue
        definition = defined[label]
        for T in grid["T"]:
            try:
                make_schedule(definition["beta_schedule"], T, **definition.get("params", {}))
            except ScheduleError as error:
                problems.append(f"schedules.{label} with T={T}: {error}")

    problems += _check_model(config)

    sampling, scoring = config["sampling"], config.get("scoring", {})
    n = sampling["num_samples"]
    kid = scoring.get("kid_subset_size", 100)
    if kid > n:
        problems.append(
            f"scoring.kid_subset_size ({kid}) is larger than sampling.num_samples ({n}); "
            f"KID needs subsets no larger than the sample: lower kid_subset_size to at most {n}"
        )
    inception = scoring.get("inception", {})
    weights = inception.get("weights_path")
    if inception.get("mode") == "required" and weights and not Path(weights).exists():
        problems.append(
            f"scoring.inception.weights_path: {weights} does not exist, and scoring.inception.mode "
            "is 'required'; put torch-fidelity's Inception-v3 weights there, remove weights_path "
            "to download them from scoring.inception.url, or set mode to 'auto' or 'off'"
        )
    grid_samples = config.get("figures", {}).get("grid_samples", 16)
    if grid_samples > n:
        problems.append(
            f"figures.grid_samples ({grid_samples}) is larger than sampling.num_samples ({n})"
        )
    if sampling.get("sampler") == "ddim" and sampling.get("ddim_steps", 50) > min(grid["T"]):
        problems.append(
            f"sampling.ddim_steps ({sampling['ddim_steps']}) exceeds the smallest T of the grid "
            f"({min(grid['T'])}); DDIM needs ddim_steps <= T"
        )
    return problems


def _check_model(config: dict) -> list[str]:
    from .data import DATASETS
    from .unet import UNetConfig, UNetConfigError

    problems = []
    for name, options in config["datasets"].items():
        spec = DATASETS[name]
        try:
            model = {**config["model"], "image_channels": spec.channels}
            UNetConfig.from_dict({**model, "image_size": options["image_size"]}).validate()
        except (UNetConfigError, TypeError) as error:
            problems.append(
                f"model (for datasets.{name}.image_size={options['image_size']}): {error}"
            )
    return problems


def library_files(package_dir: str | Path, modules: Iterable[str]) -> list[str]:
    """Source files of the named library modules (a name may be a subpackage)."""
    package_dir = Path(package_dir)
    files = []
    for module in modules:
        path = package_dir / module
        if path.is_dir():
            files += sorted(str(p) for p in path.glob("*.py"))
        elif path.with_suffix(".py").exists():
            files.append(str(path.with_suffix(".py")))
        else:
            raise FileNotFoundError(f"no library module {module!r} under {package_dir}")
    return files
