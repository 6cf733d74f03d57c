"""Profiles, device choice, mixed precision and seeding: the one place that holds every size.

A *profile* decides how big everything is, so the same notebook runs in seconds under
tests (``quick``), in minutes on a 2-core laptop (``standard``, the default) and at
paper-like sizes on a GPU (``full``). Choose it with the ``COURSE_PROFILE`` environment
variable or :func:`set_profile`; notebooks read sizes with :func:`get_profile`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import platform
import random
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from .machine import banner_threads

ENV_VAR = "COURSE_PROFILE"
DEFAULT_PROFILE = "standard"
DATA_DIR_VAR = "COURSE_DATA_DIR"
SEED_VAR = "COURSE_SEED"  # the seed of every experiment; enforced lessons hold for 0, 1 and 2
SMOKE_VAR = "COURSE_SMOKE"  # "1": every training loop stops after SMOKE_STEPS steps
SMOKE_STEPS = 2  # optimiser steps of each training loop, and batches of each evaluation
# A smoke run also shrinks the data: at most this many training / validation items per set
# (validation: SMOKE_STEPS batches of SMOKE_BATCH), so a paper-size notebook runs in seconds.
SMOKE_TRAIN = 8
SMOKE_BATCH = 2
SMOKE_VAL = SMOKE_STEPS * SMOKE_BATCH
IGNORE_INDEX = 255  # label of "void" pixels, dropped by losses and metrics (as in VOC)


def check_ignore_index(num_classes: int, ignore_index: int | None) -> None:
    """Refuse the default ignore index 255 when it is also a class (``num_classes > 255``):
    its pixels would be dropped from the loss or the score without a word."""
    if ignore_index == IGNORE_INDEX and num_classes > IGNORE_INDEX:
        raise ValueError(
            f"num_classes={num_classes} makes {IGNORE_INDEX} a class, but ignore_index="
            f"{IGNORE_INDEX} would drop its pixels: pass ignore_index=None (every label is a "
            f"class) or a label outside [0, {num_classes}) such as -100"
        )

T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """Every size the course uses. Add a field here rather than a literal in a notebook.

    Name a new field by what it counts, so that smoke runs (:func:`smoke_profile`) cap it:
    ``*epochs`` (1 in a smoke run), ``*steps`` (:data:`SMOKE_STEPS`), ``*_train`` (at most
    :data:`SMOKE_TRAIN` items), ``*_val`` / ``*_samples`` (at most :data:`SMOKE_VAL`).
    Image sizes and widths are never capped: the smoke run checks the real configuration.
    """

    name: str
    image_size: int  # side of the square shapes-world images
    num_train: int  # training images per experiment
    num_val: int  # validation images per experiment
    batch_size: int
    epochs: int
    width: int  # base channel width of the models (doubles per stage)
    lr: float
    num_workers: int  # DataLoader workers
    classic_samples: int  # images scored by the classic (non-learned) methods
    bench_repeats: int  # timed repetitions in benchmarks (median is reported)
    # Notebooks 01-04 (survey section 2): classification crops, sequences, GANs.
    crop_size: int = 32  # side of the single-object crops (LeNet, GANs)
    seq_len: int = 60  # length of the long-range recall sequences (RNN vs LSTM)
    seq_steps: int = 300  # optimiser steps for each recurrent model
    gan_epochs: int = 15  # passes over the crops when training a GAN
    # Notebooks 00 and 18: a short training run on freshly generated images.
    demo_steps: int = 300  # optimiser steps of the short baseline training demos
    # Notebook 05: FCN-32s from the pre-trained VGG, then each fine-tuning stage (FCN-16s/8s/4s,
    # ParseNet); standard: batch profile.batch_size // 2 in the default world.
    fcn_epochs: int = 4  # stage 1: FCN-32s from the pre-trained VGG (course_lib.pretrain)
    fcn_finetune_epochs: int = 6  # stage 2: each model started from the stage-1 FCN-32s
    context_size: int = 160  # notebook 05: 'context'-variant images (object far from road/water)
    context_train: int = 128  # notebook 05: training images of the context experiment
    # Notebook 08 (medical): few microscopy images, and small 3D volumes.
    medical_size: int = 64  # side of the microscopy-variant images
    medical_train: int = 10  # training images of the few-images U-Net lessons
    medical_steps: int = 200  # optimiser steps of each 2D U-Net run
    volume_size: int = 16  # side of the 3D volumes (variant "volume"; a multiple of 8; 16 leaves
    # room for V-Net beside the three 3D U-Net runs in `standard`)
    volume_train: int = 16  # training volumes
    volume_steps: int = 150  # optimiser steps of each 3D run
    # Notebook 11 (DeepLab): epochs of each of its seven trainings (from the pre-trained encoders).
    deeplab_epochs: int = 4
    # Notebook 03: epochs of its three segmentation trainings (encoder-decoder, U-Net and
    # TernausNet: the same budget, on half-size scenes; standard: 10 on the 512 images)
    encoder_decoder_epochs: int = 10
    # Notebook 07 (DeconvNet, SegNet, LinkNet, HRNet): epochs of each training, same budget
    # (standard: 3 on the 512 images, for four trainings in the 3-minute budget).
    encdec_epochs: int = 3
    # Notebook 09 (FPN, PSPNet): epochs of each of its three trainings from pre-trained
    # encoders (standard: batch profile.batch_size // 2), and of each fine-tuning on the
    # context world, whose side and training images are its own (standard: smaller than
    # notebook 05's, for three fine-tunings in the 3-minute budget).
    multiscale_epochs: int = 8
    multiscale_context_epochs: int = 6
    multiscale_context_size: int = 160  # side of the context-world images
    multiscale_context_train: int = 128  # context-world training images
    multiscale_norm_epochs: int = 8  # the stride-4 head with GroupNorm / BatchNorm, each
    # Notebook 12 (RNN models): ReSeg vs the same CNN on the 'context' world, and the
    # referring-expression model (CNN + LSTM) on shapes-world scenes with expressions.
    rnn_size: int = 64  # side of the context-world images of the ReSeg lesson
    rnn_train: int = 128  # training images of ReSeg and its CNN twin
    rnn_val: int = 64  # validation images of the ReSeg lesson
    rnn_epochs: int = 25  # epochs of ReSeg and of its CNN twin (same budget)
    rnn_batch: int = 8  # images per step (8, not 16: twice the steps for the same work)
    referring_size: int = 64  # side of the scenes of the referring-expression lesson
    referring_train: int = 400  # training scenes (several expressions each)
    referring_val: int = 200  # validation scenes (about 2 expressions each)
    referring_epochs: int = 14  # epochs of the CNN + LSTM referring model (on the RGB pixels)
    referring_width: int = 8  # base width of its VGG trunk (trained from scratch)
    referring_batch: int = 8  # expressions per step
    # Notebook 13 (attention): attention to scale on the default world; on the 'context' world
    # (context_size, context_train) one dilated FCN whose frozen features all heads train on.
    attention_epochs: int = 6  # attention to scale, from scratch (with extra supervision)
    attention_backbone_epochs: int = 8  # the shared dilated FCN (backbone + FCN head)
    attention_head_epochs: int = 10  # each head on the cached features (FCN, DANet, CCNet, OCR)
    attention_cost_side: int = 33  # feature-map side of the cost lesson (and 2 * side - 1)
    # Notebook 10 (R-CNN): Mask R-CNN, PANet and a semantic FPN on the touching world
    # (course_lib.data.instances), then Mask R-CNN fine-tuned on 15 Penn-Fudan images.
    rcnn_size: int = 64  # side of the touching-world images
    rcnn_train: int = 256  # training images
    rcnn_val: int = 48  # validation images
    rcnn_steps: int = 200  # optimiser steps of Mask R-CNN
    rcnn_batch: int = 8  # images per step
    rcnn_lr: float = 2e-3  # AdamW learning rate of the detectors
    rcnn_semantic_steps: int = 150  # optimiser steps of the semantic FPN baseline
    rcnn_pennfudan_side: int = 128  # shorter side of the Penn-Fudan images
    rcnn_pennfudan_steps: int = 45  # fine-tuning steps (4 images) on 15 Penn-Fudan images
    rcnn_panet_steps: int = 50  # steps of each twin of PANet vs FPN (smaller heads, same budget)
    # Notebook 15 (active contours): Chan-Vese on shapes-world scenes (flat, textured,
    # microscopy), and four small FCN trainings (cross-entropy, + the active-contour loss,
    # the unsupervised Mumford-Shah loss, the FCN under the level-set layer) of equal steps.
    ac_size: int = 64  # side of the images
    ac_samples: int = 24  # validation images of every measurement
    ac_train: int = 256  # training images
    ac_steps: int = 150  # optimiser steps of each FCN training
    ac_layer_steps: int = 60  # optimiser steps of the level-set layer on the frozen FCN
    ac_iterations: int = 100  # Chan-Vese iterations
    # Notebook 17 (data sets): the RGB-D lesson on the 'rgbd' world (objects vs pictures of them),
    # RGB only, early fusion and FuseNet's late fusion, each trained rgbd_epochs.
    rgbd_size: int = 32  # side of the images
    rgbd_train: int = 512  # training images
    rgbd_val: int = 64  # validation images
    rgbd_epochs: int = 16  # epochs of each of the three trainings (same budget)
    # Notebook 17: a U-Net on the 30 real CamVid training frames (10 held apart), the frames
    # shrunk to camvid_height x 4/3 camvid_height (full: 240 x 320 of the data set's 360 x 480).
    camvid_height: int = 48  # rows of the shrunk frames
    camvid_epochs: int = 24  # passes over the 30 frames (batch 6)
    camvid_width: int = 8  # the U-Net's width
    # Notebook 17: EM at full resolution (course_lib.em_recipe): a U-Net trained on the ssTEM
    # sections 0-6 and scored on 7-9, each section's top-left em_side square (1024 = the whole).
    em_side: int = 1024  # side of the sections used (quick: a 256 corner)
    em_steps: int = 40  # optimiser steps (batch 2 crops of 256^2), or until em_seconds:
    em_seconds: float = 600.0  # training seconds at most (full: the recipe's 4 minutes)
    # Notebook 14 (adversarial training): SegAN's segmentor trained by cross-entropy alone, with
    # Luc et al.'s discriminator, on 1/8 of the labels, and by Hung et al. on 1/8 + the rest.
    adversarial_size: int = 64  # side of the shapes-world images
    adversarial_train: int = 256  # training images (1/8 of them labelled in the Hung lesson)
    adversarial_val: int = 64  # validation images
    adversarial_steps: int = 120  # optimiser steps of each of the four trainings
    # pre-training (course_lib.pretrain): the backbones' "ImageNet" — scenes of a world of
    # their own, objects classified at their centres and the classes of each scene named
    pretrain_train: int = 2048  # pre-training scenes (named *_train: a smoke run caps it)
    pretrain_size: int = 96  # their side
    pretrain_crop: int = 64  # side of the random window each step trains on
    pretrain_steps: int = 4800  # optimiser steps per backbone (VGG and other encoders)
    pretrain_batch: int = 32  # scenes (windows) per step
    pretrain_lr: float = 1e-2  # peak of the one-cycle learning rate (VGG and other encoders)
    # the ResNet backbones' own recipe (pretrain.Recipe.for_encoder), measured on resnet_tiny-w8:
    # 56 % of the held-out objects named at 3e-3, 59 % at 1e-2 (and 09's FPN found more objects
    # from it); twice the steps named 65 % but found no more objects in 09 or 11
    pretrain_resnet_lr: float = 1e-2
    pretrain_resnet_steps: int = 2400
    # 19: challenges - FCN-8s / BiSeNet latency at the survey's resolution (full size),
    # a teacher and its students (pruning, int8, distillation, 6 bands) on small images, and
    # a large scene of challenges_grid x challenges_grid of them segmented by tiles.
    challenges_realtime_side: int = 500  # side of the latency image (PASCAL-like 500 x 500)
    challenges_size: int = 48  # side of the training images
    challenges_train: int = 256  # training images
    challenges_val: int = 64  # validation images
    challenges_teacher_steps: int = 150  # optimiser steps of the teacher (a U-Net)
    challenges_student_steps: int = 150  # optimiser steps of each small student
    challenges_grid: int = 43  # scenes per side of the large mosaic (43 x 48 = 2064 px)
    # 19: weak supervision (BoxSup rounds after the box model) and the cell-counting watershed
    challenges_weak_rounds: int = 2  # BoxSup re-estimation rounds
    challenges_weak_round_steps: int = 50  # optimiser steps of each round's retraining
    challenges_cells_size: int = 48  # side of the microscopy images
    challenges_cells_train: int = 64  # microscopy training images
    challenges_cells_steps: int = 100  # optimiser steps of the cell U-Net
    # 16 (other models, panoptic): BiSeNet vs DeepLab v3 timed at the paper's sizes on one
    # image of realtime_height x realtime_width (the smallest of BiSeNet's speed table, 640x360)
    # and trained realtime_steps each at image_size; EncNet with / without the SE loss;
    # Panoptic-DeepLab on the touching world (course_lib.data.instances).
    realtime_height: int = 360
    realtime_width: int = 640
    realtime_rounds: int = 2  # timing rounds (the two models take turns, each keeps its best)
    realtime_steps: int = 64  # optimiser steps of BiSeNet and of DeepLab v3 (same budget)
    encnet_steps: int = 64  # optimiser steps of each EncNet (with / without the SE loss)
    panoptic_size: int = 64  # side of the touching-world images
    panoptic_train: int = 160  # training images
    panoptic_val: int = 48  # validation images
    panoptic_steps: int = 300  # optimiser steps of Panoptic-DeepLab (batch 8)
    # 16, Panoptic FPN (Mask R-CNN + FPN semantic head) on the same touching-world images
    panoptic_fpn_steps: int = 40  # optimiser steps of Panoptic FPN (batch 8)

    def replace(self, **changes: object) -> Profile:
        """A copy with some sizes changed (e.g. ``get_profile().replace(epochs=1)``)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", image_size=64, num_train=64, num_val=16, batch_size=16, epochs=2,
        width=8, lr=3e-3, num_workers=0, classic_samples=8, bench_repeats=3,
        seq_steps=120, gan_epochs=4, demo_steps=240, fcn_epochs=1, fcn_finetune_epochs=1,
        context_size=64, context_train=32,
        medical_size=48, medical_train=6, medical_steps=15, volume_size=16, volume_train=4,
        volume_steps=10, deeplab_epochs=1, encdec_epochs=1, encoder_decoder_epochs=2,
        multiscale_epochs=2, multiscale_context_epochs=1,  # notebook 09
        multiscale_context_size=64, multiscale_context_train=32, multiscale_norm_epochs=1,
        rnn_size=64, rnn_train=32, rnn_val=16, rnn_epochs=2,  # notebook 12
        referring_size=48, referring_train=48, referring_val=16, referring_epochs=2,
        pretrain_train=64, pretrain_size=64, pretrain_crop=48, pretrain_steps=20,  # pre-training
        pretrain_resnet_steps=20, pretrain_batch=16,
        attention_epochs=1, attention_backbone_epochs=1, attention_head_epochs=2,  # notebook 13
        attention_cost_side=9,
        adversarial_size=48, adversarial_train=64, adversarial_val=16,  # notebook 14
        adversarial_steps=16,
        rgbd_size=32, rgbd_train=48, rgbd_val=16, rgbd_epochs=2,  # notebook 17
        camvid_height=48, camvid_epochs=2, em_side=256, em_steps=2,  # notebook 17
        ac_size=48, ac_samples=8, ac_train=32, ac_steps=10, ac_layer_steps=5,  # notebook 15
        ac_iterations=40,
        rcnn_size=48, rcnn_train=24, rcnn_val=8, rcnn_steps=10, rcnn_batch=4,  # notebook 10
        rcnn_semantic_steps=10, rcnn_pennfudan_side=96, rcnn_pennfudan_steps=3, rcnn_panet_steps=5,
        realtime_height=64, realtime_width=128, realtime_rounds=1, realtime_steps=4,  # 16
        challenges_realtime_side=128, challenges_size=32, challenges_train=64,  # 19
        challenges_val=16, challenges_teacher_steps=15, challenges_student_steps=15,
        challenges_grid=8, challenges_weak_rounds=1, challenges_weak_round_steps=5,  # 19
        challenges_cells_size=32, challenges_cells_train=16, challenges_cells_steps=10,
        encnet_steps=4, panoptic_size=48, panoptic_train=16, panoptic_val=8, panoptic_steps=10,
        panoptic_fpn_steps=3,  # 16
    ),
    "standard": Profile(
        name="standard", image_size=96, num_train=512, num_val=64, batch_size=16, epochs=10,
        width=16, lr=3e-3, num_workers=0, classic_samples=32, bench_repeats=10,
        multiscale_epochs=3, multiscale_context_size=128,  # notebook 09
    ),
    "full": Profile(
        name="full", image_size=256, num_train=8000, num_val=1000, batch_size=32, epochs=60,
        width=64, lr=1e-3, num_workers=4, classic_samples=200, bench_repeats=50,
        camvid_height=240, camvid_epochs=100, camvid_width=16, em_steps=10**6,  # notebook 17
        em_seconds=240.0,  # notebook 17: 4 minutes of training, however many steps
        deeplab_epochs=30, encdec_epochs=30, multiscale_epochs=30, multiscale_context_epochs=15,
        encoder_decoder_epochs=30,  # notebook 03: over all 8000 scenes, the steps of 60 over 4000
        multiscale_context_size=320, multiscale_context_train=1024,  # notebook 09
        multiscale_norm_epochs=15,  # notebook 09
        seq_len=100, seq_steps=1000, gan_epochs=50, demo_steps=3000,
        fcn_epochs=20, fcn_finetune_epochs=12, context_size=320, context_train=1024,
        medical_size=256, medical_train=30, medical_steps=3000, volume_size=64,
        volume_train=64, volume_steps=2000,
        rnn_size=320, rnn_train=1024, rnn_val=256, rnn_epochs=30,  # notebook 12
        referring_size=256, referring_train=4000, referring_val=500, referring_epochs=30,
        referring_width=32,
        pretrain_train=20000, pretrain_size=256, pretrain_crop=192, pretrain_steps=6000,
        pretrain_batch=64, pretrain_lr=1e-3,  # pre-training
        pretrain_resnet_lr=1e-3, pretrain_resnet_steps=6000,  # (ResNet's own recipe: untried here)
        attention_epochs=30, attention_backbone_epochs=30, attention_head_epochs=20,  # nb 13
        attention_cost_side=49,
        adversarial_size=256, adversarial_train=4000, adversarial_val=500,  # notebook 14
        adversarial_steps=5000,
        ac_size=128, ac_samples=200, ac_train=4000, ac_steps=3000, ac_layer_steps=500,  # nb 15
        ac_iterations=300,
        rcnn_size=256, rcnn_train=4000, rcnn_val=500, rcnn_steps=6000, rcnn_batch=16,  # nb 10
        rcnn_lr=1e-3, rcnn_semantic_steps=4000, rcnn_pennfudan_side=512,
        rcnn_pennfudan_steps=500, rcnn_panet_steps=6000,
        realtime_steps=3000, encnet_steps=3000, panoptic_size=128, panoptic_train=4000,  # 16
        panoptic_val=500, panoptic_steps=6000, panoptic_fpn_steps=6000,
        challenges_size=256, challenges_train=4000, challenges_val=500,  # 19
        challenges_teacher_steps=3000, challenges_student_steps=2000, challenges_grid=16,
        challenges_weak_rounds=3, challenges_weak_round_steps=500, challenges_cells_size=128,
        challenges_cells_train=400, challenges_cells_steps=1000,
    ),
}

