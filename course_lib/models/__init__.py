"""Model registry: every segmentation model of the course is built by name.

Each family module registers its classes with :func:`register_model`; importing this
package imports every family so that :func:`list_models` sees them all. The registry also
keeps what the shared test matrix (``tests/test_model_matrix.py``) needs to know about a
model: its survey family, year, whether it takes 2D or 3D input, which input sizes it
accepts, and a tiny configuration for fast tests.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model class."""

    name: str
    builder: Callable[..., nn.Module]
    family: str  # the name of its module (= the survey family), e.g. "fcn", "encoder_decoder"
    paper: str  # short citation, e.g. "Long et al., CVPR 2015"
    year: int
    spatial_dims: int = 2  # 3 for volumetric models (input [N, C, D, H, W])
    size_multiple: int = 1  # input sides must be a multiple of this (else ValueError)
    test_kwargs: dict[str, Any] = field(default_factory=dict)  # tiny config for tests
    # "logits" → tensor [N, K, H, W]; "dict" → {"out": ..., ...}; "detections" → torchvision's
    # detection contract: forward(list of [C, H, W] images[, list of target dicts]) returns a
    # dict of losses in training and a list of {"boxes", "labels", "scores", "masks"} in eval.
    output: str = "logits"
    full_params: int | None = None  # parameter count of the full=True model (tested on meta)

    def not_an_image_model(self) -> str | None:
        """Why this model does not map one image batch ``[N, C, H, W]`` to class scores
        (``None`` when it does): the zoo and ``bench --all`` list such models as skipped."""
        if self.output == "detections":
            return ("detection contract (lists of boxes and instance masks, not a logit map): "
                    "notebook 10 scores it with mask AP")
        if self.spatial_dims != 2:
            return f"{self.spatial_dims}D model (volumes [N, C, D, H, W]): notebook 08"
        params = list(inspect.signature(self.builder.forward).parameters.values())[1:]
        extra = [p.name for p in params[1:] if p.default is inspect.Parameter.empty]
        if extra:
            return f"forward needs more than the image ({', '.join(extra)})"
        return None


_REGISTRY: dict[str, ModelSpec] = {}

# Family modules imported by list_models()/build_model(); each later issue appends its own.
FAMILY_MODULES: tuple[str, ...] = ("baseline", "basics", "fcn", "crf", "multiscale", "deeplab",
                                   "encoder_decoder", "unet", "rnn", "attention",
                                   "adversarial", "rcnn", "active_contour", "panoptic",
                                   "other", "rgbd", "ternausnet")


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    year: int,
    spatial_dims: int = 2,
    size_multiple: int = 1,
    test_kwargs: dict[str, Any] | None = None,
    output: str = "logits",
    full_params: int | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a model to the registry under ``name``.

    ``family`` is the name of the model's module (``"deeplab"`` for
    ``course_lib/models/deeplab.py``, ``"rcnn"`` for the package ``models/rcnn/``), so a
    family can be found from its name and its code from its family.
    """
    if output not in ("logits", "dict", "detections"):
        raise ValueError(f"output must be 'logits', 'dict' or 'detections', got {output!r}")

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].builder is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        if cls.__module__.startswith(f"{__name__}."):  # a family module of the course
            module = cls.__module__.removeprefix(f"{__name__}.").split(".")[0]
            if family != module:
                raise ValueError(f"model {name!r}: family {family!r} must be the name of its "
                                 f"module, {module!r}")
        _REGISTRY[name] = ModelSpec(
            name=name, builder=cls, family=family, paper=paper, year=year,
            spatial_dims=spatial_dims, size_multiple=size_multiple,
            test_kwargs=dict(test_kwargs or {}), output=output, full_params=full_params,
        )
        return cls

    return decorate


def _import_families() -> None:
    for module in FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def list_models(family: str | None = None) -> list[str]:
    """Names of all registered models (optionally of one survey family), sorted."""
    _import_families()
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    _import_families()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_model(name: str, **cfg: Any) -> nn.Module:
    """Build a registered model: ``build_model("tiny_segnet", in_channels=3, num_classes=5)``."""
    return get_spec(name).builder(**cfg)


__all__ = ["ModelSpec", "register_model", "build_model", "list_models", "get_spec"]
