"""Intervals over seeds and the bootstrap over samples, against scipy / numpy by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats as scipy_stats

from ddpm.evaluation.spread import bootstrap_sample_metrics
from ddpm.stats import (
    ols_slope,
    spearman_with_bootstrap,
    t_interval,
    welch_difference,
)


def test_t_interval_by_hand():
    # mean 2.5, sd sqrt(5/3), t(0.975, 3) = 3.18245
    result = t_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert result["n"] == 4 and result["mean"] == pytest.approx(2.5)
    assert result["lo"] == pytest.approx(2.5 - half) and result["hi"] == pytest.approx(2.5 + half)
    lo, hi = scipy_stats.t.interval(0.95, 3, loc=2.5, scale=scipy_stats.sem([1, 2, 3, 4]))
    assert (result["lo"], result["hi"]) == pytest.approx((lo, hi))


def test_t_interval_of_one_seed_has_no_width_and_nans_are_dropped():
    one = t_interval([3.0, math.nan])
    assert one["n"] == 1 and one["mean"] == 3.0
    assert math.isnan(one["lo"]) and math.isnan(one["hi"])


def test_welch_difference_matches_scipy():
    a, b = [10.0, 12.0, 11.0, 13.0], [8.0, 7.5, 9.0]
    result = welch_difference(a, b)
    expected = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert result["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert (result["lo"], result["hi"]) == pytest.approx((expected.low, expected.high))


def test_ols_slope_matches_linregress_and_exact_lines_have_no_width():
    x = np.log2([50, 100, 200, 400, 800] * 3)
    rng = np.random.default_rng(0)
    y = 3.0 - 2.0 * x + rng.normal(0, 0.5, len(x))
    result = ols_slope(x, y)
    fit = scipy_stats.linregress(x, y)
    half = scipy_stats.t.ppf(0.975, len(x) - 2) * fit.stderr
    assert result["slope"] == pytest.approx(fit.slope)
    assert (result["lo"], result["hi"]) == pytest.approx((fit.slope - half, fit.slope + half))
    exact = ols_slope([1, 2, 3, 4], [2, 4, 6, 8])
    assert exact["slope"] == pytest.approx(2.0) and exact["hi"] - exact["lo"] == pytest.approx(0)


def test_spearman_bootstrap_interval():
    monotone = spearman_with_bootstrap(np.arange(10.0), np.arange(10.0) ** 2)
    assert monotone["rho"] == pytest.approx(1.0)
    assert monotone["lo"] == pytest.approx(1.0) and monotone["hi"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    noise = spearman_with_bootstrap(rng.normal(size=40), rng.normal(size=40))
    assert noise["lo"] < noise["rho"] < noise["hi"] and noise["lo"] < 0 < noise["hi"]


def _features(n: int, seed: int, shift: float = 0.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    fid = torch.randn(n, 8, generator=generator) + shift
    return {"fid": fid, "kid": fid, "isc": torch.randn(n, 10, generator=generator) * 2}


def _fid_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    covmean = scipy.linalg.sqrtm(np.cov(a, rowvar=False) @ np.cov(b, rowvar=False)).real
    diff = a.mean(0) - b.mean(0)
    return float(
        diff @ diff
        + np.trace(np.cov(a, rowvar=False) + np.cov(b, rowvar=False))
        - 2 * np.trace(covmean)
    )


#: The bootstrap's other options, as the scoring passes them.
OPTIONS = {"seed": 0, "kid_subsets": 100, "isc_splits": 5}


def test_bootstrap_recomputes_fid_like_the_textbook_formula():
    generated, reference = _features(60, 1, shift=0.5), _features(400, 2)
    result = bootstrap_sample_metrics(
        generated,
        reference,
        resamples=30,
        seed=3,
        kid_subsets=100,
        kid_subset_size=20,
        isc_splits=2,
    )
    rng = np.random.default_rng(3)
    by_hand = [
        _fid_by_hand(generated["fid"].numpy()[rng.integers(0, 60, 60)], reference["fid"].numpy())
        for _ in range(30)
    ]
    assert result["fid_boot_sd"] == pytest.approx(np.std(by_hand, ddof=1), rel=1e-3)
    assert result["fid_boot_lo"] == pytest.approx(np.quantile(by_hand, 0.025), rel=1e-3)
    assert result["bootstrap_resamples"] == 30
    for name in ("fid", "kid_mean", "is_mean"):
        assert result[f"{name}_boot_lo"] < result[f"{name}_boot_hi"]


def test_bootstrap_spread_shrinks_with_more_samples():
    reference = _features(1000, 2)
    spreads = [
        bootstrap_sample_metrics(
            _features(n, 1, shift=0.3), reference, resamples=40, kid_subset_size=50, **OPTIONS
        )["fid_boot_sd"]
        for n in (100, 800)
    ]
    # The spread of a mean-like statistic falls as 1 / sqrt(n): about 2.8x here.
    assert spreads[1] < spreads[0] / 2


def test_bootstrap_rejects_bad_options():
    ten = (_features(10, 0), _features(10, 1))
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_sample_metrics(*ten, resamples=1, kid_subset_size=5, **OPTIONS)
    with pytest.raises(ValueError, match="kid_subset_size"):
        bootstrap_sample_metrics(*ten, resamples=10, kid_subset_size=50, **OPTIONS)


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
    """scikit-learn's 8x8 digits and a classifier trained on them (a few seconds)."""
    from sklearn.datasets import load_digits

    from ddpm.evaluation.classifier import train_classifier

    digits = load_digits()
    images = torch.from_numpy(np.rint(digits.images * 255 / 16).astype(np.uint8))[:, None]
    labels = torch.from_numpy(digits.target)
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    torch.set_num_threads(1)
    train_classifier(images[:1200], labels[:1200], images[1200:], labels[1200:], path, epochs=2)
    return images, path