_chosen: str | None = None
_read: str | None = None  # the profile get_profile() last handed out (None: not read yet)


def _check_name(name: str) -> str:
    if name not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ValueError(f"unknown profile {name!r}; valid profiles are: {valid}")
    return name


def set_profile(name: str) -> Profile:
    """Choose the profile for this process (overrides ``COURSE_PROFILE``).

    Call it before the sizes are read: a notebook's setup cell reads them once
    (``profile = get_profile()``), so values read before the switch keep the old sizes.
    Switching after a different profile was read therefore warns; run the setup cell (or
    the whole notebook) again after it.
    """
    global _chosen
    _check_name(name)
    if _read is not None and _read != name:
        warnings.warn(
            f"set_profile({name!r}) after the {_read!r} profile was already read: sizes read "
            f"before (e.g. `profile = get_profile()` in the setup cell) keep their {_read!r} "
            "values. Call set_profile first, or run the cells from the top again after it "
            f"(or start with {ENV_VAR}={name}).", stacklevel=2)
    _chosen = name
    return PROFILES[name]


def profile_name() -> str:
    """The active profile's name: :func:`set_profile`, else ``COURSE_PROFILE``, else standard."""
    if _chosen is not None:
        return _chosen
    return _check_name(os.environ.get(ENV_VAR, DEFAULT_PROFILE).strip() or DEFAULT_PROFILE)


