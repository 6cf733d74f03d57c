"""LatentInterpolationExplorer (notebook 04): the slider's t picks G((1 - t) z0 + t z1)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle  # noqa: E402

from course_lib.widgets.gan import LatentInterpolationExplorer  # noqa: E402


def tiny_generator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)),
                         nn.Dropout(0.5))  # dropout: the explorer must draw in eval mode


def test_the_slider_walks_the_line_between_the_two_codes() -> None:
    g = tiny_generator().train()
    z0, z1 = torch.randn(4), torch.randn(4)
    explorer = LatentInterpolationExplorer(g, z0, z1, t=0.0)
    with torch.no_grad():
        g.eval()
        ends = [((g(z[None]) + 1) / 2)[0].permute(1, 2, 0) for z in (z0, (z0 + z1) / 2, z1)]
        g.train()
    torch.testing.assert_close(explorer.image(), ends[0])
    torch.testing.assert_close(explorer.image(0.5), ends[1])
    torch.testing.assert_close(explorer.image(1.0), ends[2])
    assert g.training, "the generator's mode is restored"
    first = bytes(explorer.picture.value)
    assert first.startswith(PNG_MAGIC)
    explorer.t.value = 1.0  # driven as the slider would be
    assert bytes(explorer.picture.value) != first
    assert explorer.to_png() == bytes(explorer.picture.value)
    check_bundle(explorer)


def test_bad_codes_and_t_are_refused() -> None:
    g = tiny_generator()
    with pytest.raises(ValueError, match="latent codes"):
        LatentInterpolationExplorer(g, torch.randn(4), torch.randn(5))
    with pytest.raises(ValueError, match="latent codes"):
        LatentInterpolationExplorer(g, torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="t must be in"):
        LatentInterpolationExplorer(g, torch.randn(4), torch.randn(4), t=1.5)
