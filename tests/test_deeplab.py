"""DeepLab v1–v3+: torchvision's parameter count and outputs, ASPP rates tied to the output
stride, the image-pooling branch with batch 1, v2's sum fusion, v3+'s decoder, v1-v3 on
SimpleSegmentationModel, the training-step benchmark against torchvision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation import deeplabv3_resnet50

from course_lib.bench_torchvision import deeplab_vs_torchvision
from course_lib.models.deeplab import (
    ASPP,
    ASPPPooling,
    DeepLabV1,
    DeepLabV2,
    DeepLabV3,
    DeepLabV3Plus,
    aspp_rates,
)
from course_lib.models.heads import SimpleSegmentationModel

TORCHVISION_DEEPLABV3_R50 = 42_004_074  # MODEL_REFERENCE.md


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_full_v3_has_exactly_torchvisions_parameter_count() -> None:
    with torch.device("meta"):
        ours = DeepLabV3(num_classes=21, output_stride=8, aux=True, full=True)
        theirs = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                    aux_loss=True)
    assert _count(theirs) == TORCHVISION_DEEPLABV3_R50
    assert _count(ours) == TORCHVISION_DEEPLABV3_R50
    # and tensor by tensor, in the same order (backbone, ASPP head, auxiliary head)
    assert [t.shape for t in ours.state_dict().values()] == [
        t.shape for t in theirs.state_dict().values()
    ]
    with torch.device("meta"):
        assert _count(DeepLabV3(num_classes=21, aux=False, full=True)) < _count(ours)


def test_full_v3_computes_torchvisions_function_with_copied_weights() -> None:
    torch.manual_seed(0)
    ours = DeepLabV3(num_classes=21, output_stride=8, aux=True, full=True)
    theirs = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                aux_loss=True)
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values(), strict=True)))
    x = torch.rand(1, 3, 33, 41)
    with torch.no_grad():
        a, b = ours.eval()(x), theirs.eval()(x)
    assert set(a) == set(b) == {"out", "aux"}
    for key in ("out", "aux"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4)


def test_aspp_rates_are_tied_to_the_output_stride() -> None:
    assert aspp_rates((6, 12, 18), 16, 8) == (12, 24, 36)
    assert aspp_rates((6, 12, 18), 16, 32) == (3, 6, 9)
    with pytest.raises(ValueError, match="output stride 32"):
        aspp_rates((6, 12, 18, 24), 8, 32)

    def dilations(aspp: ASPP) -> list[int]:
        return [b[0].dilation[0] for b in aspp.branches[1:-1]]  # the 3x3 branches

    for os_, rates in ((16, [6, 12, 18]), (8, [12, 24, 36])):
        v3 = DeepLabV3(width=4, channels=8, output_stride=os_)
        assert v3.backbone.strides["c5"] == os_
        assert dilations(v3.classifier[0]) == rates
        plus = DeepLabV3Plus(width=4, channels=8, output_stride=os_)
        assert [b[0][0].dilation[0] for b in plus.aspp.branches[1:-1]] == rates  # depthwise
    assert DeepLabV2(width=4).classifier.rates == (6, 12, 18, 24)  # output stride 8
    assert DeepLabV2(width=4, output_stride=16).classifier.rates == (3, 6, 9, 12)
    assert [c.dilation[0] for c in DeepLabV2(width=4).classifier.branches] == [6, 12, 18, 24]
    assert DeepLabV3(width=4, channels=8, rates=(2, 4, 6)).classifier[0].rates == (2, 4, 6)


def test_image_pooling_branch_batch_one() -> None:
    pool = ASPPPooling(16, 8)
    x = torch.randn(1, 16, 7, 9)
    out = pool.eval()(x)  # batch 1 in eval: BatchNorm uses its running statistics
    assert out.shape == (1, 8, 7, 9)
    assert torch.allclose(out, out[..., :1, :1].expand_as(out))  # the same vector everywhere
    with pytest.raises(ValueError, match="more than 1 value"):  # documented: train needs N >= 2
        pool.train()(x)
    assert pool.train()(torch.randn(2, 16, 7, 9)).shape == (2, 8, 7, 9)
    model = DeepLabV3(num_classes=4, width=4, channels=8).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 45, 45))["out"].shape == (1, 4, 45, 45)


def test_v2_aspp_is_the_sum_of_its_branches() -> None:
    torch.manual_seed(0)
    model = DeepLabV2(num_classes=3, width=4).eval()
    feats = torch.randn(1, model.backbone.channels["c5"], 9, 9)
    aspp = model.classifier  # v2's classifier is ASPP-L itself
    expected = sum(branch(feats) for branch in aspp.branches)
    torch.testing.assert_close(aspp(feats), expected)
    assert all(b.out_channels == 3 for b in aspp.branches)  # each predicts classes
    with torch.device("meta"):
        assert DeepLabV2(num_classes=21, full=True).backbone.channels["c5"] == 2048


def test_v3plus_decoder_low_level_path_and_separable_convs() -> None:
    with torch.device("meta"):
        full = DeepLabV3Plus(num_classes=21, full=True)
    assert full.low_level[0].in_channels == 256  # c2 of ResNet-50, stride 4
    assert full.low_level[0].out_channels == 48
    assert full.decoder[0][0][0].in_channels == 256 + 48
    assert full.decoder[0][0][0].groups == 256 + 48  # depthwise
    assert full.aspp.branches[1][0][0].groups == 2048  # separable ASPP
    assert full.backbone.strides == {"c2": 4, "c3": 8, "c4": 16, "c5": 16}
    model = DeepLabV3Plus(num_classes=4, width=4, channels=16).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 45, 50)).shape == (2, 4, 45, 50)


def test_v1_backbone_and_largefov_head() -> None:
    with torch.device("meta"):
        full = DeepLabV1(num_classes=21, full=True)
    assert full.classifier[0][0].dilation == (12, 12)  # LargeFOV fc6: 3x3, rate 12
    assert full.classifier[0][0].out_channels == 1024
    assert full.backbone.strides["c5"] == 8
    assert isinstance(full.classifier[0][1], nn.Identity)  # VGG16 of 2014: no batch-norm


@pytest.mark.parametrize("cls", [DeepLabV1, DeepLabV2, DeepLabV3])
def test_v1_to_v3_are_simple_segmentation_models(cls: type) -> None:
    """Only their constructors differ: the forward pass is SimpleSegmentationModel's, so the
    output is the classifier's scores on c5 resized to the input (plus aux on c4 for v3)."""
    torch.manual_seed(0)
    model = cls(num_classes=3, width=4).eval()
    assert isinstance(model, SimpleSegmentationModel)
    x = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        out = model(x)
        feats = model.backbone(x)
        expected = F.interpolate(model.classifier(feats["c5"]), size=(37, 29), mode="bilinear",
                                 align_corners=False)
    assert set(out) == ({"out", "aux"} if cls is DeepLabV3 else {"out"})
    torch.testing.assert_close(out["out"], expected)


