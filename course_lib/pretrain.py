"""Pre-trained backbones, as the papers had them: the shapes world plays ImageNet.

Nearly every network of the survey starts from an encoder pre-trained on ImageNet
classification (FCN and DeepLab v1 from VGG16, PSPNet and DeepLab v2/v3 from ResNet,
SegNet from VGG16, LinkNet from ResNet-18). Trained from scratch for a couple of minutes on
a CPU, the course's small models learn the large stuff regions and miss the objects. This
module does what the papers did, on the course's own data:

* **the task** (:mod:`course_lib.pretrain_task`) — two classification problems, no masks in
  the loss:

  - *objects*: each object of a scene is classified (disk, square, ..., car, boat) from the
    features at its centre, read from every stage of the encoder (the label says what the
    object is and where its centre lies — a box-classification task, as in detection
    pre-training — never which pixels it covers);
  - *scene*: which of the twelve classes appear in the image (multi-label, from the
    global average of the deepest feature, as an ImageNet classifier reads its image);

* **the recipe** — :class:`Recipe`, from the profile's ``pretrain_*`` fields
  (:meth:`Recipe.for_encoder`): the same scenes for every encoder; the ResNet backbones
  have their own steps and peak learning rate (``pretrain_resnet_steps``,
  ``pretrain_resnet_lr``). Measured in ``standard``, seed 0, object accuracy on held-out
  scenes:

  - vgg_tiny-w8: 71 % (2400 steps, lr 3e-3), 76 % (4800, 3e-3), 79 % (4800, 1e-2, the
    recipe), 81 % (9600, 1e-2: twice the time for two points). Notebook 05's FCN-4s found
    more objects from the better encoders: thing-class IoU 0.313 / 0.372 / 0.379 for the
    first three;
  - resnet_tiny-w8 (2400 steps): 45 / 56 / 59 / 61 % at lr 1e-3 / 3e-3 / 1e-2 (the recipe)
    / 3e-2; notebook 09's FPN from it reached a thing-class IoU of 0.133 / 0.177 / 0.155 at
    3e-3 / 1e-2 / 3e-2. 4800 steps named 65 % but found no more objects (09's FPN 0.189,
    11's DeepLab v3+ 0.131 against 0.135), so the ResNets keep 2400;
* **the data** — scenes of a world of its own (world seed
  ``pretrain_task.PRETRAIN_WORLD + seed``), so the images a notebook trains and validates on
  are never seen in pre-training; the world's ``val`` split measures the pre-trained features
  on held-out scenes;
* **the cache** — weights are trained once and kept under ``config.data_dir()/"pretrained"``
  in files named after the encoder's configuration, the pre-training recipe and the seed
  (:func:`cache_path`), written atomically and loaded with ``weights_only=True``. A notebook
  that finds none trains them on the fly and says so; :mod:`course_lib.encoders`
  (``make data``, ``make pretrain``) builds the course's backbones ahead of time.

Which encoders: the backbones of :func:`course_lib.models.backbones.build_backbone`
(VGG- and ResNet-style, any output stride: dilation does not change a weight's shape, so a
dilated DeepLab backbone loads the weights of the stride-32 network, exactly as DeepLab
loaded ImageNet's), SegNet's and DeconvNet's VGG encoders (the same convolutions in the
same order as a VGG backbone), and any other module whose forward gives a feature map or a
dict of them (e.g. the encoder of notebook 03's encoder-decoder), pre-trained as it is.

Use::

    from course_lib import pretrain
    backbone = pretrain.pretrained_backbone("resnet_tiny", width=8, output_stride=8)
    pretrain.load_pretrained(model.backbone)  # into a model built from scratch
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import config
from .losses import AUX_WEIGHT
from .models.backbones import (
    RESNET_DEPTHS,
    VGG_DEPTHS,
    Bottleneck,
    ResNetBackbone,
    VGGBackbone,
    build_backbone,
)
from .pretrain_task import (
    Classifiers,
    measure,
    object_table,
    objects_of,
    scene_labels,
    scene_tensors,
)
from .runtime import on_device
from .train import History, fit, load_checkpoint, save_checkpoint

RECIPE_VERSION = 1  # bump when the pre-training task changes: it invalidates the cache
ENCODER_LR_SCALE = 0.3  # fine-tuning: the pre-trained encoder moves at 0.3x the new layers' rate


# --------------------------------------------------------------------------------------------
# The recipe (sizes come from the profile's "pre-training" block)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How an encoder is pre-trained; every field enters the cache key."""

    images: int  # pre-training scenes
    image_size: int  # their side
    crop: int  # side of the random crop each step trains on (objects keep their size)
    steps: int  # optimiser steps
    batch_size: int  # scenes per step
    lr: float  # peak learning rate of the one-cycle schedule (AdamW)

    def __post_init__(self) -> None:
        if min(self.images, self.steps, self.batch_size) < 1 or self.lr <= 0:
            raise ValueError(f"images, steps, batch_size and lr must be positive, got {self}")
        if not 16 <= self.crop <= self.image_size:
            raise ValueError(f"crop must be between 16 and image_size ({self.image_size}) "
                             f"pixels, got {self.crop}")

    @classmethod
    def from_profile(cls, profile: config.Profile | None = None, resnet: bool = False) -> Recipe:
        """The recipe of ``profile`` (default: the active one); ``resnet=True``: the one of its
        ResNet backbones (the same scenes, with ``pretrain_resnet_steps`` steps at a peak
        learning rate of ``pretrain_resnet_lr``)."""
        p = profile or config.get_profile()
        return cls(p.pretrain_train, p.pretrain_size, p.pretrain_crop,
                   p.pretrain_resnet_steps if resnet else p.pretrain_steps, p.pretrain_batch,
                   p.pretrain_resnet_lr if resnet else p.pretrain_lr)

    @classmethod
    def for_encoder(cls, module: nn.Module, profile: config.Profile | None = None) -> Recipe:
        """The recipe of ``profile`` for ``module``: the ResNet one for a
        :class:`~course_lib.models.backbones.ResNetBackbone` (any depth, any output stride),
        the base one for every other encoder."""
        return cls.from_profile(profile, resnet=isinstance(module, ResNetBackbone))

    def key(self) -> str:
        """Eight hex digits naming this recipe (and :data:`RECIPE_VERSION`) in file names."""
        text = json.dumps({**asdict(self), "version": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Report:
    """What :func:`load_pretrained` did: where the weights came from and how good they are."""

    path: Path  # the cache file
    trained_now: bool  # True when the weights were missing and were pre-trained just now
    seconds: float  # time the pre-training took (when it ran, on the machine that ran it)
    object_accuracy: float  # held-out scenes: objects classified right (chance 1/8)
    scene_f1: float  # held-out scenes: F1 of "which classes appear"


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _crop(images: torch.Tensor, labels: torch.Tensor, where: torch.Tensor, label: torch.Tensor,
          centre: torch.Tensor, side: int, generator: torch.Generator):
    """A random ``side`` x ``side`` window of a batch (one offset for all its scenes) and the
    objects whose centre lies inside it."""
    top, left = (int(v) for v in torch.randint(0, images.shape[-1] - side + 1, (2,),
                                                generator=generator))
    centre = centre - torch.tensor([top, left], dtype=centre.dtype)
    inside = ((centre >= 1) & (centre <= side - 1)).all(1)
    return (images[..., top:top + side, left:left + side],
            labels[..., top:top + side, left:left + side],
            where[inside], label[inside], centre[inside])


def pretrain(encoder: nn.Module, recipe: Recipe | None = None, seed: int | None = None,
             in_channels: int = 3, progress: bool = True) -> dict[str, float]:
    """Pre-train ``encoder`` in place on the pre-training world; return held-out scores and
    the seconds it took.

    Each step takes ``batch_size`` scenes, one random ``crop`` x ``crop`` window of them
    (objects keep their size in pixels; a smaller window is a cheaper step) and mirrors them
    at random; the loss is the cross-entropy of the objects whose centre lies in the window
    plus the binary cross-entropy of the classes the window shows. AdamW with a one-cycle
    learning rate (warm-up 10 %, then cosine to zero).
    """
    from tqdm.auto import tqdm

    recipe = recipe or Recipe.for_encoder(encoder)
    seed = config.course_seed() if seed is None else seed
    device = config.get_device()
    images, labels, instances = scene_tensors(recipe.images, recipe.image_size, seed)
    objects = object_table(labels, instances)
    config.seed_everything(seed)
    net = Classifiers(encoder, in_channels)
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
    steps = config.cap_steps(recipe.steps)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=steps,
                                                   pct_start=0.1)
    order = torch.Generator().manual_seed(seed)
    batch = min(recipe.batch_size, recipe.images)
    started = time.perf_counter()
    with on_device(device, net):
        net.train()
        for _ in tqdm(range(steps), desc="pre-train", disable=not progress, unit="step"):
            idx = torch.randperm(recipe.images, generator=order)[:batch]
            where, label, centre = objects_of(idx, objects, recipe.images)
            x, y = images[idx], labels[idx]
            if torch.rand((), generator=order) < 0.5:  # mirror the scenes (and the centres)
                x, y = x.flip(-1), y.flip(-1)
                centre = torch.stack([centre[:, 0], recipe.image_size - centre[:, 1]], 1)
            x, y, where, label, centre = _crop(x, y, where, label, centre, recipe.crop, order)
            obj, scene = net(x.to(device).float() / 255, where.to(device), centre.to(device))
            loss = F.binary_cross_entropy_with_logits(scene, scene_labels(y).to(device))
            if len(label):  # (a window without any object centre asks about none)
                loss = loss + F.cross_entropy(obj, label.to(device))
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"pre-training loss became {value}: lower the lr "
                                         f"({recipe.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        seconds = time.perf_counter() - started
        held_out = scene_tensors(max(recipe.images // 8, 16), recipe.image_size, seed, split="val")
        return {**measure(net, *held_out), "seconds": seconds}


# --------------------------------------------------------------------------------------------
# Which network is pre-trained for a given module, and where its weights live
# --------------------------------------------------------------------------------------------
def _norm_of(module: nn.Module) -> str | None:
    kinds = {type(m) for m in module.modules()}
    if nn.BatchNorm2d in kinds:
        return "bn"
    return "gn" if nn.GroupNorm in kinds else None


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _vgg_like(stages: nn.ModuleList) -> VGGBackbone | None:
    """The VGG backbone with the same convolutions as an encoder given as five stages of
    conv-norm-ReLU layers (SegNet, DeconvNet), or None if ``stages`` is not one."""
    if len(stages) != 5 or any(not _convs(stage) for stage in stages):
        return None
    first = _convs(stages[0])[0]
    twin = VGGBackbone(first.in_channels, tuple(len(_convs(s)) for s in stages),
                       first.out_channels, 32, _norm_of(stages))
    return twin if _shapes(twin) == _shapes(stages) else None


def _shapes(module: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in module.state_dict().values()]


def _trainable_twin(module: nn.Module, seed: int = 0) -> tuple[nn.Module, str, int]:
    """``(network to pre-train, its name for file names, its input channels)``.

    The twin has the module's weights (same shapes, same order) and a forward that gives
    features: a stride-32 copy of a (possibly dilated) VGG/ResNet backbone, a VGG backbone
    for SegNet's and DeconvNet's encoders, or a copy of any other encoder; its initial
    weights depend on ``seed`` only, never on the module's.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _twin(module)


def _twin(module: nn.Module) -> tuple[nn.Module, str, int]:
    if isinstance(module, VGGBackbone):
        stages = [module.stage1, module.stage2, module.stage3, module.stage4, module.stage5]
        depths = tuple(len(_convs(s)) for s in stages)
        width = _convs(module.stage1)[0].out_channels
        twin: nn.Module = VGGBackbone(module.in_channels, depths, width, 32, _norm_of(module))
        named = {v: k for k, v in VGG_DEPTHS.items()}.get(depths, "vgg" + "".join(map(str, depths)))
        name = f"{named}-w{width}"
    elif isinstance(module, ResNetBackbone):
        layers = [module.layer1, module.layer2, module.layer3, module.layer4]
        block = "bottleneck" if isinstance(module.layer1[0], Bottleneck) else "basic"
        depths = tuple(len(layer) for layer in layers)
        width = module.conv1.out_channels
        twin = ResNetBackbone(module.in_channels, block, depths, width, 32, _norm_of(module))
        named = {v: k for k, v in RESNET_DEPTHS.items()}.get(
            (block, depths), f"resnet-{block}" + "".join(map(str, depths)))
        name = f"{named}-w{width}"
    elif isinstance(module, nn.ModuleList) and (vgg := _vgg_like(module)) is not None:
        return _twin(vgg)
    else:
        convs = _convs(module)
        if not convs:
            raise ValueError(f"cannot pre-train a {type(module).__name__}: it has no "
                             "convolution (give a backbone or an encoder)")
        twin = copy.deepcopy(module)
        for layer in twin.modules():  # a fresh start that depends on the seed only
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        name = f"{type(module).__name__.lower()}-w{convs[0].out_channels}"
        return twin, name, convs[0].in_channels
    if _shapes(twin) != _shapes(module):  # e.g. a backbone changed after it was built
        raise ValueError(f"cannot pre-train this {type(module).__name__}: its weights do not "
                         "match the backbone it seems to be")
    norm = _norm_of(module) or "nonorm"
    in_ch = module.in_channels
    return twin, f"{name}-{norm}{'' if in_ch == 3 else f'-in{in_ch}'}", in_ch


def fingerprint(module: nn.Module) -> str:
    """Eight hex digits from the names and shapes of the module's weights (its configuration)."""
    text = json.dumps([(k, list(v.shape)) for k, v in module.state_dict().items()])
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def cache_dir() -> Path:
    """Where pre-trained weights live: ``config.data_dir()/"pretrained"`` (git-ignored)."""
    return config.data_dir() / "pretrained"


def cache_path(module: nn.Module, recipe: Recipe | None = None, seed: int | None = None) -> Path:
    """The cache file of ``module``'s pre-trained weights:
    ``<name>-<weights fingerprint>-r<recipe key>-s<seed>.pt``, e.g.
    ``resnet_tiny-w8-bn-1a2b3c4d-r5e6f7a8b-s0.pt``."""
    recipe = recipe or Recipe.for_encoder(module)
    seed = config.course_seed() if seed is None else seed
    twin, name, _ = _trainable_twin(module, seed)
    return cache_dir() / f"{name}-{fingerprint(twin)}-r{recipe.key()}-s{seed}.pt"


def _copy_in_order(dst: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Load ``weights`` into ``dst`` by name when the names match, else position by position
    (SegNet's encoder and the VGG backbone hold the same tensors under other names)."""
    ours = dst.state_dict()
    if list(ours) == list(weights):
        dst.load_state_dict(weights)
        return
    theirs = list(weights.values())
    if [tuple(t.shape) for t in ours.values()] != [tuple(t.shape) for t in theirs]:
        raise ValueError(f"the pre-trained weights do not fit this {type(dst).__name__}")
    dst.load_state_dict(OrderedDict(zip(ours, theirs, strict=True)))


def load_pretrained(module: nn.Module, seed: int | None = None, recipe: Recipe | None = None,
                    train_if_missing: bool = True, verbose: bool = True) -> Report:
    """Load pre-trained weights into ``module`` (in place); pre-train them first if the cache
    has none.

    ``module``: a backbone of :func:`~course_lib.models.backbones.build_backbone` (any output
    stride; e.g. ``model.backbone``, LinkNet's ``model.encoder``), SegNet's or DeconvNet's
    ``model.encoder``, or any encoder returning a feature map or a dict of them. ``seed``
    defaults to ``COURSE_SEED``; ``recipe`` to the active profile's for this module
    (:meth:`Recipe.for_encoder`). With
    ``train_if_missing=False`` a missing cache raises ``FileNotFoundError``.
    """
    recipe = recipe or Recipe.for_encoder(module)
    seed = config.course_seed() if seed is None else seed
    path = cache_path(module, recipe, seed)
    twin, name, in_channels = _trainable_twin(module, seed)
    trained_now = not path.is_file()
    if trained_now:
        if not train_if_missing:
            raise FileNotFoundError(f"no pre-trained weights for {name} (seed {seed}) at {path}; "
                                    "run `make pretrain` or pass train_if_missing=True")
        if verbose:
            print(f"No pre-trained {name} (seed {seed}) in {cache_dir()}: pre-training it now "
                  f"({recipe.steps} steps on {recipe.images} scenes; `make pretrain` does this "
                  "once ahead of time).")
        scores = pretrain(twin, recipe, seed, in_channels, progress=verbose)
        save_checkpoint(path, twin, name=name, seed=seed, recipe=asdict(recipe),
                        recipe_version=RECIPE_VERSION, **scores)
        checkpoint = load_checkpoint(path, twin)
    else:
        checkpoint = load_checkpoint(path, twin)  # weights_only=True
    _copy_in_order(module, twin.state_dict())
    report = Report(path, trained_now, float(checkpoint["seconds"]),
                    float(checkpoint["object_accuracy"]), float(checkpoint["scene_f1"]))
    if verbose:
        how = "pre-trained now in" if trained_now else "loaded (pre-trained in"
        print(f"{name}: {how} {report.seconds:.0f} s{'' if trained_now else ')'}; held-out "
              f"objects classified right {report.object_accuracy:.0%} (chance 12.5 %), "
              f"scene F1 {report.scene_f1:.2f}")
    return report


def _encoder_of(model: nn.Module) -> nn.Module:
    encoder = getattr(model, "backbone", None) or getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"{type(model).__name__} has no .backbone or .encoder to fine-tune")
    return encoder


def fine_tune_groups(model: nn.Module, lr: float,
                     encoder_lr_scale: float = ENCODER_LR_SCALE) -> list[dict[str, object]]:
    """Optimiser parameter groups for fine-tuning: the pre-trained encoder (``model.backbone``
    or ``model.encoder``) at ``encoder_lr_scale`` x ``lr``, everything else at ``lr``.

    ``torch.optim.AdamW(fine_tune_groups(model, 3e-3), weight_decay=1e-4)``: the new layers
    learn fast, the pre-trained ones move less (their features are worth keeping).
    """
    encoder = _encoder_of(model)  # model.backbone, else model.encoder
    mine = {id(p) for p in encoder.parameters()}
    return [{"params": [p for p in model.parameters() if id(p) not in mine], "lr": lr},
            {"params": list(encoder.parameters()), "lr": lr * encoder_lr_scale}]


def fine_tune(model: nn.Module, loader: Iterable, loss_fn: Callable[..., torch.Tensor], lr: float,
              epochs: int, encoder_lr_scale: float = ENCODER_LR_SCALE, weight_decay: float = 1e-4,
              progress: bool = True, verbose: bool = False, aux_weight: float = AUX_WEIGHT
              ) -> History:
    """Fine-tune ``model`` as the papers did: its encoder (``model.backbone`` or
    ``model.encoder``) starts from the cached pre-trained weights (:func:`load_pretrained`,
    which says where they come from when ``verbose``), the new layers from their random
    initialisation; AdamW over :func:`fine_tune_groups` (the encoder at ``encoder_lr_scale`` x
    ``lr``), :func:`~course_lib.train.fit` for ``epochs`` (``aux_weight``: the weight of an
    auxiliary head's loss, as in ``fit``)."""
    load_pretrained(_encoder_of(model), verbose=verbose)
    optimizer = torch.optim.AdamW(fine_tune_groups(model, lr, encoder_lr_scale),
                                  weight_decay=weight_decay)
    return fit(model, loader, loss_fn=loss_fn, optimizer=optimizer, epochs=epochs,
               progress=progress, aux_weight=aux_weight)


def pretrained_backbone(name: str = "vgg_tiny", in_channels: int = 3, width: int | None = None,
                        output_stride: int = 32, norm: str | None = "bn",
                        seed: int | None = None, recipe: Recipe | None = None,
                        verbose: bool = True) -> nn.Module:
    """:func:`~course_lib.models.backbones.build_backbone` with pre-trained weights loaded
    (pre-trained now if the cache has none); ``seed``, ``recipe`` as :func:`load_pretrained`."""
    backbone = build_backbone(name, in_channels, width, output_stride, norm)
    load_pretrained(backbone, seed, recipe, verbose=verbose)
    return backbone
