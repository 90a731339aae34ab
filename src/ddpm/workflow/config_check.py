"""Checks of a study configuration, run by the workflow before any job.

:func:`check_config` validates the config against the workflow's JSON schema (types, ranges,
key names) and then checks what a schema cannot express, so that a config that would fail in
some job hours later (a schedule whose betas reach 1 at small T, a model that cannot take the
image size, more KID subsets than samples) stops at once. Every problem is one short line:
the key, the value given, what is allowed. Importing this module needs neither NumPy nor
PyTorch, so the workflow parses with Snakemake alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

import jsonschema

from .. import ConfigError
from ..beta_formulas import FORMULAS, schedule_betas
from ..prediction import prediction_problem
from ..unet_config import unet_config_for
from .code import literal_defaults
from .config_load import diffusion_options
from .datasets import DATASETS, registry_name

__all__ = ["check_config", "check_study_config", "schema_problems"]

# More lines than this and the first problems scroll away; the rest are found on the next run.
MAX_PROBLEMS = 8


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "the top level"


def _suggestion(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


def _allowed_keys(error) -> list[str]:
    return sorted(error.schema.get("properties", {}))


def _describe_schema_error(error) -> str:
    where, value, kind, rule = (
        _path(error.absolute_path),
        error.instance,
        error.validator,
        error.validator_value,
    )
    if kind == "additionalProperties" and isinstance(value, Mapping):
        allowed = _allowed_keys(error)
        extra = sorted(set(value) - set(allowed))
        key = extra[0] if extra else "?"
        inside = "" if where == "the top level" else f" under `{where}`"
        return (
            f"unknown key `{key}`{inside}: {_suggestion(key, allowed)}"
            f"allowed keys: {', '.join(allowed)}"
        )
    if kind == "required":
        missing = ", ".join(f"`{k}`" for k in rule if k not in value)
        return f"{where}: missing {missing} (required: {', '.join(rule)})"
    description = error.schema.get("description")
    allowed = {
        "type": lambda: f"must be of type {' or '.join(rule) if isinstance(rule, list) else rule}",
        "enum": lambda: f"{_suggestion(value, rule)}must be one of {', '.join(map(str, rule))}",
        "minimum": lambda: f"must be >= {rule}",
        "maximum": lambda: f"must be <= {rule}",
        "exclusiveMinimum": lambda: f"must be > {rule}",
        "exclusiveMaximum": lambda: f"must be < {rule}",
        "minItems": lambda: f"must hold at least {rule} item(s)",
        "uniqueItems": lambda: "must not repeat an item",
        "pattern": lambda: f"must match {rule}",
    }.get(kind, lambda: error.message)()
    if description:
        allowed += f" ({description})"
    return f"{where} = {value!r}: {allowed}"


def schema_problems(config: Mapping, schema: Mapping) -> list[str]:
    """One line per place where ``config`` breaks ``schema``, in the order of the keys."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.path])
    # One line per problem: the missing keys of one mapping are one problem.
    return list(dict.fromkeys(_describe_schema_error(error) for error in errors))


#: Top-level keys that left the study config, and where they went.
MOVED_KEYS = {
    "resources": (
        "resources: threads, memory, runtime and GPUs are no longer part of a study; they are "
        "set per machine in a Snakemake profile (set-resources in profiles/local, "
        "profiles/local-gpu or profiles/slurm; docs/cluster.md): remove `resources:` from the "
        "config file and give the profile with --profile"
    ),
}


def check_config(config: Mapping, schema: Mapping) -> list[str]:
    """Every problem of ``config`` (at most :data:`MAX_PROBLEMS`); empty if it is valid."""
    moved = [message for key, message in MOVED_KEYS.items() if key in config]
    if moved:
        config = {key: value for key, value in config.items() if key not in MOVED_KEYS}
    problems = moved + _problems(config, schema)
    if len(problems) > MAX_PROBLEMS:
        hidden = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"... and {hidden} more"]
    return problems


def _problems(config: Mapping, schema: Mapping) -> list[str]:
    problems = schema_problems(config, schema)
    if not problems:
        problems = check_study_config(config)
    return problems


def _check_schedule(key: str, definition: Mapping, all_T) -> list[str]:
    name = definition["beta_schedule"]
    if name not in FORMULAS:
        return [
            f"{key}.beta_schedule = {name!r}: {_suggestion(name, FORMULAS)}"
            f"must be one of {', '.join(FORMULAS)}"
        ]
    params = definition.get("params", {})
    start, end = params.get("beta_start"), params.get("beta_end")
    if (
        name in ("linear", "sigmoid")
        and isinstance(start, float | int)
        and isinstance(end, float | int)
    ) and start > end:
        return [
            f"{key}.params: beta_start ({start}) is larger than beta_end ({end}); "
            "the betas must grow with t: swap them"
        ]
    for T in sorted(set(all_T)):
        try:
            schedule_betas(name, T, **params)
        except ConfigError as error:
            return [f"{key} at T={T}: {error}"]
    return []


