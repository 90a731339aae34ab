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

from . import __version__

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


def _int_list(text: str) -> tuple[int, ...]:
    """'1,2,2' -> (1, 2, 2); '' or 'none' -> ()."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,2, got {text!r}"
        ) from None


def _optional_float(text: str) -> float | None:
    if text.strip().lower() in ("none", "off", "0"):
        return None
    return float(text)


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in ("none", "off", "0"):
        return None
    return int(text)


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
    from .data import prepare_dataset

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


def _cmd_train(args) -> int:
    from .data import load_split
    from .diffusion import GaussianDiffusion
    from .schedules import make_schedule
    from .training import TrainingConfig, train
    from .unet import UNetConfig

    images, _ = load_split(args.data, args.split)
    unet_config = UNetConfig(
        image_channels=int(images.shape[1]),
        image_size=int(images.shape[-1]),
        base_channels=args.base_channels,
        channel_mults=args.channel_mults,
        num_res_blocks=args.num_res_blocks,
        attention_levels=args.attention_levels,
        dropout=args.dropout,
        num_groups=args.num_groups,
    ).validate()
    config = TrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip,
        ema_decay=args.ema_decay,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every,
        snapshot_every=args.snapshot_every,
        snapshot_count=args.snapshot_count,
        divergence_factor=args.divergence_factor,
        divergence_patience=args.divergence_patience,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        num_threads=args.threads,
    ).validate()
    schedule = make_schedule(args.schedule, args.T, **parse_key_value(args.schedule_param))
    diffusion = GaussianDiffusion(
        schedule, variance=args.variance, loss=args.loss, clip_denoised=not args.no_clip_denoised
    )
    path = train(
        images, diffusion, unet_config, config, args.run_dir, record={"data_path": str(args.data)}
    )
    print(path)
    return 0


def _cmd_sample(args) -> int:
    import torch

    from .sampling import generate, image_grid, save_png, save_samples

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
    shown = images[: args.grid_samples]
    nrow = args.nrow or max(1, round(len(shown) ** 0.5))
    save_png(png, image_grid(shown, nrow=nrow))
    print(f"wrote {len(images)} images to {args.out} and a grid of {len(shown)} to {png}")
    return 0


# --- the parser --------------------------------------------------------------------------
class _DefaultsOnceFormatter(argparse.HelpFormatter):
    """Append ``(default: X)`` to an option's help once, and only where there is a default to
    show: not for required options, flags, options without a default, or help that already
    names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or action.required
            # Identity, not equality: a default of 0 is worth showing, False is not.
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction))
            or not action.option_strings
        ):
            return text
        if isinstance(default, tuple):
            # Shown the way it is typed: 1,2,2 rather than (1, 2, 2).
            default = ",".join(str(item) for item in default) or "none"
        return f"{text} (default: {str(default).replace('%', '%%')})"


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="'auto' (a CUDA GPU if there is one, else the CPU), 'cpu', 'cuda' or 'cuda:N'",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "bf16", "fp32"),
        help="'auto' = picked for the device (bf16 autocast where the hardware runs it fast, "
        "float32 elsewhere); 'bf16' = bf16 autocast on any device; 'fp32' = float32",
    )


