"""The ``ddpm`` command line: help texts, schedule tables, and a tiny train + sample run."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ddpm.cli import build_parser, main, parse_key_value
from ddpm.data.store import load_split
from ddpm.schedules import make_schedule

SUBCOMMANDS = ["schedule", "prepare-data", "train", "sample"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The embedded digits dataset at 8x8, prepared once through the command line."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    assert main(["prepare-data", "digits", str(path), "--image-size", "8"]) == 0
    return path


@pytest.mark.parametrize("command", [[], *([c] for c in SUBCOMMANDS)])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: ddpm")
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    target = subparsers[command[0]] if command else parser
    for action in target._actions:
        if action.option_strings and action.dest not in ("help",):
            assert action.help, f"option {action.option_strings} has no help text"
            assert action.option_strings[-1] in text


def test_key_value_parameters_are_typed():
    assert parse_key_value(["beta_start=1e-5", "rescale_to_T=true", "T=3", "name=x"]) == {
        "beta_start": 1e-5,
        "rescale_to_T": True,
        "T": 3,
        "name": "x",
    }


def test_schedule_table_written_as_csv(tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert (
        main(
            [
                "schedule",
                "linear",
                "--T",
                "50",
                "--param",
                "beta_end=0.01",
                "--param",
                "rescale_to_T=true",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    frame = pd.read_csv(out)
    expected = make_schedule("linear", 50, beta_end=0.01, rescale_to_T=True)
    assert frame["t"].tolist() == list(range(1, 51))
    np.testing.assert_allclose(frame["alpha_bar"], expected.alpha_bar, rtol=1e-12)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["alpha_bar_T"] == pytest.approx(expected.alpha_bar_T)


def test_errors_are_reported_without_a_traceback(capsys):
    assert main(["schedule", "linear", "--T", "10", "--param", "beta_stop=1"]) == 1
    err = capsys.readouterr().err
    assert "ddpm schedule: error:" in err and "beta_stop" in err and "Traceback" not in err


def test_prepare_data_writes_the_dataset_it_names(tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert (
        main(["prepare-data", "digits", str(out), "--image-size", "16", "--resize-mode", "pad"])
        == 0
    )
    meta = json.loads(capsys.readouterr().out)
    assert meta["name"] == "digits" and meta["image_size"] == 16 and meta["resize_mode"] == "pad"
    images, labels = load_split(out, "train")
    assert images.shape[1:] == (1, 16, 16) and len(labels) == meta["counts"]["train"]
    # Padding grows the 8x8 digits with a zero border of 4 pixels on each side.
    assert images[:, :, :4].max() == 0 and images[:, :, 4:12, 4:12].max() > 0


def test_tiny_train_then_sample(digits, tmp_path):
    data = digits
    run = tmp_path / "run"
    status = main(
        [
            "train", str(data), str(run),
            "--schedule", "cosine", "--T", "10", "--schedule-param", "s=0.002", "--label", "cos-s",
            "--base-channels", "8", "--channel-mults", "1,2", "--attention-levels", "1", "--num-groups", "4",
            "--steps", "3", "--batch-size", "4", "--log-every", "1", "--snapshot-every", "3", "--snapshot-count", "2",
            "--grad-clip", "none", "--device", "cpu",
        ]
    )  # fmt: skip
    assert status == 0
    for name in ("model.pt", "train_log.csv", "run.json", "snapshots.npz"):
        assert (run / name).is_file(), name
    record = json.loads((run / "run.json").read_text())
    assert (
        record["schedule"]["beta_schedule"] == "cosine"
        and record["schedule"]["params"]["s"] == 0.002
    )
    assert record["unet"]["channel_mults"] == [1, 2] and record["training"]["grad_clip"] is None
    assert record["data_path"] == str(data) and record["schedule"]["label"] == "cos-s"
    assert record["data"]["num_images"] == len(load_split(data, "train")[0])

    out = tmp_path / "samples.npz"
    assert (
        main(
            [
                "sample",
                str(run / "model.pt"),
                str(out),
                "--num-samples",
                "5",
                "--sampler",
                "ddim",
                "--ddim-steps",
                "5",
                "--nrow",
                "5",
            ]
        )
        == 0
    )
    with np.load(out) as content:
        assert content["images"].shape == (5, 1, 8, 8) and content["images"].dtype == np.uint8
    with Image.open(out.with_suffix(".png")) as png:
        assert png.size == (5 * 10 + 2, 1 * 10 + 2)  # 5 images of 8 px with 2 px padding, one row


def test_train_rejects_an_impossible_model_before_training(digits, tmp_path, capsys):
    data = digits
    status = main(
        ["train", str(data), str(tmp_path / "run"), "--steps", "2", "--attention-levels", "7"]
    )
    assert status == 1
    assert "attention_levels" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_version_is_printed(capsys):
    from ddpm import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ddpm {__version__}"


def _described(help_text: str, heading: str) -> str:
    """The help of one option: from its heading in the option list to the next option."""
    # The last occurrence: the usage line at the top names the options too.
    return help_text.rsplit(f" {heading} ", 1)[1].split(" --", 1)[0]


@pytest.mark.parametrize("command", ["train", "sample"])
def test_help_shows_each_default_once_and_none_for_required_options(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    for heading in ("--device DEVICE", "--precision {auto,bf16,fp32}"):
        described = _described(text, heading)
        assert described.count("default") == 1, f"{heading}: {described}"
        assert "(default: auto)" in described
    if command == "train":
        steps = _described(text, "--steps STEPS")
        assert "default" not in steps, "--steps is required: it has no default to show"
        mults = _described(text, "--channel-mults CHANNEL_MULTS")
        assert "(default: 1,2,2)" in mults, "a list default is shown the way it is typed"
    else:
        eta = _described(text, "--eta ETA")
        assert "(default: 0.0)" in eta, "a default of zero is still a default"


@pytest.mark.parametrize("command", ["train", "sample"])
def test_precision_defaults_to_auto(command):
    required = ["data.npz", "run", "--steps", "1"] if command == "train" else ["m.pt", "o.npz"]
    args = build_parser().parse_args([command, *required])
    assert args.precision == "auto"
    assert args.device == "auto"


def test_license_file_is_the_one_pyproject_declares():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["license"]
    text = (root / "LICENSE").read_text()
    assert declared == "MIT" and text.startswith("MIT License")
    assert "Copyright (c)" in text and "the ddpm authors" in text


def test_train_options_default_to_the_library_defaults():
    # One source of defaults: `ddpm train` with only the required options trains with
    # TrainingConfig's own defaults (CLI names that differ: --lr, --threads).
    from dataclasses import fields

    from ddpm.cli import build_parser
    from ddpm.training.config import TrainingConfig

    args = build_parser().parse_args(
        ["train", "data.npz", "run", "--schedule", "linear", "--T", "10", "--steps", "5"]
    )
    cli_name = {"learning_rate": "lr", "num_threads": "threads"}
    for field in fields(TrainingConfig):
        if field.name == "steps":
            continue
        assert getattr(args, cli_name.get(field.name, field.name)) == field.default, field.name


def test_model_options_default_to_the_library_defaults():
    from dataclasses import fields

    from ddpm.cli import build_parser
    from ddpm.unet_config import UNetConfig

    args = build_parser().parse_args(
        ["train", "data.npz", "run", "--schedule", "linear", "--T", "10", "--steps", "5"]
    )
    for field in fields(UNetConfig):
        if field.name in ("image_channels", "image_size"):  # taken from the data
            continue
        assert getattr(args, field.name) == field.default, field.name


def test_options_follow_any_settings_dataclass():
    # A field added to (or renamed in) UNetConfig or TrainingConfig is an option with no edit
    # to the parser: type, default and help come from the class.
    import argparse
    from dataclasses import dataclass

    from ddpm.cli_options import add_dataclass_options, dataclass_values

    @dataclass(frozen=True)
    class Settings:
        """Made-up settings.

        Args:
            attention_levels: level indices with self-attention, e.g. ``(1, 2)``.
            clip: a bound; ``None`` = none.
            name: a name
                over two lines.
            fast: go fast.
            count: how many (required).
        """

        count: int
        attention_levels: tuple[int, ...] = (1,)
        clip: float | None = 1.0
        name: str = "x"
        fast: bool = False

    parser = argparse.ArgumentParser(formatter_class=build_parser().formatter_class)
    add_dataclass_options(parser, Settings, names={"count": "--n"})
    args = parser.parse_args(["--n", "3", "--attention-levels", "0,2", "--clip", "none", "--fast"])
    assert dataclass_values(args, Settings, names={"count": "--n"}) == {
        "count": 3,
        "attention_levels": (0, 2),
        "clip": None,
        "name": "x",
        "fast": True,
    }
    assert Settings(
        **dataclass_values(parser.parse_args(["--n", "1"]), Settings, names={"count": "--n"})
    ) == Settings(1)
    text = " ".join(parser.format_help().split())
    assert "level indices with self-attention, e.g. (1, 2). (default: 1)" in text
    assert "a name over two lines." in text and "a bound; none = none." in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--attention-levels", "1"])  # --n is required


def test_train_choices_are_the_library_constants():
    from ddpm.beta_formulas import FORMULAS
    from ddpm.diffusion import LOSSES, VARIANCES
    from ddpm.prediction import PREDICTIONS
    from ddpm.runtime import PRECISIONS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {action.dest: action.choices for action in train._actions if action.choices}
    assert choices == {
        "schedule": list(FORMULAS),
        "variance": VARIANCES,
        "loss": LOSSES,
        "prediction": PREDICTIONS,
        "precision": PRECISIONS,
    }
