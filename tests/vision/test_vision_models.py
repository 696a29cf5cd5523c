"""The networks: published parameter counts, output shapes, the width knob, He initialisation."""

import math

import pytest
import torch

from vision.models import MODELS, build_model, check_model_name, count_parameters

# (model, classes, published size, relative tolerance)
PUBLISHED = [
    ("resnet18", 10, 11.2e6, 0.01),  # CIFAR ResNet-18 (SAM, LETS papers): 11,173,962
    ("resnet32", 10, 0.46e6, 0.01),  # He et al. 2016, Table 6: 0.46M
    ("wrn28_10", 10, 36.5e6, 0.01),  # Zagoruyko & Komodakis 2016: 36.5M
    ("pyramidnet110", 10, 28.3e6, 0.01),  # Han et al. 2017, Table 4 (alpha 270): 28.3M; ours 28.49M
    ("resnet50", 1000, 25.6e6, 0.01),  # torchvision / He et al.: 25,557,032
    ("vit_s16", 1000, 22.1e6, 0.01),  # DeiT-S at 224: 22.05M
]


@pytest.mark.parametrize("name, classes, size, tolerance", PUBLISHED)
def test_parameter_counts_match_published_sizes(name, classes, size, tolerance):
    with torch.device("meta"):
        model = build_model(name, classes)
    assert math.isclose(count_parameters(model), size, rel_tol=tolerance), count_parameters(model)


def test_exact_counts_of_the_cifar_resnets():
    with torch.device("meta"):
        assert count_parameters(build_model("resnet18", 10)) == 11_173_962
        assert count_parameters(build_model("resnet32", 10)) == 464_154
        assert count_parameters(build_model("resnet50", 1000)) == 25_557_032


@pytest.mark.parametrize(
    "name, width", [("resnet18", 4), ("resnet32", 4), ("wrn28_10", 1), ("pyramidnet110", 12), ("resnet50", 4)]
)
def test_narrow_models_classify_cifar_batches(name, width):
    torch.manual_seed(0)
    model = build_model(name, 7, width=width)
    assert count_parameters(model) < count_parameters(build_model(name, 7, width=2 * width))
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


def test_tiny_vit_returns_logits():
    model = build_model("vit_s16", 5, width=16, depth=1, heads=2, patch_size=8, image_size=32)
    logits = model(torch.randn(3, 3, 32, 32))
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 5)


def test_he_initialisation_of_convolutions():
    torch.manual_seed(0)
    model = build_model("resnet18", 10, width=16)
    conv = model.stages[0].conv1[0]  # 16 -> 16 channels, 3x3: std sqrt(2 / fan_out) = sqrt(2 / 144)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.1)
    bn = model.stages[0].conv1[1]
    assert torch.equal(bn.weight, torch.ones(16)) and torch.equal(bn.bias, torch.zeros(16))


def test_unknown_model_names_the_option():
    with pytest.raises(ValueError, match="--model must be one of"):
        check_model_name("resnet1000")
    assert set(MODELS) == {"resnet18", "resnet32", "wrn28_10", "pyramidnet110", "vit_s16", "resnet50"}
