"""Reading study configs: strict YAML files, overlays merged onto the default, command-line keys.

A config is the default file (``config/config.yaml``) with every ``--configfile`` merged onto
it in order, then every ``--config KEY=VALUE`` (VALUE read as YAML). Merging is recursive for
mappings only: a list or a scalar replaces what was there, which is why everything where
inheriting would be wrong (the datasets studied, the schedules and T of the grid, the seeds)
is a list, and the schedule definitions (``schedules``, ``analysis.closeness.schedules``)
are replaced as a whole: an overlay that defines schedules defines all it uses, and never
inherits a parameter (``rescale_to_T``, ``beta_min``) it did not write. ``replace=True`` (Snakemake's ``--replace-workflow-config``) starts from nothing
instead of the default file.

Files are read with a YAML loader that rejects duplicate keys (PyYAML keeps the last one
silently) and reports every problem with its file, line and column.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from .. import ConfigError

__all__ = [
    "REPLACED",
    "diffusion_options",
    "load_config_file",
    "merge_config",
    "parse_command_line_entry",
    "resolve_config",
]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first given on line {first.line + 1}); "
                    "YAML would silently keep only the last one: remove one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _describe_yaml_error(source: str, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    hint = ""
    if "\t" in problem or "'\\t'" in problem:
        hint = "; YAML indents with spaces, never tabs"
    context = getattr(error, "context", None)
    context = f" ({context})" if context else ""
    return f"{where}: {problem}{context}{hint}"


def load_yaml_text(text: str, source: str):
    """Parse ``text`` strictly; errors name ``source`` with line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(_describe_yaml_error(source, error)) from None


def load_config_file(path: str | os.PathLike) -> dict:
    """The mapping in YAML file ``path``; anything else raises :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror})") from None
    values = load_yaml_text(text, str(path))
    if values is None:
        raise ConfigError(
            f"{path}: the file is empty; a config file holds top-level keys such as "
            "`training:` (see config/README.md)"
        )
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: the file holds a {type(values).__name__}, not a mapping of top-level keys "
            "such as `training:` (see config/README.md)"
        )
    return values


# Mappings an overlay replaces instead of merging into (see the module docstring).
REPLACED = frozenset({("schedules",), ("analysis", "closeness", "schedules")})


def merge_config(base: dict, overlay: Mapping, _path: tuple = ()) -> dict:
    """``overlay`` merged onto a copy of ``base``: mappings recursively, except those in
    :data:`REPLACED`; anything else (lists, scalars) replaced."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        path = (*_path, key)
        mergeable = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        if mergeable and path not in REPLACED:
            merged[key] = merge_config(merged[key], value, path)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_command_line_entry(entry: str) -> dict:
    """``KEY=VALUE`` from ``--config`` as a one-key mapping, VALUE read as YAML.

    ``training={steps: 100}`` gives ``{"training": {"steps": 100}}``; a dotted key such as
    ``training.steps=100`` gives the same (where the caller lets one through).
    """
    key, separator, value = entry.partition("=")
    if not separator or not key:
        raise ConfigError(
            f"--config {entry!r}: expected KEY=VALUE, e.g. --config 'training={{steps: 100}}'"
        )
    parsed = load_yaml_text(value, f"--config {entry!r}") if value else None
    for part in reversed(key.split(".")):
        parsed = {part: parsed}
    return parsed


def resolve_config(
    default_file: str | os.PathLike,
    configfiles: Iterable[str | os.PathLike] = (),
    command_line: Iterable[str] = (),
    replace: bool = False,
) -> dict:
    """The config a run uses: default file, overlays, then command-line entries, in order."""
    configfiles, command_line = list(configfiles), list(command_line)
    start_empty = replace and (configfiles or command_line)
    config = {} if start_empty else load_config_file(default_file)
    for path in configfiles:
        config = merge_config(config, load_config_file(path))
    for entry in command_line:
        config = merge_config(config, parse_command_line_entry(entry))
    return config


def diffusion_options(config: Mapping, label: str) -> dict:
    """The diffusion options of the runs of schedule ``label`` in a study config.

    A schedule definition may carry a ``diffusion`` mapping of its own (e.g.
    ``{"prediction": "x0"}``): its entries replace the study's ``diffusion`` section for that
    label, so that one study can compare diffusion options as labels of the same schedule.
    """
    own = (config["schedules"].get(label) or {}).get("diffusion") or {}
    return {**(config.get("diffusion") or {}), **own}