def test_scoring_records_the_bootstrap_spread_next_to_each_metric(digits_classifier, tmp_path):
    from ddpm.evaluation.spread import extract_metric_features
    from ddpm.evaluation.study import score_real_floor, score_samples

    images, weights = digits_classifier
    features = extract_metric_features(images[:50], extractor="classifier", weights_path=weights)
    assert features["isc"].shape == (50, 10) and features["fid"].shape[0] == 50
    scoring = {
        "dataset": "digits",
        "classifier_path": weights,
        "inception_status": {"weights_path": None, "reason": "offline"},
        "cache_dir": tmp_path,
        "options": {"kid_subset_size": 50, "isc_splits": 2, "bootstrap_resamples": 20},
    }
    test = images[1200:]
    floor = score_real_floor(images[:1200], test, 100, **scoring)
    noise = torch.randint(0, 256, (100, 1, 8, 8), dtype=torch.uint8)
    generated = score_samples(noise, test, **scoring)
    for record in (floor, generated):
        assert record["bootstrap_resamples"] == 20
        for name in ("fid", "kid_mean", "is_mean"):
            assert record[f"classifier_{name}_boot_sd"] > 0
        assert "classifier_fid_boot_sd" in record and "inception_fid_boot_sd" not in record
    # Real digits sit far below noise, beyond both sets' sample spread.
    assert floor["classifier_fid_boot_hi"] < generated["classifier_fid_boot_lo"]


def test_reference_features_are_extracted_once_per_cache(digits_classifier, tmp_path, monkeypatch):
    from ddpm.evaluation import spread
    from ddpm.evaluation.study import score_samples

    images, weights = digits_classifier
    calls = []
    extract = spread.extract_metric_features
    monkeypatch.setattr(
        spread,
        "extract_metric_features",
        lambda x, **kw: calls.append(len(x)) or extract(x, **kw),
    )
    scoring = {
        "dataset": "digits",
        "classifier_path": weights,
        "inception_status": {"weights_path": None, "reason": "offline"},
        "cache_dir": tmp_path,
        "options": {"kid_subset_size": 50, "isc_splits": 2, "bootstrap_resamples": 5},
    }
    first = score_samples(images[:60], images[1200:], **scoring)
    second = score_samples(images[:60], images[1200:], **scoring)
    # the test set once (then cached), the generated set every time
    assert calls == [len(images) - 1200, 60, 60]
    assert first["classifier_fid_boot_sd"] == second["classifier_fid_boot_sd"]
