"""TernausNet: shapes, the VGG11 paper size against torchvision, the pre-trained encoder loads,
gradients reach it, bad input is refused, one tiny batch is overfitted."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import pattern_data

from course_lib import pretrain
from course_lib.models import build_model, get_spec
from course_lib.models.backbones import VGGBackbone, build_backbone
from course_lib.models.ternausnet import TernausNet

TINY = pretrain.Recipe(images=24, image_size=48, crop=40, steps=3, batch_size=8, lr=3e-3)


def test_registered_with_paper_and_year() -> None:
    spec = get_spec("ternausnet")
    assert spec.builder is TernausNet and spec.year == 2018 and "Iglovikov" in spec.paper


@pytest.mark.parametrize("size", [(32, 48), (45, 37)])
def test_output_has_the_input_size(size: tuple[int, int]) -> None:
    model = TernausNet(num_classes=5, width=4).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, *size)).shape == (2, 5, *size)


def test_skips_are_the_vgg_blocks_before_their_pools() -> None:
    model = TernausNet(width=4).eval()
    with torch.no_grad():
        bottom, skips = model.encode(torch.rand(1, 3, 64, 64))
    assert [tuple(s.shape[1:]) for s in skips] == [(4, 64, 64), (8, 32, 32), (16, 16, 16),
                                                  (32, 8, 8), (32, 4, 4)]
    assert tuple(bottom.shape[1:]) == (32, 2, 2)  # pool5, stride 32


def _conv(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout + cout  # weight + bias (the paper's convolutions have biases)


def test_full_is_vgg11_plus_the_papers_decoder() -> None:
    """An independent count: torchvision's VGG11 convolutions plus the authors' UNet11 decoder
    (num_filters 32) written out layer by layer, and the 1x1 classifier."""
    vgg11 = sum(p.numel() for p in torchvision.models.vgg11().features.parameters())
    f = 32
    decoder = (_conv(512, 16 * f) + _conv(16 * f, 8 * f)  # centre: conv, up-conv
               + _conv(8 * f + 512, 16 * f) + _conv(16 * f, 8 * f)  # dec5
               + _conv(8 * f + 512, 16 * f) + _conv(16 * f, 4 * f)  # dec4
               + _conv(4 * f + 256, 8 * f) + _conv(8 * f, 2 * f)  # dec3
               + _conv(2 * f + 128, 4 * f) + _conv(4 * f, f)  # dec2
               + _conv(f + 64, f)  # dec1
               + _conv(f, 12, 1))  # classifier, 12 classes
    with torch.device("meta"):
        model = TernausNet(full=True)
    assert sum(p.numel() for p in model.encoder.parameters()) == vgg11 == 9_220_480
    assert sum(p.numel() for p in model.parameters()) == vgg11 + decoder
    assert vgg11 + decoder == get_spec("ternausnet").full_params
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_gradients_reach_the_encoder() -> None:
    torch.manual_seed(0)
    model = TernausNet(num_classes=3, width=4)
    x, masks = pattern_data(2, (32, 32), 3)
    torch.nn.functional.cross_entropy(model(x), masks).backward()
    first = model.encoder.stage1[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_the_notebooks_encoder_is_the_cached_vgg_tiny() -> None:
    """Notebook 03 loads the file that ``make data`` builds (``vgg_tiny`` at width 8): no new
    pre-training."""
    model = build_model("ternausnet", width=8)
    assert isinstance(model.encoder, VGGBackbone)
    for seed in (0, 1):
        assert (pretrain.cache_path(model.encoder, seed=seed)
                == pretrain.cache_path(build_backbone("vgg_tiny", width=8), seed=seed))


def test_pretrained_weights_load_into_the_encoder(own_data_dir) -> None:
    made = pretrain.load_pretrained(build_backbone("vgg_tiny", width=4), seed=0, recipe=TINY,
                                    verbose=False)
    model = TernausNet(width=4)
    report = pretrain.load_pretrained(model.encoder, seed=0, recipe=TINY, verbose=False)
    assert report.path == made.path and not report.trained_now
    cached = torch.load(made.path, weights_only=True)["model"]
    assert torch.equal(model.encoder.stage3[0].weight, cached["stage3.0.weight"])
    assert torch.equal(model.encoder.stage1[1].running_mean, cached["stage1.1.running_mean"])
    groups = pretrain.fine_tune_groups(model, 1e-3)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.encoder.parameters()}


def test_bad_input_and_arguments_are_refused() -> None:
    model = TernausNet(width=4)
    with pytest.raises(ValueError, match=r"TernausNet: expected input \[N, 3, H, W\]"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="TernausNet: expected input"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="encoder is a VGG"):
        TernausNet(backbone="resnet18")
    with pytest.raises(ValueError, match="decoder_scale must be positive"):
        TernausNet(decoder_scale=-1.0)
    with pytest.raises(ValueError, match="width must be positive"):
        TernausNet(width=0)


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = TernausNet(num_classes=3, width=4)
    x, masks = pattern_data(2, (32, 32), 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), masks)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == masks).float().mean().item()
    assert accuracy > 0.95, accuracy
