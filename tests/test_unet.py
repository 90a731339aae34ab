"""The U-Net: shapes for every supported size, the time embedding, skips, and config errors."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ddpm.unet import AttentionBlock, SinusoidalTimeEmbedding, UNet, count_parameters
from ddpm.unet_config import UNetConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peers import DiffusersUNet  # noqa: E402

from ddpm import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> UNetConfig:
    values = dict(
        image_size=8,
        base_channels=8,
        channel_mults=(1, 2),
        attention_levels=(1,),
        num_groups=4,
    )
    return UNetConfig(**{**values, **overrides})


def randomise_zero_layers(model: nn.Module) -> None:
    # The last conv of every branch starts at zero (output is exactly 0); give every weight a
    # value so that the tests below see the whole network.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("size", "mults", "attention"),
    [
        (8, (1, 2), (1,)),
        (16, (1, 2, 2), (2,)),
        (28, (1, 2, 2), (2,)),
        (32, (1, 2, 2, 2), (2,)),
        (64, (1, 1, 2, 2), (2,)),
    ],
)
def test_output_has_the_shape_of_the_input(size, mults, attention, channels):
    config = UNetConfig(
        image_channels=channels,
        image_size=size,
        base_channels=8,
        channel_mults=mults,
        attention_levels=attention,
        num_groups=4,
    )
    model = UNet(config)
    x = torch.randn(2, channels, size, size)
    out = model(x, torch.tensor([1, 7]))
    assert out.shape == x.shape
    assert out.dtype == torch.float32


def test_default_config_is_the_28x28_three_level_net():
    model = UNet()
    assert model.config.resolutions == (28, 14, 7)
    assert model(torch.randn(3, 1, 28, 28), torch.tensor([1, 500, 1000])).shape == (3, 1, 28, 28)
    attention = [m for m in model.modules() if m.__class__.__name__ == "AttentionBlock"]
    # one attention after the 7x7 block going down, one in the middle, two at 7x7 going up
    assert len(attention) == 4


def test_untrained_network_predicts_zero_noise():
    # Zero-initialised output conv (as in Ho et al.): the first loss is exactly E[eps^2] = 1.
    model = UNet(tiny())
    assert torch.count_nonzero(model(torch.randn(2, 1, 8, 8), torch.tensor([3, 4]))) == 0


def test_sinusoidal_embedding_matches_the_formula():
    dim, t = 8, torch.tensor([0, 1, 37])
    emb = SinusoidalTimeEmbedding(dim)(t)
    half = dim // 2
    for i, step in enumerate(t.tolist()):
        for k in range(half):
            w = 10000 ** (-k / (half - 1))
            assert emb[i, k].item() == pytest.approx(math.sin(step * w), abs=1e-5)
            assert emb[i, half + k].item() == pytest.approx(math.cos(step * w), abs=1e-5)


def test_timestep_changes_the_prediction_and_float_t_is_accepted():
    torch.manual_seed(0)
    model = UNet(tiny(dropout=0.0)).eval()
    randomise_zero_layers(model)
    x = torch.randn(1, 1, 8, 8)
    early, late = model(x, torch.tensor([1])), model(x, torch.tensor([50]))
    assert not torch.allclose(early, late)
    assert torch.allclose(model(x, torch.tensor([50.0])), late)
    assert torch.allclose(model(x, 50), late)  # a scalar t applies to the whole batch


def test_images_in_a_batch_do_not_interact():
    # GroupNorm and attention work per image, so a prediction must not depend on its batch mates.
    torch.manual_seed(0)
    model = UNet(tiny(dropout=0.0)).eval()
    randomise_zero_layers(model)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([2, 9, 30])
    together = model(x, t)
    alone = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = UNet(tiny())
    randomise_zero_layers(model)
    model(torch.randn(2, 1, 8, 8), torch.tensor([1, 5])).square().mean().backward()
    missing = [
        name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_count_parameters_counts_trainable_weights():
    model = UNet(tiny())
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    first_conv = model.input_conv
    assert first_conv.weight.numel() == 8 * 1 * 3 * 3
    model.input_conv.requires_grad_(False)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) - 8 * 9 - 8


def test_wrong_input_shape_is_reported():
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        UNet(tiny())(torch.randn(2, 3, 8, 8), torch.tensor([1, 2]))


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (
            {"image_size": 30, "channel_mults": (1, 2, 2), "attention_levels": ()},
            "image_size",
            "divisible by 4",
        ),
        ({"num_groups": 3}, "num_groups", "divid"),
        ({"attention_levels": (2,)}, "attention_levels", "[0, 1]"),
        ({"base_channels": 7, "num_groups": 1}, "base_channels", "even"),
        ({"channel_mults": ()}, "channel_mults", "non-empty"),
        ({"dropout": 1.0}, "dropout", "[0, 1)"),
        ({"image_channels": 0}, "image_channels", "positive"),
        ({"num_res_blocks": 0}, "num_res_blocks", "positive"),
    ],
)
def test_impossible_configs_raise_naming_the_key(overrides, key, allowed):
    config = tiny(**overrides)
    with pytest.raises(ConfigError, match=key) as info:
        config.validate()
    assert allowed in str(info.value)
    with pytest.raises(ConfigError, match=key):
        UNet(config)
    assert isinstance(info.value, ValueError)


def test_config_round_trips_through_a_dict():
    config = tiny(channel_mults=(1, 2), attention_levels=())
    data = config.to_dict()
    assert data["channel_mults"] == [1, 2]  # JSON-friendly
    assert UNetConfig.from_dict(data) == config
    with pytest.raises(ConfigError, match="unknown U-Net setting.*'depth'"):
        UNetConfig.from_dict({**data, "depth": 3})


def test_same_size_as_diffusers_port_of_the_same_architecture():
    # diffusers' UNet2DModel is an independent implementation of Ho et al.'s network; laid
    # out like our default (32-64-64 channels, one block per level, attention at 7x7 and in
    # the middle) it must have exactly as many weights. The benchmarks time the same port.
    pytest.importorskip("diffusers")
    reference = DiffusersUNet(image_size=28, base_channels=32)
    assert count_parameters(UNet()) == count_parameters(reference)


def _attention_input_sizes(model: UNet, image_size: int) -> list[int]:
    """Feature-map size seen by every attention block, in the order they run."""
    sizes = []
    hooks = [
        module.register_forward_pre_hook(lambda _module, args: sizes.append(args[0].shape[-1]))
        for module in model.modules()
        if isinstance(module, AttentionBlock)
    ]
    model(torch.randn(1, model.config.image_channels, image_size, image_size), 1)
    for hook in hooks:
        hook.remove()
    return sizes


def test_one_model_block_with_attention_fits_8x8_and_28x28_images():
    block = {"base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "num_groups": 4}
    for image_size in (8, 28):
        model = UNet(UNetConfig.from_dict({**block, "image_size": image_size}))
        # attention after the lowest level's block going down, in the middle, and after
        # both of that level's blocks going up: all at half the image size
        assert _attention_input_sizes(model, image_size) == [image_size // 2] * 4


def test_attention_levels_count_from_full_resolution():
    config = tiny(image_size=16, channel_mults=(1, 2, 2), attention_levels=(0, 2))
    # level 0 (16 px): one block down, two up; level 2 (4 px): the same; plus the middle
    assert sorted(_attention_input_sizes(UNet(config), 16)) == [4, 4, 4, 4, 16, 16, 16]
    assert _attention_input_sizes(UNet(tiny(attention_levels=())), 8) == [4]  # middle only