def test_errors_name_the_problem() -> None:
    for cls in (DeepLabV1, DeepLabV2, DeepLabV3, DeepLabV3Plus):
        with pytest.raises(ValueError, match="num_classes"):
            cls(num_classes=0)
    with pytest.raises(ValueError, match="output_stride"):
        DeepLabV3(output_stride=4, rates=(1, 2, 3))


def test_benchmark_vs_torchvision_returns_a_ratio() -> None:
    result = deeplab_vs_torchvision(size=32, batch=2, repeats=1, device="cpu")
    assert set(result) >= {"ours_ms", "torchvision_ms", "ratio"}
    assert result["ratio"] == pytest.approx(result["ours_ms"] / result["torchvision_ms"])


def test_v3_without_aspp_is_the_same_head_with_one_plain_conv() -> None:
    from course_lib.models.blocks import ConvBNReLU
    from course_lib.models.deeplab import ASPP

    with_aspp = DeepLabV3(width=4, channels=8, aux=False)
    without = DeepLabV3(width=4, channels=8, aux=False, aspp=False)
    assert isinstance(with_aspp.classifier[0], ASPP)
    plain = without.classifier[0]
    assert isinstance(plain, ConvBNReLU) and plain[0].kernel_size == (3, 3)
    assert plain[0].dilation == (1, 1) and plain[0].out_channels == 8
    assert [type(m) for m in list(with_aspp.classifier)[1:]] == [
        type(m) for m in list(without.classifier)[1:]]
    with torch.no_grad():
        assert without.eval()(torch.rand(1, 3, 40, 40))["out"].shape == (1, 12, 40, 40)


@pytest.mark.parametrize("rate", [1, 2, 5, 6, 12])
def test_atrous_conv_shortcut_equals_the_full_dilated_conv(rate: int) -> None:
    """When the rate reaches the map size, AtrousConv2d drops the taps that only see padding:
    the result must be exactly that of the plain dilated convolution (DeepLab v3, Sec. 3.3)."""
    from course_lib.models.deeplab import AtrousConv2d

    torch.manual_seed(rate)
    for groups in (1, 4):
        conv = AtrousConv2d(4, 8, rate, bias=True, groups=groups)
        for h, w in ((3, 3), (6, 6), (5, 13), (1, 9)):
            x = torch.randn(2, 4, h, w)
            expected = F.conv2d(x, conv.weight, conv.bias, padding=rate, dilation=rate,
                                groups=groups)
            torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_notebook_11_v2_and_v3_heads_at_stride_16() -> None:
    # notebook 11 trains v2 beside v3 at stride 16 with four rates below the 6x6 map's side and
    # quotes their sizes (width 8, 32 ASPP channels, 12 classes): 106,008 and 152,884
    v2 = DeepLabV2(width=8, output_stride=16, rates=(1, 2, 3, 4))
    v3 = DeepLabV3(width=8, output_stride=16, rates=(1, 2, 3), channels=32, aux=False)
    assert v2.classifier.rates == (1, 2, 3, 4)
    assert v2.backbone.strides["c5"] == 16
    c5 = v2.backbone.channels["c5"]
    assert _count(v2.classifier) == 4 * (c5 * 9 * 12 + 12)  # four 3x3 classifiers with bias
    assert (_count(v2), _count(v3)) == (106_008, 152_884)
    with torch.no_grad():
        assert v2.eval()(torch.rand(1, 3, 96, 96))["out"].shape == (1, 12, 96, 96)
