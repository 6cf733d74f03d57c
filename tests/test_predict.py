"""course_lib.train.predict's options: ``batch_size`` gives the labels of one big batch,
``output="logits"`` the eval-mode scores (a dict's "out"), modes restored, bad options refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.train import predict, predict_augmented


class WithAux(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.norm(self.conv(x))
        return {"out": out, "aux": -out}


def trained_model() -> nn.Module:
    torch.manual_seed(0)
    model = WithAux()
    model(torch.rand(8, 3, 6, 6) * 3)  # BatchNorm's running statistics move away from 0 / 1
    return model.train()


def test_batches_give_the_labels_of_one_batch_and_logits_are_the_eval_outputs():
    model, x = trained_model(), torch.rand(7, 3, 6, 6)
    whole = predict(model, x)
    for size in (1, 3, 7, 50):
        assert torch.equal(predict(model, x, batch_size=size), whole)
    logits = predict(model, x, batch_size=3, output="logits")
    model.eval()
    with torch.no_grad():
        expected = model(x)["out"]
    model.train()
    assert logits.dtype == torch.float32 and logits.shape == (7, 4, 6, 6)
    torch.testing.assert_close(logits, expected)
    assert torch.equal(logits.argmax(1), whole)
    assert predict(model, x[0], output="logits").shape == (4, 6, 6)
    assert model.training and model.norm.training  # modes restored
    assert not logits.requires_grad


def test_bad_options_are_refused():
    model, x = trained_model(), torch.rand(2, 3, 6, 6)
    with pytest.raises(ValueError, match="output must be one of"):
        predict(model, x, output="probabilities")
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, x, batch_size=0)
    with pytest.raises(ValueError, match="no images"):
        predict(model, x[:0])


# --------------------------------------------------------------------------------------
# predict_augmented: multi-scale + flip test-time augmentation
# --------------------------------------------------------------------------------------


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def lopsided_model() -> nn.Module:
    """A convolution whose kernel is not mirror-symmetric: its logits change under a flip."""
    torch.manual_seed(1)
    return nn.Conv2d(3, 4, 3, padding=1).eval()


def test_one_plain_view_is_predict():
    model, x = lopsided_model(), torch.rand(5, 3, 8, 10)
    labels = predict_augmented(model, x, scales=(1.0,), flip=False)
    assert torch.equal(labels, predict(model, x))
    probabilities = predict_augmented(model, x, scales=(1.0,), flip=False, output="probabilities")
    torch.testing.assert_close(probabilities, predict(model, x, output="logits").softmax(1))


def test_views_are_brought_back_before_they_are_averaged():
    """The oracle, written out: mirrored logits are mirrored back, resized ones resized back."""
    model, x = lopsided_model(), torch.rand(2, 3, 12, 16)

    def probabilities_of(view: torch.Tensor, mirrored: bool) -> torch.Tensor:
        with torch.no_grad():
            logits = model(view.flip(-1) if mirrored else view)
        logits = logits.flip(-1) if mirrored else logits
        return resize(logits, (12, 16)).softmax(1)

    views = [resize(x, size) for size in ((6, 8), (12, 16), (18, 24))]
    expected = sum(probabilities_of(v, m) for v in views for m in (False, True)) / 6
    got = predict_augmented(model, x, scales=(0.5, 1.0, 1.5), output="probabilities")
    torch.testing.assert_close(got, expected)
    assert torch.equal(predict_augmented(model, x, scales=(0.5, 1.0, 1.5)), expected.argmax(1))
    # a mirror-equivariant model (1x1 convolution) gains nothing from the flip
    pointwise = nn.Conv2d(3, 4, 1).eval()
    mirrored_mean = predict_augmented(pointwise, x, scales=(1.0,), output="probabilities")
    torch.testing.assert_close(mirrored_mean, predict(pointwise, x, output="logits").softmax(1))


def test_augmented_prediction_in_chunks_is_the_same():
    model, x = lopsided_model(), torch.rand(7, 3, 8, 10)
    whole = predict_augmented(model, x, output="probabilities")
    for size in (1, 3, 50):
        chunked = predict_augmented(model, x, batch_size=size, output="probabilities")
        torch.testing.assert_close(chunked, whole)
        assert torch.equal(predict_augmented(model, x, batch_size=size), whole.argmax(1))


def test_augmented_prediction_of_one_uint8_image_and_modes_restored():
    model = trained_model()
    image = (torch.rand(3, 9, 7) * 255).to(torch.uint8)
    labels = predict_augmented(model, image)
    assert labels.shape == (9, 7) and labels.dtype == torch.int64
    probabilities = predict_augmented(model, image, output="probabilities", batch_size=1)
    assert probabilities.shape == (4, 9, 7)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(9, 7))
    assert model.training  # predict puts the model back in training mode


@pytest.mark.parametrize("kwargs, message", [
    ({"output": "logits"}, "output must be one of"),
    ({"scales": ()}, "scales must be one or more numbers > 0"),
    ({"scales": (1.0, 0.0)}, "scales must be one or more numbers > 0"),
    ({"batch_size": 0}, "batch_size must be a positive integer or None"),
])
def test_augmented_prediction_refuses_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        predict_augmented(lopsided_model(), torch.rand(1, 3, 8, 8), **kwargs)
    with pytest.raises(ValueError, match=r"images \[N, C, H, W\] or \[C, H, W\], got \(3, 8\)"):
        predict_augmented(lopsided_model(), torch.rand(3, 8))
    with pytest.raises(ValueError, match="no images were given"):
        predict_augmented(lopsided_model(), torch.rand(0, 3, 8, 8))
