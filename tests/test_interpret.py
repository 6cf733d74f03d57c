"""course_lib.interpret.grad_cam against a network whose gradients are known by hand."""

import pytest
import torch
from torch import nn

from course_lib.interpret import grad_cam


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