def _check_schedules(config: Mapping) -> list[str]:
    problems: list[str] = []
    grid, defined = config["grid"], config["schedules"]
    analysis = config["analysis"]
    grid_T = [*grid["T"], *analysis["curves_T"]]
    for label in grid["schedules"]:
        if label not in defined:
            problems.append(
                f"grid.schedules: {label!r} is not defined under `schedules`: "
                f"{_suggestion(label, defined)}defined: {', '.join(defined)}"
            )
    for label, definition in defined.items():
        if label in grid["schedules"]:
            problems += _check_schedule(f"schedules.{label}", definition, grid_T)
    closeness = analysis["closeness"]
    for label, definition in closeness["schedules"].items():
        key = f"analysis.closeness.schedules.{label}"
        problems += _check_schedule(key, definition, [closeness["T"]])
    odd = [size for size in closeness["image_sizes"] if size % 8]
    if "digit" in closeness.get("other_images", []) and odd:
        problems.append(
            f"analysis.closeness.image_sizes = {closeness['image_sizes']}: the digit of "
            f"other_images is 8 x 8 and is enlarged by whole factors, but {odd} is not a "
            "multiple of 8; use multiples of 8 or drop the digit"
        )
    problems += _check_forward_samples(config, already_wrong=problems)
    destruction = analysis["destruction"]
    if destruction["beta_start"] > destruction["beta_end"]:
        problems.append(
            f"analysis.destruction: beta_start ({destruction['beta_start']}) is larger than "
            f"beta_end ({destruction['beta_end']}); swap them"
        )
    return problems


def _check_forward_samples(config: Mapping, already_wrong: list[str]) -> list[str]:
    """The forward-samples figure names a studied dataset and a defined schedule, at a usable T.

    A schedule whose definition is already reported wrong (``already_wrong``) is not reported
    again for this figure.
    """
    chosen = config["analysis"].get("forward_samples") or {}
    problems = []
    for key, known in (("dataset", config["datasets"]), ("schedule", config["schedules"])):
        value = chosen.get(key)
        if value is not None and value not in known:
            problems.append(
                f"analysis.forward_samples.{key}: {value!r} is not one of {', '.join(known)} "
                f"({_suggestion(value, known)}or null for the first)"
            )
    label = chosen.get("schedule") or config["grid"]["schedules"][0]
    reported = any(problem.startswith(f"schedules.{label}") for problem in already_wrong)
    if label in config["schedules"] and "T" in chosen and not reported:
        key = f"analysis.forward_samples (schedules.{label})"
        problems += _check_schedule(key, config["schedules"][label], [chosen["T"]])
    return problems


def _dataset_image_size(config: Mapping, name: str) -> int | None:
    """The image size the study uses for dataset ``name`` (None: the config must choose one)."""
    options = config.get("dataset_options") or {}
    native = DATASETS[registry_name(name, options)].native_size
    return (options.get(name) or {}).get("image_size", native)


def _check_variant(name: str, variant_of) -> list[str]:
    """A variant has a name of its own and names a registry dataset."""
    if name in DATASETS:
        return [
            f"dataset_options.{name}.variant_of = {variant_of!r}: {name} is a dataset of its own; "
            "give the variant a new name (e.g. digits_x2) and list that name in `datasets`"
        ]
    if variant_of not in DATASETS:
        return [
            f"dataset_options.{name}.variant_of = {variant_of!r}: unknown dataset: "
            f"{_suggestion(variant_of, DATASETS)}known datasets: {', '.join(DATASETS)}"
        ]
    return []


def _check_datasets(config: Mapping) -> list[str]:
    problems = []
    options = config.get("dataset_options", {})
    for name in [*config["datasets"], *options]:
        variant_of = (options.get(name) or {}).get("variant_of")
        if variant_of is not None:
            problems += _check_variant(name, variant_of)
        elif name not in DATASETS:
            where = "datasets" if name in config["datasets"] else "dataset_options"
            problems.append(
                f"{where}: unknown dataset {name!r}: {_suggestion(name, DATASETS)}"
                f"known datasets: {', '.join(DATASETS)} (or give `dataset_options.{name}."
                "variant_of` to make a variant of one of them)"
            )
    if problems:
        return problems
    for name in config["datasets"]:
        spec = DATASETS[registry_name(name, options)]
        image_size = _dataset_image_size(config, name)
        if image_size is None:
            problems.append(
                f"dataset_options.{name}.image_size is missing: {name} images vary in size, "
                "so the config must choose one (e.g. 32 or 64)"
            )
            continue
        try:
            unet_config_for(config["model"], spec.channels, image_size).validate()
        except (ConfigError, TypeError) as error:
            problems.append(f"model (for {name} at image_size {image_size}): {error}")
        problems += _check_sizes(config, name, spec.native_size, image_size)
    return problems


