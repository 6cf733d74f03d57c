"""ConfidenceExplorer (notebook 14): a discriminator's confidence map and the trusted pixels."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from widget_cases import PNG_MAGIC, check_bundle  # noqa: E402

from course_lib.models import adversarial as A  # noqa: E402
from course_lib.widgets.adversarial import ConfidenceExplorer  # noqa: E402


def _case() -> tuple[torch.Tensor, ...]:
    """Two 8x8 images; image 0's prediction is wrong on its left half, where the confidence
    is low; image 1 is all right and all confident."""
    targets = torch.zeros(2, 8, 8, dtype=torch.long)
    targets[:, 4:] = 1
    predictions = targets.clone()
    predictions[0, :, :4] = 2  # wrong on the left half of image 0
    confidence = torch.full((2, 8, 8), 0.9)
    confidence[0, :, :4] = 0.1
    confidence[0, 0, :4] = 0.3  # a row that is trusted only below T = 0.3
    targets[1, 0, 0] = 255  # a void pixel: never counted
    return torch.rand(2, 3, 8, 8), targets, predictions, confidence


def test_trusted_pixels_follow_the_threshold_and_the_library() -> None:
    images, targets, predictions, confidence = _case()
    explorer = ConfidenceExplorer(images, targets, predictions, confidence, threshold=0.2,
                                  class_names=["a", "b", "c"], palette="shapes")
    assert torch.equal(explorer.trusted(0), A.confidence_mask(confidence[0], 0.2))
    s = explorer.trusted_scores(0)
    # T = 0.2: the right half (32 pixels) and 4 pixels of row 0's left half are trusted
    assert s["trusted"] == pytest.approx(36 / 64)
    assert s["accuracy_trusted"] == pytest.approx(32 / 36)  # the 4 of row 0 are wrong
    assert s["accuracy_untrusted"] == 0.0
    high = explorer.trusted_scores(0, threshold=0.5)
    assert high["trusted"] == 0.5 and high["accuracy_trusted"] == 1.0
    image1 = explorer.trusted_scores(1)
    assert image1["trusted"] == 1.0 and math.isnan(image1["accuracy_untrusted"])
    whole = explorer.trusted_scores(-1, threshold=0.5)
    assert whole["trusted"] == pytest.approx((32 + 63) / 127)  # one void pixel left out

    first_png, first_label = bytes(explorer.picture.value), explorer.label.value
    assert first_png.startswith(PNG_MAGIC) and "T_semi = 0.20" in first_label
    explorer.threshold.value = 0.5  # drive the threshold slider
    assert bytes(explorer.picture.value) != first_png
    assert "50.0% of its pixels trusted" in explorer.label.value
    explorer.index.value = 1  # drive the image slider
    assert "image 1" in explorer.label.value
    check_bundle(explorer)


def test_confidence_explorer_rejects_bad_input() -> None:
    images, targets, predictions, confidence = _case()
    with pytest.raises(ValueError, match="targets"):
        ConfidenceExplorer(images, targets[0], predictions, confidence)
    with pytest.raises(ValueError, match="images"):
        ConfidenceExplorer(images[:1], targets, predictions, confidence)
    with pytest.raises(ValueError, match="confidence must be"):
        ConfidenceExplorer(images, targets, predictions, confidence[:, :4])
    with pytest.raises(ValueError, match="sigmoid"):
        ConfidenceExplorer(images, targets, predictions, confidence * 3)
    with pytest.raises(ValueError, match="threshold"):
        ConfidenceExplorer(images, targets, predictions, confidence, threshold=1.5)
