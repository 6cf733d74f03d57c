"""Training and evaluation loops for semantic segmentation: one ``fit`` for every model.

``fit`` is the loop of torchvision's reference trainer, written to be read:

* it runs on whatever :func:`course_lib.config.get_device` finds (CUDA, MPS or CPU), with
  mixed precision and a ``GradScaler`` on CUDA only;
* the learning rate follows the *poly* schedule ``lr * (1 - it / total) ** 0.9``, stepped
  after every optimizer step (DeepLab, PSPNet and torchvision all use it);
* after every epoch it evaluates mean IoU and pixel accuracy on the validation set and
  appends them to a :class:`History` that :func:`course_lib.viz.plot_history` draws;
* checkpoints are written atomically (a temporary file then ``os.replace``) and hold only
  tensors and plain containers, so they load with ``torch.load(weights_only=True)``; with
  ``resume=True`` an interrupted run continues *exactly* where it stopped (weights,
  optimizer, schedule, gradient scaler, random states and data order);
* started by ``torchrun --nproc_per_node=N`` it trains with ``DistributedDataParallel``:
  each process sees its own share of the data, only rank 0 prints and writes checkpoints.

Batches are ``(image, mask)`` pairs or dicts with ``"image"`` and ``"mask"``; a model
returns logits [N, K, H, W] or a dict with ``"out"`` (and optionally ``"aux"``, an
auxiliary head added to the loss with weight ``aux_weight``, as in PSPNet:
:func:`course_lib.losses.model_loss`). A dict batch may add a per-pixel ``"weight"`` map
(U-Net's border weights): its loss is then :func:`pixel_weighted_cross_entropy`.

The modules, one concern each:

* :mod:`~course_lib.train.loop` - ``fit``: resume, one epoch, record;
* :mod:`~course_lib.train.evaluation` - ``evaluate``, ``predict`` and ``predict_augmented``;
* :mod:`~course_lib.train.checkpoint` - atomic checkpoints and random states;
* :mod:`~course_lib.train.distributed` - ``DistributedDataParallel`` under ``torchrun``;
* :mod:`~course_lib.train.step` - one optimizer update with AMP loss scaling (every
  loop of the course, ``fit``'s and the families' own, calls it);
* :mod:`~course_lib.train.history`, :mod:`~course_lib.train.schedule`,
  :mod:`~course_lib.train.batches` - the record, the poly schedule, batches to tensors.
"""

from course_lib.losses import pixel_weighted_cross_entropy

from .checkpoint import load_checkpoint, save_checkpoint
from .evaluation import TTA_SCALES, evaluate, predict, predict_augmented
from .history import History
from .loop import fit
from .schedule import PolyLR
from .step import optimizer_step

__all__ = [
    "History",
    "PolyLR",
    "fit",
    "pixel_weighted_cross_entropy",
    "evaluate",
    "predict",
    "predict_augmented",
    "TTA_SCALES",
    "optimizer_step",
    "save_checkpoint",
    "load_checkpoint",
]
