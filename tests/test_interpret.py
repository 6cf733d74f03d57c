"""course_lib.interpret.grad_cam against a network whose gradients are known by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.interpret import channel_mask_correlation, contrast_gradient_share, grad_cam


class _Linear(nn.Module):
    """features = 1x1 conv of the image (2 channels), logits = 1x1 conv of the features"""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1, bias=False)
        self.classifier = nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.classifier.weight.copy_(torch.tensor([[2.0, 1.0], [-1.0, 3.0]]).view(2, 2, 1, 1))
            self.classifier.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def test_grad_cam_equals_the_hand_computation():
    model = _Linear().eval()
    image = torch.arange(12.0).view(1, 1, 3, 4) - 5  # both signs
    region = torch.zeros(3, 4, dtype=torch.bool)
    region[0, :3] = True  # 3 of the 12 pixels
    # y = sum over the region of 2*A0 + 1*A1 -> dy/dA^k = w_k inside the region, 0 outside;
    # alpha_k = w_k * 3 / 12; the map = relu(sum_k alpha_k A^k)
    a0, a1 = image[0, 0], -image[0, 0]
    expected = torch.relu(2 * 3 / 12 * a0 + 1 * 3 / 12 * a1)
    cam = grad_cam(model, image, model.features, target_class=0, region=region, normalize=False)
    torch.testing.assert_close(cam[0], expected)
    # class 1: weights (-1, 3)
    expected = torch.relu(-1 * 3 / 12 * a0 + 3 * 3 / 12 * a1)
    cam = grad_cam(model, image, model.features, target_class=1, region=region, normalize=False)
    torch.testing.assert_close(cam[0], expected)
    normalized = grad_cam(model, image, model.features, target_class=1, region=region)
    torch.testing.assert_close(normalized[0], expected / expected.max())
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_upsamples_a_coarse_layer_and_keeps_images_apart():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 2, 1), nn.Upsample(scale_factor=2, mode="bilinear"))
    image = torch.rand(2, 3, 8, 8)
    cam = grad_cam(model, image, model[1], target_class=1)
    assert cam.shape == (2, 8, 8) and bool((cam >= 0).all())
    one = grad_cam(model, image[1:], model[1], target_class=1)
    torch.testing.assert_close(cam[1], one[0])


def test_grad_cam_refuses_bad_arguments():
    model = _Linear()
    image = torch.rand(1, 1, 3, 4)
    with pytest.raises(ValueError, match="target_class"):
        grad_cam(model, image, model.features, target_class=2)
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(model, image, nn.Conv2d(1, 1, 1), target_class=0)
    with pytest.raises(ValueError, match="region"):
        grad_cam(model, image, model.features, 0, region=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        grad_cam(model, image[0], model.features, 0)


class _PixelPlusMean(torch.nn.Module):
    """logits(x) = W image(x) + V mean(image): a local term and an image-wide (ParseNet) term."""

    def __init__(self, w: torch.Tensor, v: torch.Tensor):
        super().__init__()
        self.w, self.v = torch.nn.Parameter(w), torch.nn.Parameter(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = torch.einsum("kc,nchw->nkhw", self.w, x)
        return local + torch.einsum("kc,nc->nk", self.v, x.mean((2, 3)))[..., None, None]


def test_contrast_gradient_share_equals_the_hand_computation():
    torch.manual_seed(0)
    w, v = torch.randn(4, 3), torch.randn(4, 3)
    model = _PixelPlusMean(w, v).train()
    masks = torch.zeros(1, 4, 5, dtype=torch.long)
    masks[0, 1, 1:3] = 1  # 2 pixels of class 1
    masks[0, 2, 3] = 2  # 1 pixel of class 2
    masks[0, 3, :] = 3  # 5 pixels of the region class 3
    image = torch.rand(1, 3, 4, 5)
    share = contrast_gradient_share(model, image, masks, pair=(1, 2), region_classes=(3,))
    # every pixel gets (v1 - v2) * 3 object pixels / 20 pixels; the 3 object pixels also w1 - w2
    spread = ((v[1] - v[2]) * 3 / 20).abs().sum()
    on_object = ((w[1] - w[2]) + (v[1] - v[2]) * 3 / 20).abs().sum()
    expected = 5 * spread / (17 * spread + 3 * on_object)
    assert share == pytest.approx(float(expected), rel=1e-5)
    assert model.training and model.w.grad is None  # mode restored, parameters untouched
    # without the image-wide term the decision sees only the objects' own pixels
    local = _PixelPlusMean(w, torch.zeros(4, 3))
    assert contrast_gradient_share(local, image, masks, (1, 2), (3,)) == 0.0


def test_contrast_gradient_share_rejects_bad_input():
    model = _PixelPlusMean(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="masks"):
        contrast_gradient_share(model, torch.rand(1, 3, 4, 5), torch.zeros(1, 4, 4).long(),
                                (1, 2), (3,))
    with pytest.raises(ValueError, match="classes"):
        contrast_gradient_share(model, torch.rand(1, 3, 4, 5), torch.zeros(1, 4, 5).long(),
                                (1, 7), (3,))


def test_channel_mask_correlation_against_numpy():
    torch.manual_seed(1)
    mask = torch.rand(2, 8, 8) > 0.7
    noisy = mask.float() + 0.5 * torch.rand(2, 8, 8)
    features = torch.stack([mask.float(), -mask.float(), torch.ones(2, 8, 8), noisy], dim=1)
    corr = channel_mask_correlation(features, mask)
    expected = np.corrcoef(noisy.flatten().numpy(), mask.float().flatten().numpy())[0, 1]
    assert corr[:3].tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-6)
    assert corr[3].item() == pytest.approx(expected, rel=1e-5)
    # a coarser map is upsampled to the mask: a 4x4 copy of a block mask still correlates
    block = torch.zeros(1, 8, 8, dtype=torch.bool)
    block[0, :4, :4] = True
    coarse = torch.zeros(1, 1, 4, 4)
    coarse[0, 0, :2, :2] = 1
    assert channel_mask_correlation(coarse, block).item() > 0.8
    with pytest.raises(ValueError, match="same N"):
        channel_mask_correlation(features, mask[:1])