def build_parser() -> argparse.ArgumentParser:
    formatter = _DefaultsOnceFormatter
    parser = argparse.ArgumentParser(
        prog="ddpm",
        description="Denoising diffusion probabilistic models (Ho et al. 2020) and a study of noise schedules.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # schedule
    p = commands.add_parser(
        "schedule",
        help="print or write the table of a noise schedule",
        description="Print (or write as CSV) one row per timestep t = 1..T of a noise schedule: beta, "
        "alpha_bar, log SNR, posterior variance and the KL of q(x_t | x_0) to N(0, I) in bits per "
        "dimension; then a one-line JSON summary (alpha_bar_T, prior KL).",
        formatter_class=formatter,
    )
    p.add_argument("name", help="schedule name: linear, cosine, sigmoid or sigmoid_alpha_bar")
    p.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a schedule parameter, repeatable (e.g. beta_start=1e-5, rescale_to_T=true, s=0.002)",
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
    p.set_defaults(func=_cmd_schedule)

    # prepare-data
    p = commands.add_parser(
        "prepare-data",
        help="convert a dataset into one .npz file",
        description="Fetch (if needed) and convert a dataset into the .npz file every other step reads: "
        "uint8 images (N, C, H, W) with int64 labels for each split.",
        formatter_class=formatter,
    )
    p.add_argument(
        "name", help="dataset name (mnist5k, digits, mnist, fashion_mnist, cifar10, fgvc_aircraft)"
    )
    p.add_argument("out", help="the .npz file to write")
    p.add_argument("--image-size", type=int, default=28, help="side of the stored (square) images")
    p.add_argument(
        "--root", default="resources/datasets", help="directory for downloaded raw files"
    )
    p.add_argument(
        "--base-url", help="fetch the raw files from this mirror (https://, http:// or file://)"
    )
    p.add_argument(
        "--resize-mode",
        default="resize",
        choices=("resize", "pad"),
        help="'resize' (antialiased) or 'pad' with a zero border (only to grow images)",
    )
    p.set_defaults(func=_cmd_prepare_data)

    # train
    p = commands.add_parser(
        "train",
        help="train a noise-prediction U-Net",
        description="Train a U-Net on the images of a prepared dataset. Writes model.pt (EMA weights and the "
        "record to rebuild model and diffusion), train_log.csv, run.json and, with --snapshot-every, "
        "snapshots.npz into RUN_DIR. Rolling checkpoints go to RUN_DIR/checkpoints/; running the same "
        "command again resumes from the newest usable one.",
        formatter_class=formatter,
    )
    p.add_argument("data", help="a dataset .npz written by `ddpm prepare-data`")
    p.add_argument("run_dir", help="output directory of the run")
    p.add_argument("--split", default="train", help="which split of the dataset file to train on")
    g = p.add_argument_group("diffusion")
    g.add_argument(
        "--schedule",
        default="linear",
        help="noise schedule: linear, cosine, sigmoid, sigmoid_alpha_bar",
    )
    g.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    g.add_argument(
        "--schedule-param",
        action="append",
        metavar="KEY=VALUE",
        help="a schedule parameter, repeatable (e.g. beta_start=1e-5 rescale_to_T=true)",
    )
    g.add_argument(
        "--variance",
        default="beta",
        choices=("beta", "beta_tilde"),
        help="reverse-process variance",
    )
    g.add_argument(
        "--loss",
        default="mse",
        choices=("mse", "smooth_l1"),
        help="loss between true and predicted noise",
    )
    g.add_argument(
        "--no-clip-denoised",
        action="store_true",
        help="do not clip the predicted x_0 to [-1, 1] when sampling",
    )
    g = p.add_argument_group("model (image channels and size come from the data)")
    g.add_argument("--base-channels", type=int, default=32, help="channels of the first level")
    g.add_argument(
        "--channel-mults",
        type=_int_list,
        default=(1, 2, 2),
        help="channel multiplier per level, e.g. 1,2,2",
    )
    g.add_argument("--num-res-blocks", type=int, default=1, help="residual blocks per level")
    g.add_argument(
        "--attention-levels",
        type=_int_list,
        default=(2,),
        help="levels with self-attention (0 = full resolution), e.g. 2 or 1,2; 'none' for none",
    )
    g.add_argument(
        "--dropout", type=float, default=0.1, help="dropout probability in residual blocks"
    )
    g.add_argument(
        "--num-groups",
        type=int,
        default=8,
        help="GroupNorm groups (must divide every level's channels)",
    )
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, required=True, help="optimizer steps in total")
    g.add_argument("--batch-size", type=int, default=128, help="images per step")
    g.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate after warm-up")
    g.add_argument(
        "--warmup-steps", type=int, default=0, help="steps of linear learning-rate warm-up"
    )
    g.add_argument(
        "--grad-clip",
        type=_optional_float,
        default=1.0,
        help="max gradient norm; 'none' or 0 = off",
    )
    g.add_argument("--ema-decay", type=float, default=0.999, help="decay of the EMA of the weights")
    g.add_argument(
        "--checkpoint-every", type=int, default=500, help="steps between rolling checkpoints"
    )
    g.add_argument("--keep-checkpoints", type=int, default=2, help="how many checkpoints to keep")
    g.add_argument(
        "--log-every", type=int, default=50, help="steps per row of train_log.csv and per log line"
    )
    g.add_argument(
        "--snapshot-every",
        type=_optional_int,
        default=None,
        help="steps between EMA sample snapshots; none = off",
    )
    g.add_argument("--snapshot-count", type=int, default=16, help="images per snapshot")
    g.add_argument(
        "--divergence-factor",
        type=_optional_float,
        default=100.0,
        help="stop when the loss stays this many times above its early level; none = off",
    )
    g.add_argument(
        "--divergence-patience",
        type=int,
        default=100,
        help="steps the loss must stay that high before the run stops",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="seed of weights, dropout, data order, t and noise"
    )
    g.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    _add_device_options(g)
    p.set_defaults(func=_cmd_train)

    # sample
    p = commands.add_parser(
        "sample",
        help="generate images from a trained model",
        description="Draw images from the EMA model in MODEL (a model.pt) and write them as uint8 "
        "(N, C, H, W) array 'images' of OUT (.npz), plus a PNG grid.",
        formatter_class=formatter,
    )
    p.add_argument("model", help="model.pt written by `ddpm train`")
    p.add_argument("out", help="the .npz file to write")
    p.add_argument("--num-samples", type=int, default=64, help="how many images")
    p.add_argument(
        "--sampler",
        default="ancestral",
        choices=("ancestral", "ddim"),
        help="'ancestral' = DDPM's reverse chain (T steps); 'ddim' = DDIM with --ddim-steps steps",
    )
    p.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps (at most T)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise scale (0 = deterministic)")
    p.add_argument("--batch-size", type=int, default=256, help="images per model call")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
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
    p.set_defaults(func=_cmd_sample)
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
    except Exception as err:
        if args.traceback:
            raise
        # Library errors name the problem and the fix; a traceback would only bury that.
        print(f"ddpm {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
