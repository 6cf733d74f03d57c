"""course_lib.models registry: build by name, list, clear errors, no silent overwrite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from course_lib import models
from course_lib.models import build_model, get_spec, list_models, register_model
from course_lib.models.baseline import BaselineCNN


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Remove whatever a test registers (the model matrix must not see test models)."""
    before = dict(models._REGISTRY)
    yield
    models._REGISTRY.clear()
    models._REGISTRY.update(before)


def test_build_and_list() -> None:
    assert "baseline" in list_models()
    assert list_models(family="baseline") == ["baseline"]
    assert list_models(family="no-such-family") == []
    assert list_models() == sorted(list_models())
    model = build_model("baseline", in_channels=1, num_classes=5, width=4)
    assert isinstance(model, BaselineCNN)
    assert model.eval()(torch.rand(2, 1, 20, 28)).shape == (2, 5, 20, 28)
    spec = get_spec("baseline")
    assert spec.builder is BaselineCNN and spec.family == "baseline" and spec.spatial_dims == 2
    assert spec.test_kwargs == {"width": 4}


def test_every_family_module_is_importable() -> None:
    import importlib

    for module in models.FAMILY_MODULES:
        importlib.import_module(f"course_lib.models.{module}")


def test_unknown_name_lists_registered_models() -> None:
    with pytest.raises(KeyError, match="unknown model 'segformer'.*baseline"):
        build_model("segformer")
    with pytest.raises(KeyError, match="registered models"):
        get_spec("nope")


def test_duplicate_registration_is_an_error(clean_registry: None) -> None:
    @register_model("test_dummy", family="test", paper="-", year=2024)
    class Dummy(nn.Module):
        pass

    assert "test_dummy" in list_models(family="test")
    register_model("test_dummy", family="test", paper="-", year=2024)(Dummy)  # same: fine
    with pytest.raises(ValueError, match="'test_dummy' is already registered"):
        @register_model("test_dummy", family="test", paper="-", year=2024)
        class Other(nn.Module):
            pass
    assert get_spec("test_dummy").builder is Dummy
    with pytest.raises(ValueError, match="already registered"):
        register_model("baseline", family="x", paper="-", year=2024)(Dummy)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="width"):
        build_model("baseline", width=0)
    with pytest.raises(ValueError, match=r"expected input \[N, 3, H, W\]"):
        build_model("baseline")(torch.rand(3, 32, 32))


@pytest.mark.parametrize("name", list_models())
def test_every_model_rejects_zero_classes_clearly(name: str) -> None:
    spec = get_spec(name)
    with pytest.raises(ValueError, match="num_classes"):
        spec.builder(**{**spec.test_kwargs, "num_classes": 0})


@pytest.mark.parametrize("name", list_models())
def test_every_constructor_names_the_contract_arguments(name: str) -> None:
    """(in_channels, num_classes, width, full, ...) as explicit keywords, no **kwargs."""
    import inspect

    parameters = inspect.signature(get_spec(name).builder).parameters
    missing = [a for a in ("in_channels", "num_classes", "width", "full") if a not in parameters]
    assert not missing, f"{name}: the constructor lacks {missing}"
    hidden = [p.name for p in parameters.values()
              if p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    assert not hidden, f"{name}: *args/**kwargs hide the signature ({hidden})"
    assert parameters["full"].default is False


@pytest.mark.parametrize("name", ["baseline", "encoder_decoder", "levelset_fcn"])
def test_a_model_without_a_paper_size_refuses_full(name: str) -> None:
    with pytest.raises(ValueError, match="no paper's network"):
        get_spec(name).builder(**{**get_spec(name).test_kwargs, "full": True})


def test_a_family_is_the_name_of_its_module(clean_registry: None) -> None:
    class Misfiled(nn.Module):
        pass

    Misfiled.__module__ = "course_lib.models.deeplab"
    with pytest.raises(ValueError, match="family 'dilated' must be the name of its module, "
                                         "'deeplab'"):
        register_model("misfiled", family="dilated", paper="-", year=2024)(Misfiled)
    Misfiled.__module__ = "course_lib.models.rcnn.mask_rcnn"  # a family package
    register_model("misfiled", family="rcnn", paper="-", year=2024)(Misfiled)
    assert get_spec("misfiled").family == "rcnn"


def test_models_that_do_not_map_an_image_to_logits_say_why() -> None:
    from course_lib.models import get_spec, list_models

    assert "detection" in get_spec("mask_rcnn").not_an_image_model()
    assert "3D" in get_spec("unet3d").not_an_image_model()
    assert "tokens" in get_spec("cnn_lstm_referring").not_an_image_model()
    image_models = [n for n in list_models() if get_spec(n).not_an_image_model() is None]
    assert {"fcn8s", "deeplabv3", "fusenet", "unet"} <= set(image_models)
