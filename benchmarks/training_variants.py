"""Which change to the optimisation or the sampler buys sample quality at a fixed training cost?

Trains one grid cell of the study (``config/config.yaml``: its dataset, U-Net, diffusion and
training settings; cosine, T = 800 unless told) through the library's training loop, with the
changes its options allow: learning rate, warm-up, a cosine learning-rate decay, gradient
clipping on or off, the EMA's decay. The EMA model is sampled (Algorithm 2, T steps, the same
noise for every posterior variance asked for) and scored as the study scores, against the test
split. Prints one JSON line: CPU seconds of training and, for as many real training images and
per variance: IS, FID, IS after rounding each pixel to the data's grey levels, the mean
top-class probability and the entropy of the class marginal (the two factors of IS).

    OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=src \
        python benchmarks/training_variants.py --seed 0 --grad-clip 0 --variances beta,beta_tilde
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import Scorer, add_training_arguments, arguments_spec, load_data, study_config

from ddpm.checkpoints import load_model
from ddpm.diffusion import GaussianDiffusion, from_model_range, to_model_range
from ddpm.evaluation.classifier import load_classifier
from ddpm.training.loop import train


def _arguments(config: dict, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedule", choices=sorted(config["schedules"]), default="cosine")
    parser.add_argument("--T", type=int, default=800)
    add_training_arguments(parser)
    parser.add_argument("--variances", default="beta", help="comma-separated: beta, beta_tilde")
    parser.add_argument("--num-samples", type=int, default=config["sampling"]["num_samples"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--classifier-epochs", type=int, help="default: the study's")
    return parser.parse_args(argv)


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


def main(argv=None) -> None:
    config = study_config()
    args = _arguments(config, argv)
    torch.set_num_threads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="training_variants_"))
    dataset = config["datasets"][0]
    data = load_data(config, dataset, work)
    spec = arguments_spec(args, config, dataset, data.image_shape)
    scorer = Scorer(config, data, args.num_samples, work, args.classifier_epochs)
    started = time.process_time()
    model_path = train(data.train_images, spec, work / f"run-{time.time_ns()}")
    result = {"args": vars(args), "spec": spec.to_dict()}
    result["train_cpu_s"] = round(time.process_time() - started, 1)
    model, diffusion, _ = load_model(model_path)
    classifier, levels = load_classifier(scorer.weights), torch.unique(data.train_images)

    def score(images: torch.Tensor) -> dict:
        metrics = scorer(images)
        return {
            "is": round(metrics["classifier_is_mean"], 3),
            "fid": round(metrics["classifier_fid"], 2),
            # The data has few grey levels (17 for the 8x8 digits); samples are continuous.
            "is_on_data_levels": round(scorer(_to_levels(images, levels))["classifier_is_mean"], 3),
            **_confidence(classifier, images),
        }

    result["real_training_images"] = score(scorer.real)
    shape = (args.num_samples, *data.image_shape)
    for variance in args.variances.split(","):
        sampler = GaussianDiffusion(
            diffusion.schedule, variance=variance, clip_denoised=diffusion.clip_denoised
        )
        with torch.inference_mode():
            x = sampler.sample(model, shape, generator=torch.Generator().manual_seed(1234))
        result[variance] = score(from_model_range(x))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
