"""Transfer learning helpers (notebook 19): new classifier, re-initialisation, the label curve."""

import pytest
import torch
from torch import nn

from course_lib import compress, transfer
from course_lib.models import build_model


def _unet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("unet", in_channels=3, num_classes=5, width=4)


def test_gray_to_rgb_repeats_the_channel_and_checks_its_input():
    grey = torch.rand(2, 1, 8, 8)
    rgb = transfer.gray_to_rgb(grey)
    assert rgb.shape == (2, 3, 8, 8) and all(torch.equal(rgb[:, c:c + 1], grey) for c in range(3))
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        transfer.gray_to_rgb(torch.rand(2, 3, 8, 8))


def test_new_classifier_keeps_every_other_weight():
    model = _unet()
    tuned = transfer.with_new_classifier(model, 2, seed=1)
    assert tuned.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    assert model.classifier.out_channels == 5  # the original is untouched
    old, new = model.state_dict(), tuned.state_dict()
    assert set(old) == set(new)
    for key in old:
        if key.startswith("classifier."):
            assert old[key].shape != new[key].shape
        else:
            assert torch.equal(old[key], new[key]), key
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        transfer.with_new_classifier(nn.Linear(2, 2), 2)


def test_reinitialised_redraws_every_layer_and_keeps_the_architecture():
    model = _unet()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    norms[0].running_mean.fill_(3.0)  # as if trained
    fresh = transfer.reinitialised(model, seed=1)  # _unet() drew its weights under seed 0
    assert [n for n, _ in fresh.named_parameters()] == [n for n, _ in model.named_parameters()]
    fresh_params = dict(fresh.named_parameters())
    convs = [(n, p) for n, p in model.named_parameters() if p.dim() == 4]
    assert all(not torch.equal(p, fresh_params[n]) for n, p in convs)
    fresh_norms = [m for m in fresh.modules() if isinstance(m, nn.BatchNorm2d)]
    assert torch.equal(fresh_norms[0].running_mean, torch.zeros_like(norms[0].running_mean))
    again = transfer.reinitialised(model, seed=1)
    pairs = zip(again.parameters(), fresh.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_few_label_curve_starts_from_the_pretrained_weights():
    torch.manual_seed(0)
    blocks = (torch.rand(6, 1, 4, 4) > 0.5).float()  # labels in 8 x 8 blocks, shown in channel 0
    labels = nn.functional.interpolate(blocks, scale_factor=8).squeeze(1).long()
    images = torch.rand(6, 3, 32, 32)
    images[:, 0] = 0.2 + 0.6 * labels
    model = build_model("baseline", in_channels=3, num_classes=2, width=4)
    compress.distill(model, None, images, labels, 40, batch_size=6)  # "pre-training"
    curve = transfer.few_label_curve(model, images, labels, images, labels, 2, counts=(2,),
                                     steps=20, batch_size=2, seed=0)
    assert set(curve) == {"pre-trained", "from scratch"}
    assert all(set(start) == {2} for start in curve.values())
    # measured 0.91 vs 0.42: only the pre-trained features know the task after 20 steps
    assert curve["pre-trained"][2]["miou"] > curve["from scratch"][2]["miou"] + 0.2
    with pytest.raises(ValueError, match="only 6 given"):
        transfer.few_label_curve(model, images, labels, images, labels, 2, counts=(8,), steps=1)
