"""Every default is written once: in the library's dataclasses and signatures.

The workflow passes config sections through and holds no literal default; the schema's
enumerations are the library's constants; and the defaults that config/README.md states are
the library's. A test here fails when any of them drifts from the library.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml

from ddpm.coding import write_rate_distortion
from ddpm.data.prepare import prepare_dataset
from ddpm.diffusion import GaussianDiffusion
from ddpm.evaluation.classifier import train_classifier
from ddpm.evaluation.inception import resolve_inception_weights
from ddpm.evaluation.scoring import compute_metrics
from ddpm.evaluation.study import DEFAULT_BOOTSTRAP_RESAMPLES
from ddpm.interpolation import best_cell_interpolation
from ddpm.sampling import generate
from ddpm.training.config import TrainingConfig
from ddpm.unet_config import UNetConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
MISSING = object()
CONSTANT = re.compile(r"ddpm(?:\.[a-z_0-9]+)+\.[A-Z][A-Z_0-9]*")


def test_the_workflow_holds_no_literal_default():
    # `.get(key, <literal>)` on a config section states a default a second time; environment
    # lookups (os.environ.get) are not config.
    files = [*(REPO / "workflow").rglob("*.smk"), *(REPO / "workflow").rglob("*.py")]
    files.append(REPO / "Snakefile")
    pattern = re.compile(r"(?<!environ)\.get\(\s*[^,()]+,\s*[^)]")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


def _enums(node, path=()):
    """(dotted key, enum, description) of every enumeration in the schema."""
    if isinstance(node, dict):
        if "enum" in node:
            yield ".".join(path), node["enum"], node.get("description", "")
        for key, child in node.items():
            yield from _enums(child, (*path, key) if key not in ("properties", "items") else path)
    elif isinstance(node, list):
        for child in node:
            yield from _enums(child, path)


def _constant(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


ENUMS = list(_enums(SCHEMA))


def test_every_schema_enumeration_names_its_library_constant():
    unnamed = [key for key, _, description in ENUMS if not CONSTANT.search(description)]
    assert not unnamed, f"schema enums without a (ddpm.module.CONSTANT) description: {unnamed}"


@pytest.mark.parametrize(("key", "enum", "description"), ENUMS, ids=[key for key, *_ in ENUMS])
def test_the_schemas_choices_are_the_librarys(key, enum, description):
    # The schema writes each choice list out (Snakemake validates before importing anything);
    # the constant its description names is the one the library checks against.
    named = CONSTANT.search(description)
    assert named, key
    assert sorted(enum) == sorted(_constant(named.group(0))), (key, named.group(0))


# --- config/README.md ------------------------------------------------------------------------
def _signature(function) -> dict:
    return {
        name: (p.default if p.default is not inspect.Parameter.empty else MISSING)
        for name, p in inspect.signature(function).parameters.items()
    }


def _fields(cls) -> dict:
    return {
        f.name: MISSING if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(cls)
    }


#: Each section's keys and where the library defines their defaults.
LIBRARY_DEFAULTS = {
    # variant_of: the workflow's own (ddpm.workflow.datasets.registry_name); none by default
    "dataset_options": {**_signature(prepare_dataset), "variant_of": None},
    "model": _fields(UNetConfig),
    "diffusion": _signature(GaussianDiffusion.__init__),
    "training": _fields(TrainingConfig),
    "sampling": _signature(generate),
    "coding": _signature(write_rate_distortion),
    "interpolation": _signature(best_cell_interpolation),
    "scoring": {
        **_signature(compute_metrics),
        "bootstrap_resamples": DEFAULT_BOOTSTRAP_RESAMPLES,
        "image_size": None,  # score_samples: scored at the images' own size
        **{f"classifier.{k}": v for k, v in _signature(train_classifier).items()},
        **{f"inception.{k}": v for k, v in _signature(resolve_inception_weights).items()},
    },
}

#: Defaults the README states in words (name -> the library value they describe).
IN_WORDS = {
    "–": None,
    "the native size": None,
    "torch-fidelity's release": _signature(resolve_inception_weights)["url"],
}


def _readme_defaults(section: str) -> dict[str, str]:
    """key -> the default column of the table of ``## `section` `` in config/README.md."""
    text = (REPO / "config" / "README.md").read_text()
    heading = {"dataset_options": "## `datasets` and `dataset_options`"}.get(section)
    body = text[text.index(heading or f"## `{section}`") :]
    body = body[: body.find("\n## ", 1)]
    lines = [line.replace("\\|", "/") for line in body.splitlines()]  # an escaped | is text
    rows = [line for line in lines if line.startswith("| `")]
    header = next(line for line in lines if line.startswith("| key"))
    column = [cell.strip() for cell in header.strip("|").split("|")].index("default")
    return {
        row.split("|")[1].strip().strip("`"): row.strip("|").split("|")[column].strip()
        for row in rows
    }


def _value(text: str):
    """The value a default cell names: `auto`, 2e-4, null, [2], true, or words from IN_WORDS."""
    text = text.strip("`")
    for words, value in IN_WORDS.items():
        if text.startswith(words):
            return value
    try:
        return float(text)  # YAML would read 2e-4 as a string
    except ValueError:
        return yaml.safe_load(text)


def _same(stated, library) -> bool:
    if isinstance(library, tuple):
        library = list(library)
    if isinstance(stated, int | float) and isinstance(library, int | float):
        return stated == pytest.approx(library)
    return stated == library


@pytest.mark.parametrize("section", sorted(LIBRARY_DEFAULTS))
def test_the_defaults_config_readme_states_are_the_librarys(section):
    library = LIBRARY_DEFAULTS[section]
    stated = _readme_defaults(section)
    assert stated, f"config/README.md has no table of defaults for {section}"
    for key, cell in stated.items():
        assert key in library, f"{section}.{key} is documented but the library has no such key"
        default = library[key]
        required = re.match(r"required(?: \(library: (.*)\))?$", cell)
        if required:
            # A key the study config must give; the library's own default, if any, is named.
            named = required.group(1)
            assert (named is None) == (default is MISSING), (section, key, cell)
            if named is not None:
                assert _same(_value(named), default), (section, key, cell, default)
            continue
        assert default is not MISSING, f"{section}.{key}: the library has no default, say required"
        assert _same(_value(cell), default), (section, key, cell, default)


@pytest.mark.parametrize("section", sorted(LIBRARY_DEFAULTS))
def test_config_readme_documents_every_key_the_schema_accepts(section):
    # A new key is one schema line and one row of config/README.md: the row cannot be forgotten.
    node = SCHEMA["properties"][section]
    if isinstance(node.get("additionalProperties"), dict):  # dataset_options: one per dataset
        node = node["additionalProperties"]
    keys = set(node["properties"])
    for key, child in node["properties"].items():
        if "properties" in child:  # a nested section (scoring.classifier): its keys, dotted
            keys.discard(key)
            keys |= {f"{key}.{sub}" for sub in child["properties"]}
    missing = sorted(keys - set(_readme_defaults(section)))
    assert not missing, f"config/README.md has no row for {section}: {missing}"