def _check_sizes(config: Mapping, name: str, native_size, image_size: int) -> list[str]:
    """Nearest-neighbour enlargement and scoring at a smaller size work by whole factors."""
    problems = []
    mode = (config.get("dataset_options", {}).get(name) or {}).get("resize_mode")
    if mode == "nearest" and (native_size is None or image_size % native_size):
        problems.append(
            f"dataset_options.{name}: resize_mode 'nearest' enlarges by a whole factor, but "
            f"image_size {image_size} is not a multiple of the native size {native_size}; "
            "choose a multiple or resize_mode 'resize'"
        )
    score_size = config["scoring"].get("image_size")
    if score_size is not None and image_size % score_size:
        problems.append(
            f"scoring.image_size = {score_size}: {name} is studied at {image_size} x "
            f"{image_size}, which is not a whole multiple of it (images are scored after "
            "averaging blocks of k x k pixels); choose a divisor of every dataset's size, or null"
        )
    return problems


def _check_sample_counts(config: Mapping) -> list[str]:
    """Options that need at least so many samples, against sampling.num_samples."""
    n = config["sampling"]["num_samples"]
    scoring = {
        **literal_defaults("evaluation/scoring.py", "compute_metrics"),
        **config["scoring"],
    }
    needs = {
        "scoring.kid_subset_size": (scoring["kid_subset_size"], "KID draws subsets of this size"),
        "scoring.isc_splits": (scoring["isc_splits"], "IS splits the samples into this many parts"),
        "figures.grid_samples": (config["figures"]["grid_samples"], "drawn"),
    }
    problems = [
        f"{key} = {value} is larger than sampling.num_samples ({n}); {why}: "
        f"lower it to at most {n} or raise num_samples"
        for key, (value, why) in needs.items()
        if value > n
    ]
    k = scoring["prc_neighborhood"]
    if k >= n:
        problems.append(
            f"scoring.prc_neighborhood = {k} must be smaller than sampling.num_samples ({n}): "
            "precision/recall look at each sample's k nearest other samples"
        )
    return problems


def _check_diffusion(config: Mapping) -> list[str]:
    """Each grid label's diffusion options (the section, with the label's own over it) can be
    trained together; the closeness experiment's schedules train nothing, so take none."""
    defaults = literal_defaults("diffusion.py", "GaussianDiffusion.__init__")
    problems = []
    for label in config["grid"]["schedules"]:
        own = (config["schedules"].get(label) or {}).get("diffusion") or {}
        options = {**defaults, **diffusion_options(config, label)}
        params = (config["schedules"].get(label) or {}).get("params") or {}
        zero_terminal_snr = params.get("zero_terminal_snr") is True
        problem = prediction_problem(options["prediction"], options["loss"], zero_terminal_snr)
        if problem:
            line = f"{f'schedules.{label}.diffusion' if own else 'diffusion'}: {problem}"
            if line not in problems:
                problems.append(line)
    for label, definition in config["analysis"]["closeness"]["schedules"].items():
        if "diffusion" in definition:
            problems.append(
                f"analysis.closeness.schedules.{label}.diffusion: the closeness experiment "
                "trains no model, so its schedules take no diffusion options; remove it"
            )
    return problems


def check_study_config(config: Mapping) -> list[str]:
    """The problems a schema cannot see, each naming the key and what is allowed.

    ``config`` must already satisfy the schema (see :func:`check_config`).
    """
    problems = _check_datasets(config) + _check_schedules(config) + _check_sample_counts(config)
    problems += _check_diffusion(config)
    sampling, grid = config["sampling"], config["grid"]
    ddim_steps = sampling.get(
        "ddim_steps", literal_defaults("sampling.py", "generate")["ddim_steps"]
    )
    if sampling.get("sampler") == "ddim" and ddim_steps > min(grid["T"]):
        problems.append(
            f"sampling.ddim_steps = {ddim_steps} exceeds the smallest T of the grid "
            f"({min(grid['T'])}); DDIM needs ddim_steps <= T"
        )
    inception = config["scoring"].get("inception", {})
    weights = inception.get("weights_path")
    if inception.get("mode") == "required" and weights and not Path(weights).exists():
        problems.append(
            f"scoring.inception.weights_path: {weights} does not exist, and scoring.inception.mode "
            "is 'required'; put torch-fidelity's Inception-v3 weights there, remove weights_path "
            "to download them from scoring.inception.url, or set mode to 'auto' or 'off'"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m ddpm.config_check [OVERLAY ...]``: check a config as the workflow would.

    Snakemake reads a ``--configfile`` itself before the workflow starts and reports a YAML
    syntax error without its line; this names file, line and column.
    """
    import sys

    import yaml

    from .. import ConfigError
    from .config_load import resolve_config

    repo = Path(__file__).resolve().parents[3]
    overlays = sys.argv[1:] if argv is None else argv
    try:
        config = resolve_config(repo / "config" / "config.yaml", overlays)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    problems = check_config(config, schema)
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
