"""Notebook 07's pre-trained SegNet: with vgg_tiny's depths its encoder is the cached
vgg_tiny backbone under other names (same cache file, same weights), fine-tuned in two groups."""

from __future__ import annotations

import pytest
import torch

from course_lib import pretrain
from course_lib.models import build_model
from course_lib.models.backbones import build_backbone

TINY = pretrain.Recipe(images=24, image_size=48, crop=40, steps=3, batch_size=8, lr=3e-3)


# every test writes its caches into its own folder (conftest.own_data_dir)
pytestmark = pytest.mark.usefixtures("own_data_dir")


def _tiny_segnet(width: int) -> torch.nn.Module:
    return build_model("segnet", width=width, depths=(1,) * 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_notebooks_segnet_uses_the_cached_vgg_tiny_file(seed):
    # the file `make data` caches: nothing is pre-trained for SegNet in the CI
    assert (pretrain.cache_path(_tiny_segnet(8).encoder, seed=seed)
            == pretrain.cache_path(build_backbone("vgg_tiny", width=8), seed=seed))


def test_vgg16_depths_are_another_file():
    assert (pretrain.cache_path(build_model("segnet", width=8).encoder, seed=0)
            != pretrain.cache_path(build_backbone("vgg_tiny", width=8), seed=0))


def test_segnet_loads_the_vgg_tiny_weights_in_order():
    vgg = pretrain.pretrained_backbone("vgg_tiny", width=4, seed=0, recipe=TINY, verbose=False)
    model = _tiny_segnet(4)
    report = pretrain.load_pretrained(model.encoder, seed=0, recipe=TINY,
                                      train_if_missing=False, verbose=False)
    assert not report.trained_now
    ours, theirs = model.encoder.state_dict(), vgg.state_dict()
    assert len(ours) == len(theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours.values(), theirs.values(), strict=True))
    model.eval()
    assert model(torch.rand(1, 3, 45, 61)).shape == (1, 12, 45, 61)  # odd sides: ceil pooling


def test_fine_tune_groups_put_the_encoder_alone_at_the_lower_rate():
    model = _tiny_segnet(4)
    decoder_group, encoder_group = pretrain.fine_tune_groups(model, 1e-2, encoder_lr_scale=0.3)
    assert encoder_group["lr"] == pytest.approx(3e-3) and decoder_group["lr"] == 1e-2
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in model.encoder.parameters()}
    assert (len(encoder_group["params"]) + len(decoder_group["params"])
            == len(list(model.parameters())))
