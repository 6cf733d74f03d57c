"""evaluating() restores every submodule's mode; on_device() and the loops that use it hand a
model back to its device, also when something raises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.runtime import evaluating, model_device, on_device
from course_lib.train import evaluate, fit, predict


def test_evaluating_restores_each_submodule_mode_after_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    with pytest.raises(RuntimeError), evaluating(model):
        assert not model.training and not model[0].training
        assert not torch.is_grad_enabled()
        model(torch.zeros(1, 3, 8, 8))  # wrong channel count: raises
    assert model.training and model[0].training and not model[1].training
    assert torch.is_grad_enabled()


def test_model_device() -> None:
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2, device="meta")).type == "meta"


class _Tracked(nn.Conv2d):
    """A 1x1 segmentation model (3 channels -> 2 classes) that records every ``.to`` call."""

    def __init__(self) -> None:
        super().__init__(3, 2, 1)
        self.moves: list[str] = []

    def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.moves.append(str(args[0] if args else kwargs["device"]))
        return super().to(*args, **kwargs)


def test_on_device_hands_every_model_back_also_after_an_error() -> None:
    first, second = _Tracked(), _Tracked()
    with pytest.raises(RuntimeError, match="inside"), on_device("cpu", first, second):
        raise RuntimeError("inside")
    assert first.moves == second.moves == ["cpu", "cpu"]  # there, then back home


def test_on_device_puts_the_moved_models_back_when_a_later_move_fails() -> None:
    class Recorded(_Tracked):  # records the move without making it (the CPU is the only device)
        def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.moves.append(str(args[0]))
            return self

    class Unmovable(_Tracked):
        def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("out of memory")

    first = Recorded()
    with pytest.raises(RuntimeError, match="memory"), on_device("meta", first, Unmovable()):
        pass
    assert first.moves == ["meta", "cpu"]


_BATCH = (torch.rand(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8)))
_HANDING_BACK = {
    "fit": lambda m: fit(m, [_BATCH], epochs=1, device="cpu", progress=False),
    "predict": lambda m: predict(m, _BATCH[0], device="cpu"),
    "evaluate": lambda m: evaluate(m, [_BATCH], num_classes=2, device="cpu"),
}


@pytest.mark.parametrize("call", sorted(_HANDING_BACK))
def test_library_loops_hand_the_model_back_to_its_device(call: str) -> None:
    """On a GPU machine a model trained by ``fit`` must be on the CPU again, where the next
    notebook cell calls it on CPU tensors: the loop moves it there and back."""
    model = _Tracked()
    _HANDING_BACK[call](model)
    assert model.moves == ["cpu", "cpu"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_models_trained_on_cuda_come_back_to_the_cpu() -> None:
    from course_lib.models import basics as B

    images = torch.rand(8, 3, 16, 16)
    masks = torch.randint(0, 2, (8, 16, 16))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    fit(model, [(images, masks)], epochs=1, device="cuda", progress=False)
    assert model_device(model).type == "cpu" and model(images).shape == (8, 2, 16, 16)
    assert predict(model, images, device="cuda").shape == (8, 16, 16)
    assert model_device(model).type == "cpu"
    autoencoder = B.ConvAutoencoder(in_channels=3, width=4, bottleneck=4, depth=1)
    B.train_autoencoder(autoencoder, images, epochs=1, device="cuda", progress=False)
    assert autoencoder(images).shape == images.shape
    g = B.DCGANGenerator(latent_dim=8, width=4, image_size=16)
    d = B.DCGANDiscriminator(width=4, image_size=16)
    B.train_gan(g, d, images * 2 - 1, None, epochs=1, batch_size=4, num_samples=2,
                device="cuda", progress=False)
    assert g(torch.randn(2, 8)).shape == (2, 3, 16, 16) and model_device(d).type == "cpu"
