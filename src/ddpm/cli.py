"""The ``ddpm`` command line: schedule tables, data preparation, training and sampling.

Examples::

    ddpm schedule cosine --T 200 --param s=0.002 --out cosine-200.csv
    ddpm prepare-data mnist5k results/mnist5k/data.npz --image-size 28
    ddpm train results/mnist5k/data.npz runs/linear-T200 --schedule linear --T 200 \\
        --schedule-param rescale_to_T=true --steps 1500 --batch-size 128
    ddpm sample runs/linear-T200/model.pt runs/linear-T200/samples.npz --num-samples 64

Every subcommand has ``--help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import DDPMError, __version__
from .cli_options import (
    DefaultsOnceFormatter,
    add_dataclass_options,
    dataclass_values,
    default_of,
)

__all__ = ["build_parser", "main", "parse_key_value"]

logger = logging.getLogger("ddpm.cli")


def _parse_scalar(text: str):
    """'true'/'false' -> bool, 'null'/'none' -> None, then int, then float, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_key_value(items: Sequence[str] | None) -> dict:
    """``["beta_start=1e-5", "rescale_to_T=true"]`` -> ``{"beta_start": 1e-05, "rescale_to_T": True}``."""
    params = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(
                f"expected KEY=VALUE, got {item!r} (e.g. beta_start=1e-5)"
            )
        params[key.strip()] = _parse_scalar(value)
    return params


