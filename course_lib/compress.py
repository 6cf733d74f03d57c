"""Model compression: magnitude pruning, post-training int8 quantization, distillation.

The survey's "memory-efficient models" (Minaee et al. 2021, Sec. 7) names three ways to fit
a segmentation network on a small device; each is one small function here:

* :func:`prune_global` — global magnitude pruning (Han et al., NeurIPS 2015): the smallest
  convolution weights of the *whole* network are set to zero, through
  :func:`torch.nn.utils.prune.global_unstructured`; :func:`sparsity` counts the zeros.
* :func:`quantize_int8` — post-training static int8 quantization with ``torch.ao``
  (Jacob et al., CVPR 2018) on the CPU: every convolution, fused with its BatchNorm and
  ReLU, runs on int8 kernels between a quantize and a dequantize step. (FX graph mode
  cannot trace the course's models: their input checks branch on the input's shape; and
  dynamic quantization covers only ``Linear``/``LSTM``, not convolutions. PyTorch marks
  these eager-mode tools as deprecated in favour of ``torchao``; they still run here.)
* :func:`distillation_loss` and :func:`distill` — knowledge distillation (Hinton et al.,
  2015): a small *student* learns from a large *teacher*'s softened class probabilities
  (a KL divergence at temperature ``T``, scaled by ``T**2``) plus the usual cross-entropy
  on the labels, at every pixel.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn.intrinsic import ConvReLU2d
from torch.nn.utils import prune
from tqdm.auto import tqdm

from . import config
from .config import IGNORE_INDEX
from .runtime import evaluating

__all__ = ["distill", "distillation_loss", "prune_global", "quantize_int8", "sparsity"]


def _logits(out: torch.Tensor | dict) -> torch.Tensor:
    return out["out"] if isinstance(out, dict) else out


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


# --------------------------------------------------------------------------------------
# Pruning
# --------------------------------------------------------------------------------------
def sparsity(model: nn.Module) -> float:
    """Fraction of the convolution weights of ``model`` that are exactly zero."""
    convs = _convs(model)
    if not convs:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to count")
    zeros = sum(int((c.weight == 0).sum()) for c in convs)
    return zeros / sum(c.weight.numel() for c in convs)


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` whose smallest ``amount`` (0..1) of convolution weights are zero.

    The ranking is *global*: one threshold on ``|w|`` over every ``nn.Conv2d`` of the
    network, so layers with many small weights lose more than others. The masks are made
    permanent (:func:`torch.nn.utils.prune.remove`): the copy is a plain model with zeros.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount is the fraction of weights to remove, in [0, 1); got {amount}")
    pruned = copy.deepcopy(model)
    targets = [(conv, "weight") for conv in _convs(pruned)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    for conv, name in targets:
        prune.remove(conv, name)  # weight = weight_orig * mask, the mask forgotten
    return pruned


# --------------------------------------------------------------------------------------
# Post-training int8 quantization (eager mode, one island per convolution)
# --------------------------------------------------------------------------------------
def _fuse_conv_bn_relu(module: nn.Module) -> None:
    """Fuse each Conv2d → BatchNorm2d (→ ReLU) run inside a Sequential, in place (eval mode)."""
    for child in module.children():
        _fuse_conv_bn_relu(child)
    if not isinstance(module, nn.Sequential):
        return
    layers, groups, i = list(module), [], 0
    while i < len(layers) - 1:
        if (type(layers[i]) is nn.Conv2d and isinstance(layers[i + 1], nn.BatchNorm2d)):
            group = [str(i), str(i + 1)]
            if i + 2 < len(layers) and isinstance(layers[i + 2], nn.ReLU):
                group.append(str(i + 2))
            groups.append(group)
            i += len(group)
        else:
            i += 1
    if groups:
        tq.fuse_modules(module, groups, inplace=True)


def _wrap_convs(module: nn.Module, qconfig: tq.QConfig) -> None:
    """Put every (fused) convolution between a quantize and a dequantize step."""
    for name, child in module.named_children():
        if type(child) is nn.Conv2d or isinstance(child, ConvReLU2d):
            wrapper = tq.QuantWrapper(child)
            wrapper.qconfig = qconfig
            setattr(module, name, wrapper)
        else:
            _wrap_convs(child, qconfig)


def quantize_int8(model: nn.Module, calibration: Iterable[torch.Tensor],
                  backend: str = "x86") -> nn.Module:
    """An int8 copy of ``model`` for CPU inference (post-training static quantization).

    1. BatchNorm (and ReLU) are folded into the convolution before them;
    2. every convolution is wrapped in ``QuantStub → conv → DeQuantStub``
       (:class:`torch.ao.quantization.QuantWrapper`), so the rest of the network
       (interpolation, concatenation, attention) stays in float;
    3. observers record the activations' ranges on the ``calibration`` images;
    4. the convolutions become ``torch.ao.nn.quantized`` int8 modules (per-channel weights).

    Args:
        model: a float model (its copy is quantized; the model is not changed).
        calibration: image batches ``[N, C, H, W]`` on the CPU (a few are enough).
        backend: a quantized engine of this PyTorch (``"x86"``, ``"fbgemm"``,
            ``"qnnpack"``); it becomes ``torch.backends.quantized.engine``.
    """
    engines = torch.backends.quantized.supported_engines
    if backend not in engines:
        raise ValueError(f"backend {backend!r} is not a quantized engine of this PyTorch; "
                         f"supported: {', '.join(engines)}")
    torch.backends.quantized.engine = backend
    qmodel = copy.deepcopy(model).cpu().eval()
    if not _convs(qmodel):
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to quantize")
    _fuse_conv_bn_relu(qmodel)
    _wrap_convs(qmodel, tq.get_default_qconfig(backend))
    with warnings.catch_warnings():  # torch.ao's own deprecation notices, not the user's
        warnings.filterwarnings("ignore", message=".*(reduce_range|quantize_per|"
                                "torch.ao.quantization is deprecated).*")
        return _calibrate_and_convert(qmodel, calibration)


def _calibrate_and_convert(qmodel: nn.Module, calibration: Iterable[torch.Tensor]) -> nn.Module:
    tq.prepare(qmodel, inplace=True)
    seen = 0
    with torch.no_grad():
        for images in calibration:
            if not isinstance(images, torch.Tensor) or images.dim() != 4:
                raise ValueError("calibration must yield image batches [N, C, H, W], got "
                                 f"{type(images).__name__} {getattr(images, 'shape', '')}")
            qmodel(images.cpu())
            seen += 1
    if seen == 0:
        raise ValueError("calibration yielded no batch: the observers need at least one")
    tq.convert(qmodel, inplace=True)
    return qmodel


# --------------------------------------------------------------------------------------
# Knowledge distillation
# --------------------------------------------------------------------------------------
def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor,
                      temperature: float = 2.0, alpha: float = 0.5,
                      ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Hinton et al.'s loss at every pixel: ``alpha * T² * KL(p_T || q_T) + (1 - alpha) * CE``.

    ``p_T = softmax(teacher / T)`` and ``q_T = softmax(student / T)`` over the classes; the
    KL is summed over classes and averaged over the pixels whose label is not
    ``ignore_index``; ``T²`` keeps its gradients' scale independent of ``T``. The
    cross-entropy is on the labels at temperature 1. ``alpha = 0`` is plain training.

    Args:
        student, teacher: logits ``[N, K, H, W]`` (the teacher's are detached).
        target: labels ``[N, H, W]``.
    """
    if student.shape != teacher.shape or student.dim() != 4:
        raise ValueError("student and teacher logits must both be [N, K, H, W] of one shape, "
                         f"got {tuple(student.shape)} and {tuple(teacher.shape)}")
    expected = student.shape[:1] + student.shape[2:]
    if target.shape != expected:
        raise ValueError(f"target must be [N, H, W] = {tuple(expected)}, "
                         f"got {tuple(target.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha weights the two terms, in [0, 1]; got {alpha}")
    valid = target != ignore_index
    ce = F.cross_entropy(student, target, ignore_index=ignore_index)
    log_q = F.log_softmax(student / temperature, dim=1)
    p = F.softmax(teacher.detach() / temperature, dim=1)
    kl_per_pixel = (p * (torch.log(p.clamp_min(1e-12)) - log_q)).sum(dim=1)
    kl = kl_per_pixel[valid].mean() if bool(valid.any()) else kl_per_pixel.sum() * 0
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def distill(student: nn.Module, teacher: nn.Module | None, images: torch.Tensor,
            labels: torch.Tensor, steps: int, *, temperature: float = 2.0, alpha: float = 0.5,
            batch_size: int = 16, lr: float = 3e-3, seed: int = 0,
            desc: str = "distillation") -> nn.Module:
    """Train ``student`` on ``images``/``labels`` with :func:`distillation_loss` (AdamW).

    ``teacher=None`` (or ``alpha=0``) trains the student on the labels alone, with the very
    same batches, so the two runs differ only by the teacher. The teacher's logits are
    computed once (it is frozen). Returns the student in eval mode.
    """
    if teacher is None:
        alpha = 0.0
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images (> 0), got {len(images)} images "
                         f"and {len(labels)} labels")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if teacher is not None:
        with evaluating(teacher):
            soft = torch.cat([_logits(teacher(images[i:i + 64]))
                              for i in range(0, len(images), 64)])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=1e-4)
    student.train()
    for _ in tqdm(range(config.cap_steps(steps)), desc=desc):
        batch = torch.randint(0, len(images), (min(batch_size, len(images)),),
                              generator=generator)
        out = _logits(student(images[batch]))
        teacher_out = soft[batch] if teacher is not None else out.detach()
        loss = distillation_loss(out, teacher_out, labels[batch], temperature, alpha)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return student.eval()
