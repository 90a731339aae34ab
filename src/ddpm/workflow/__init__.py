"""What the workflow reads while Snakemake parses it: the config's loading and checks, the
dataset and figure registries, the results layout, and the digest of the library's code that
decides what reruns.

The import rule, stated once: modules of this package import only the standard library,
``yaml``, ``jsonschema``, each other, and the library modules that need no NumPy or PyTorch
(:mod:`ddpm.beta_formulas`, :mod:`ddpm.prediction`, :mod:`ddpm.unet_config` and the
package root), so that the workflow parses, dry-runs and lints with Snakemake alone.
``tests/test_config_parse.py``
imports them with the heavy libraries blocked.
"""
