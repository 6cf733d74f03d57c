"""FPNLevelExplorer (notebook 09): an FPN's pyramid levels and their shares of the logit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle, tiny_model  # noqa: E402

from course_lib.models import build_model, get_spec  # noqa: E402
from course_lib.train import predict  # noqa: E402
from course_lib.widgets.multiscale import FPNLevelExplorer  # noqa: E402


@pytest.fixture(scope="module")
def fpn_and_images() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("fpn", **{**get_spec("fpn").test_kwargs, "num_classes": 5})
    return model, torch.rand(2, 3, 64, 64)


def test_sliders_redraw_the_levels(fpn_and_images) -> None:
    model, images = fpn_and_images
    model.train()
    explorer = FPNLevelExplorer(model, images, predict(model, images))
    assert model.training, "the model's mode is restored"
    assert explorer.level.max == 3 and explorer.index.max == 1
    first = bytes(explorer.picture.value)
    assert first.startswith(PNG_MAGIC)
    explorer.level.value = 2  # driven as the sliders would be
    second = bytes(explorer.picture.value)
    assert second != first
    explorer.index.value = 1
    assert bytes(explorer.picture.value) not in (first, second)
    check_bundle(explorer)
    titles = [ax.get_title() for ax in explorer.figure().axes]
    assert "P4's share" in titles and "image 1" in titles


def test_bad_arguments_are_refused(fpn_and_images) -> None:
    model, images = fpn_and_images
    labels = torch.zeros(2, 64, 64, dtype=torch.long)
    with pytest.raises(TypeError, match="needs an FPN, got Sequential"):
        FPNLevelExplorer(tiny_model(), images, labels)
    with pytest.raises(ValueError, match="predictions must be"):
        FPNLevelExplorer(model, images, labels[:1])
    with pytest.raises(ValueError, match="images must be"):
        FPNLevelExplorer(model, images[0], labels)