def get_profile(name: str | None = None) -> Profile:
    """The named profile, or the active one (with :func:`smoke_profile`'s caps in a smoke run)."""
    global _read
    if name is not None:
        return PROFILES[_check_name(name)]
    _read = profile_name()
    active = PROFILES[_read]
    return smoke_profile(active) if smoke() else active


def smoke_profile(profile: Profile) -> Profile:
    """``profile`` with its data and loop sizes cut for a smoke run; image sizes and widths kept.

    Fields are capped by the naming rule of :class:`Profile`: epochs become 1, steps
    :data:`SMOKE_STEPS`, training sets at most :data:`SMOKE_TRAIN` items, validation sets
    and sample counts at most :data:`SMOKE_VAL`, batches :data:`SMOKE_BATCH`, no DataLoader
    workers and one benchmark repetition. Every training loop is capped at
    :data:`SMOKE_STEPS` steps anyway (:func:`cap_steps`); these caps keep data generation
    and evaluation of a paper-size notebook to seconds.
    """
    changes: dict[str, object] = {"batch_size": min(profile.batch_size, SMOKE_BATCH),
                                  "num_workers": 0, "bench_repeats": 1}
    for item in dataclasses.fields(profile):
        value = getattr(profile, item.name)
        if item.name in changes or isinstance(value, bool) or not isinstance(value, int):
            continue
        if item.name.endswith("epochs"):
            changes[item.name] = min(value, 1)
        elif item.name.endswith("steps"):
            changes[item.name] = min(value, SMOKE_STEPS)
        elif item.name == "num_train" or item.name.endswith("_train"):
            changes[item.name] = min(value, SMOKE_TRAIN)
        elif item.name == "num_val" or item.name.endswith(("_val", "_samples")):
            changes[item.name] = min(value, SMOKE_VAL)
    return profile.replace(**changes)