# --- subcommands -------------------------------------------------------------------------
def _cmd_schedule(args) -> int:
    from .schedules import make_schedule

    schedule = make_schedule(args.name, args.T, **parse_key_value(args.param))
    frame = schedule.to_frame()
    frame["kl_to_standard_normal_bits"] = schedule.kl_to_standard_normal(args.data_second_moment)
    summary = {
        **schedule.describe(),
        "alpha_bar_T": schedule.alpha_bar_T,
        "prior_kl_bits_per_dim": schedule.prior_kl_bits_per_dim(args.data_second_moment),
    }
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        print(f"wrote {len(frame)} rows to {out}")
    else:
        if args.rows and len(frame) > args.rows:
            frame = frame.iloc[:: -(-len(frame) // args.rows)]
        print(frame.to_string(index=False))
    print(json.dumps(summary))
    return 0


def _cmd_prepare_data(args) -> int:
    from .data.prepare import prepare_dataset

    meta = prepare_dataset(
        args.name,
        args.out,
        args.image_size,
        root=args.root,
        base_url=args.base_url,
        resize_mode=args.resize_mode,
    )
    print(json.dumps(meta, indent=2, default=str))
    return 0


# Fields of the settings classes that ``ddpm train`` takes from the data, not from options.
_FROM_DATA = ("image_channels", "image_size")
# Option names that differ from their field's (the spelling users type).
_OPTION_NAMES = {"learning_rate": "--lr", "num_threads": "--threads"}


def _cmd_train(args) -> int:
    from .data.store import load_split
    from .schedules import ScheduleSpec
    from .spec import RunSpec
    from .training.config import TrainingConfig
    from .training.loop import train
    from .unet_config import UNetConfig, unet_config_for

    images, _ = load_split(args.data, args.split)
    schedule = ScheduleSpec(
        args.label or args.schedule, args.schedule, args.T, parse_key_value(args.schedule_param)
    )
    spec = RunSpec(
        schedule=schedule,
        diffusion={
            "variance": args.variance,
            "loss": args.loss,
            "clip_denoised": args.clip_denoised,
            "prediction": args.prediction,
        },
        unet=unet_config_for(
            dataclass_values(args, UNetConfig, exclude=_FROM_DATA),
            images.shape[1],
            images.shape[-1],
        ),
        training=TrainingConfig.from_dict(
            dataclass_values(args, TrainingConfig, names=_OPTION_NAMES)
        ),
    )
    print(train(images, spec, args.run_dir, record={"data_path": str(args.data)}))
    return 0


def _cmd_sample(args) -> int:
    import torch

    from .sampling import generate, save_sample_grid, save_samples

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    images = generate(
        args.model,
        args.num_samples,
        sampler=args.sampler,
        ddim_steps=args.ddim_steps,
        eta=args.eta,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
    )
    save_samples(args.out, images)
    png = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
    shown = save_sample_grid(png, images, args.grid_samples, nrow=args.nrow)
    print(f"wrote {len(images)} images to {args.out} and a grid of {shown} to {png}")
    return 0


# --- the parser --------------------------------------------------------------------------
def _add_device_options(parser) -> None:
    from .runtime import PRECISIONS
    from .sampling import generate

    parser.add_argument(
        "--device",
        default=default_of(generate, "device"),
        help="'auto' (a CUDA GPU if there is one, else the CPU), 'cpu', 'cuda' or 'cuda:N'",
    )
    parser.add_argument(
        "--precision",
        default=default_of(generate, "precision"),
        choices=PRECISIONS,
        help="'auto' = picked for the device (bf16 autocast where the hardware runs it fast, "
        "float32 elsewhere); 'bf16' = bf16 autocast on any device; 'fp32' = float32",
    )


def _add_command(commands, name: str, help_text: str, description: str, func):
    parser = commands.add_parser(
        name, help=help_text, description=description, formatter_class=DefaultsOnceFormatter
    )
    parser.set_defaults(func=func)
    return parser


def _add_schedule_command(commands) -> None:
    from .beta_formulas import FORMULAS

    p = _add_command(
        commands,
        "schedule",
        "print or write the table of a noise schedule",
        "Print (or write as CSV) one row per timestep t = 1..T of a noise schedule: beta, "
        "alpha_bar, log SNR, posterior variance and the KL of q(x_t | x_0) to N(0, I) in bits per "
        "dimension; then a one-line JSON summary (alpha_bar_T, prior KL).",
        _cmd_schedule,
    )
    p.add_argument("name", choices=list(FORMULAS), help="schedule name")
    p.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a schedule parameter, repeatable (e.g. beta_start=1e-5, rescale_to_T=true, s=0.002); "
        "every schedule also takes shift=<log-SNR offset> and zero_terminal_snr=true",
    )
    p.add_argument(
        "--data-second-moment",
        type=float,
        default=1.0,
        help="mean square of the data in [-1, 1] used for the KL column",
    )
    p.add_argument("--out", help="write the table to this CSV file instead of printing it")
    p.add_argument(
        "--rows", type=int, default=20, help="print at most this many evenly spaced rows; 0 = all"
    )


def _add_prepare_data_command(commands) -> None:
    from .data.prepare import prepare_dataset
    from .data.resize import RESIZE_MODES
    from .workflow.datasets import DATASETS

    p = _add_command(
        commands,
        "prepare-data",
        "convert a dataset into one .npz file",
        "Fetch (if needed) and convert a dataset into the .npz file every other step reads: "
        "uint8 images (N, C, H, W) with int64 labels for each split.",
        _cmd_prepare_data,
    )
    p.add_argument("name", choices=list(DATASETS), help="dataset name")
    p.add_argument("out", help="the .npz file to write")
    p.add_argument(
        "--image-size", type=int, help="side of the stored (square) images (default: native)"
    )
    p.add_argument(
        "--root",
        default=default_of(prepare_dataset, "root"),
        help="directory for downloaded raw files",
    )
    p.add_argument(
        "--base-url", help="fetch the raw files from this mirror (https://, http:// or file://)"
    )
    p.add_argument(
        "--resize-mode",
        default=default_of(prepare_dataset, "resize_mode"),
        choices=RESIZE_MODES,
        help="'resize' (antialiased) or 'pad' with a zero border (only to grow images)",
    )


def _add_diffusion_options(g) -> None:

    from .beta_formulas import FORMULAS
    from .diffusion import LOSSES, VARIANCES, GaussianDiffusion
    from .prediction import PREDICTIONS

    def default(name):
        return default_of(GaussianDiffusion.__init__, name)

    g.add_argument("--schedule", default="linear", choices=list(FORMULAS), help="noise schedule")
    g.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    g.add_argument(
        "--schedule-param",
        action="append",
        metavar="KEY=VALUE",
        help="a schedule parameter, repeatable (e.g. beta_start=1e-5 rescale_to_T=true); every "
        "schedule also takes shift=<log-SNR offset, e.g. -1.386 for twice the side>",
    )
    g.add_argument(
        "--label", help="the run's name for its schedule, kept in its record (default: --schedule)"
    )
    g.add_argument(
        "--variance",
        default=default("variance"),
        choices=VARIANCES,
        help="reverse-process variance",
    )
    g.add_argument(
        "--loss",
        default=default("loss"),
        choices=LOSSES,
        help="loss between true and predicted noise",
    )
    g.add_argument(
        "--no-clip-denoised",
        dest="clip_denoised",
        action="store_false",
        default=default("clip_denoised"),
        help="do not clip the predicted x_0 to [-1, 1] when sampling",
    )
    g.add_argument(
        "--prediction",
        default=default("prediction"),
        choices=PREDICTIONS,
        help="what the network predicts: the noise eps, the image x0, the velocity v or the "
        "posterior mean mu (trained on the bound's terms: needs --loss mse)",
    )


def _add_train_command(commands) -> None:
    from .runtime import PRECISIONS
    from .training.config import TrainingConfig
    from .unet_config import UNetConfig

    p = _add_command(
        commands,
        "train",
        "train a noise-prediction U-Net",
        "Train a U-Net on the images of a prepared dataset. Writes model.pt (EMA weights and the "
        "record to rebuild model and diffusion), train_log.csv, run.json and, with --snapshot-every, "
        "snapshots.npz into RUN_DIR. Rolling checkpoints go to RUN_DIR/checkpoints/; running the same "
        "command again resumes from the newest usable one.",
        _cmd_train,
    )
    p.add_argument("data", help="a dataset .npz written by `ddpm prepare-data`")
    p.add_argument("run_dir", help="output directory of the run")
    p.add_argument("--split", default="train", help="which split of the dataset file to train on")
    _add_diffusion_options(p.add_argument_group("diffusion"))
    model = p.add_argument_group("model (image channels and size come from the data)")
    add_dataclass_options(model, UNetConfig, exclude=_FROM_DATA)
    training = p.add_argument_group("training")
    add_dataclass_options(
        training, TrainingConfig, names=_OPTION_NAMES, choices={"precision": PRECISIONS}
    )


def _add_sample_command(commands) -> None:
    from .sampling import SAMPLERS, generate

    def default(name):
        return default_of(generate, name)

    p = _add_command(
        commands,
        "sample",
        "generate images from a trained model",
        "Draw images from the EMA model in MODEL (a model.pt) and write them as uint8 "
        "(N, C, H, W) array 'images' of OUT (.npz), plus a PNG grid.",
        _cmd_sample,
    )
    p.add_argument("model", help="model.pt written by `ddpm train`")
    p.add_argument("out", help="the .npz file to write")
    p.add_argument("--num-samples", type=int, default=64, help="how many images")
    p.add_argument(
        "--sampler",
        default=default("sampler"),
        choices=SAMPLERS,
        help="'ancestral' = DDPM's reverse chain (T steps); 'ddim' = DDIM with --ddim-steps steps",
    )
    p.add_argument(
        "--ddim-steps", type=int, default=default("ddim_steps"), help="DDIM steps (at most T)"
    )
    p.add_argument(
        "--eta", type=float, default=default("eta"), help="DDIM noise scale (0 = deterministic)"
    )
    p.add_argument(
        "--batch-size", type=int, default=default("batch_size"), help="images per model call"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=default("seed"),
        help="seed of the noise (same seed and batch size = same images)",
    )
    p.add_argument("--png", help="path of the PNG grid (default: OUT with .png)")
    p.add_argument("--grid-samples", type=int, default=64, help="how many images the grid shows")
    p.add_argument(
        "--nrow", type=int, default=None, help="images per row of the grid (default: a square)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    _add_device_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpm",
        description="Denoising diffusion probabilistic models (Ho et al. 2020) and a study of noise schedules.",
        formatter_class=DefaultsOnceFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_schedule_command,
        _add_prepare_data_command,
        _add_train_command,
        _add_sample_command,
    ):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ddpm`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("ddpm").setLevel(level)
    try:
        return args.func(args)
    except DDPMError as err:
        if args.traceback:
            raise
        # These errors name the problem and the fix; a traceback would only bury that. Any
        # other exception is a bug and keeps its traceback.
        print(f"ddpm {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
