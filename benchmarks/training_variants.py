"""Which change to the optimisation buys sample quality at a fixed training cost?

Trains one grid cell of the default study (8x8 digits, the default U-Net, L_simple) with the
library's loss and U-Net in a loop of its own, so that it can vary what the library fixes:
Adam's beta2, gradient clipping, the spread of t over a batch (uniform, as in Algorithm 1, or
stratified: one t per 1/batch of [1, T], the same expectation at a lower variance) and several
EMA profiles tracked side by side in one run. Each EMA model is sampled (Algorithm 2, T steps,
the same noise for every profile and posterior variance) and scored with the domain classifier
against the test split. Prints one JSON line: CPU seconds of training and, for 200 real training
images and per EMA profile and variance: IS, FID, IS after rounding each pixel to the data's grey
levels, the mean top-class probability and the entropy of the class marginal (the two factors
of IS).

EMA profiles: ``lib`` is the library's (decay min(ema_decay, (1 + s) / (10 + s)) at step s);
``pG`` is a power-function EMA (decay (1 - 1/t)^(G + 1), which always averages the same share of
the run so far; larger G: shorter memory).

    OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=src \
        python benchmarks/training_variants.py --seed 0 --emas lib,p1,p3,p7
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch
from study_cell import SCHEDULES, study_classifier_epochs, study_config

from ddpm.data.prepare import prepare_dataset
from ddpm.data.store import load_split
from ddpm.diffusion import GaussianDiffusion, from_model_range, to_model_range
from ddpm.evaluation.classifier import load_classifier, train_classifier
from ddpm.evaluation.scoring import compute_metrics
from ddpm.schedules import make_schedule
from ddpm.unet import UNet
from ddpm.unet_config import UNetConfig, unet_config_for


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="cosine")
    parser.add_argument("--T", type=int, default=800)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--beta2", type=float, default=0.999, help="Adam's beta2")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="0: no clipping")
    parser.add_argument("--stratified-t", action="store_true")
    parser.add_argument("--ema-decay", type=float, default=0.995, help="the lib profile's cap")
    parser.add_argument("--emas", default="lib", help="comma-separated: lib, pG (e.g. p3)")
    parser.add_argument("--variances", default="beta", help="comma-separated: beta, beta_tilde")
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--classifier-epochs", type=int, default=None, help="default: the study's (config.yaml)"
    )
    return parser.parse_args(argv)


def _decay(profile: str, step: int, cap: float) -> float:
    """EMA decay for the update after optimizer step ``step`` (1-based)."""
    if profile == "lib":
        return min(cap, step / (9.0 + step))
    if profile.startswith("p"):
        return (1.0 - 1.0 / step) ** (float(profile[1:]) + 1.0)
    raise SystemExit(f"unknown EMA profile {profile!r}: lib or pG (e.g. p3)")


def _timesteps(diffusion, n: int, stratified: bool, generator) -> torch.Tensor:
    if not stratified:
        return torch.randint(1, diffusion.T + 1, (n,), generator=generator)
    u = (torch.arange(n) + torch.rand(n, generator=generator)) / n
    t = (u * diffusion.T).long().add_(1).clamp_(1, diffusion.T)
    return t[torch.randperm(n, generator=generator)]


def _train(args, diffusion, images, emas) -> float:
    torch.manual_seed(args.seed)
    model = UNet(_unet_config())
    averages = {name: copy.deepcopy(model).requires_grad_(False) for name in emas}
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, args.beta2))
    order, loss_noise = (torch.Generator().manual_seed(args.seed + k) for k in (0, 1))
    data = to_model_range(images)
    started = time.process_time()
    permutation, position = torch.randperm(len(data), generator=order), 0
    for step in range(1, args.steps + 1):
        warm = step / args.warmup_steps if step < args.warmup_steps else 1.0
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warm
        if position + args.batch_size > len(data):
            permutation, position = torch.randperm(len(data), generator=order), 0
        x0 = data[permutation[position : position + args.batch_size]]
        position += args.batch_size
        t = _timesteps(diffusion, len(x0), args.stratified_t, loss_noise)
        noise = torch.randn(x0.shape, generator=loss_noise)
        loss = torch.nn.functional.mse_loss(model(diffusion.q_sample(x0, t, noise), t), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        with torch.no_grad():
            for name, average in averages.items():
                decay = _decay(name, step, args.ema_decay)
                for mean, weight in zip(average.parameters(), model.parameters(), strict=True):
                    mean.lerp_(weight, 1.0 - decay)
    emas.update(averages)
    return time.process_time() - started


def _confidence(classifier, images: torch.Tensor) -> dict:
    """Mean top-class probability and entropy of the class marginal (IS's two factors)."""
    with torch.no_grad():
        probabilities = classifier(to_model_range(images)).softmax(-1)
    marginal = probabilities.mean(0)
    return {
        "top_class_prob": round(float(probabilities.max(-1).values.mean()), 3),
        "marginal_entropy": round(float(-(marginal * marginal.log()).sum()), 3),
    }


def _to_levels(images: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Each pixel rounded to the nearest grey level that occurs in the data."""
    nearest = (images.float()[..., None] - levels.float()).abs().argmin(-1)
    return levels[nearest]


def _unet_config() -> UNetConfig:
    """The default study's model block (config/config.yaml) for the 8x8 digits."""
    return unet_config_for(study_config()["model"], image_channels=1, image_size=8)


def main(argv=None) -> None:
    args = _arguments(argv)
    torch.set_num_threads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="training_variants_"))
    data = work / "digits-8.npz"
    if not data.exists():
        prepare_dataset("digits", data, image_size=8)
    train_images, train_labels = load_split(data, "train")
    test_images, test_labels = load_split(data, "test")
    epochs = args.classifier_epochs or study_classifier_epochs()
    classifier = work / f"classifier-digits-8-e{epochs}.pt"
    if not classifier.exists():
        train_classifier(
            train_images, train_labels, test_images, test_labels, classifier, epochs=epochs
        )
    name, params = SCHEDULES[args.schedule]
    emas = dict.fromkeys(args.emas.split(","))
    result = {"args": vars(args)}
    result["train_cpu_s"] = round(
        _train(args, GaussianDiffusion(make_schedule(name, args.T, **params)), train_images, emas),
        1,
    )
    options = {
        "extractor": "classifier",
        "weights_path": classifier,
        "kid_subset_size": min(50, args.num_samples),
        "isc_splits": 5,
    }
    scorer, levels = load_classifier(classifier), torch.unique(train_images)

    def score(images: torch.Tensor) -> dict:
        metrics = compute_metrics(images, test_images, **options)
        return {
            "is": round(metrics["classifier_is_mean"], 3),
            "fid": round(metrics["classifier_fid"], 2),
            # The data has few grey levels (17 for the 8x8 digits); samples are continuous.
            "is_on_data_levels": round(
                compute_metrics(_to_levels(images, levels), test_images, **options)[
                    "classifier_is_mean"
                ],
                3,
            ),
            **_confidence(scorer, images),
        }

    result["real_training_images"] = score(train_images[: args.num_samples])
    for profile, model in emas.items():
        model.eval()
        for variance in args.variances.split(","):
            diffusion = GaussianDiffusion(make_schedule(name, args.T, **params), variance=variance)
            with torch.inference_mode():
                x = diffusion.sample(
                    model,
                    (args.num_samples, 1, 8, 8),
                    generator=torch.Generator().manual_seed(1234),
                )
            result[f"{profile}:{variance}"] = score(from_model_range(x))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