def course_seed() -> int:
    """The experiments' seed: ``COURSE_SEED`` (default 0). Notebooks seed everything with it."""
    raw = os.environ.get(SEED_VAR, "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{SEED_VAR} must be an integer, got {raw!r}") from None


def smoke() -> bool:
    """True in a smoke run (``COURSE_SMOKE=1``): build, train a step, evaluate, draw; no lessons.

    A smoke run executes a notebook end to end in any profile (``full`` on a CPU, say) with
    every training loop capped at :data:`SMOKE_STEPS` steps and every evaluation at
    :data:`SMOKE_STEPS` batches: it proves that the configuration builds and runs.
    """
    return os.environ.get(SMOKE_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


def run_tag() -> str:
    """What one run writes for another is keyed by this: profile, smoke run and seed.

    E.g. ``"standard-seed1"`` or ``"full-smoke-seed0"``: notebook 06 loads the FCN that
    notebook 05 trained with the same profile and seed, and never a smoke run's two-step one.
    """
    return f"{profile_name()}{'-smoke' if smoke() else ''}-seed{course_seed()}"


def cap_steps(steps: int) -> int:
    """``steps``, or at most :data:`SMOKE_STEPS` in a smoke run (for hand-written loops)."""
    return min(steps, SMOKE_STEPS) if smoke() else steps


def capped(iterable: Iterable[T]) -> Iterator[T]:
    """``iterable``, cut after :data:`SMOKE_STEPS` items in a smoke run."""
    return itertools.islice(iterable, SMOKE_STEPS) if smoke() else iter(iterable)


def data_dir() -> Path:
    """Where generated and fetched data live: ``COURSE_DATA_DIR`` or the repository's ``data/``."""
    configured = os.environ.get(DATA_DIR_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def get_device(prefer: str | None = None) -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU (or ``prefer`` if given)."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def amp_enabled(device: torch.device | str) -> bool:
    """Mixed precision is used on CUDA only: on CPU and MPS it is slower or unsupported."""
    return torch.device(device).type == "cuda"


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in float16 on CUDA; a no-op context elsewhere."""
    if amp_enabled(device):
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device | str) -> torch.amp.GradScaler:
    """A GradScaler that is active exactly when :func:`autocast` is."""
    return torch.amp.GradScaler("cuda", enabled=amp_enabled(device))


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (all devices); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def using_profile(name: str) -> Iterator[Profile]:
    """Temporarily switch profile (tests and benchmarks)."""
    global _chosen
    before = _chosen
    try:
        _chosen = _check_name(name)
        yield PROFILES[name]
    finally:
        _chosen = before


def banner() -> str:
    """The first cell's table: profile, sizes, device, AMP, threads, seed, versions.

    It also applies the course's thread count and adds a warning row when the machine is
    oversubscribed (:func:`course_lib.machine.banner_threads`).
    """
    import torchvision

    threads, threads_warnings = banner_threads()
    device = get_device()
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    prof = get_profile()
    amp = "on (float16 autocast)" if amp_enabled(device) else "off (used on CUDA only)"
    rows = [
        ("profile", f"{prof.name} (set {ENV_VAR}=quick|standard|full before starting)"),
        ("sizes", f"images {prof.image_size} px, {prof.num_train} train / {prof.num_val} val, "
                  f"width {prof.width}, {prof.epochs} epochs, batch {prof.batch_size}"),
        ("device", f"{device.type}{gpu}"),
        ("AMP", amp),
        ("threads", threads),
        ("seed", f"{course_seed()} ({SEED_VAR})"),
        ("versions", f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                     f"python {platform.python_version()}"),
    ]
    if smoke():
        rows.insert(2, ("smoke", f"SMOKE run: {SMOKE_STEPS} steps per loop, tiny data"))
    rows += [("warning", text) for text in threads_warnings]
    return "\n".join(f"{key:<9} {value}" for key, value in rows)
