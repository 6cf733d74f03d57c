"""course_lib.train.predict's options: ``batch_size`` gives the labels of one big batch,
``output="logits"`` the eval-mode scores (a dict's "out"), modes restored, bad options refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.train import predict


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
