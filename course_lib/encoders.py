"""The course's pre-trained encoders, built ahead of time: ``python -m course_lib.encoders``.

:func:`course_lib.pretrain.load_pretrained` pre-trains a missing encoder on the fly (minutes);
this command builds them once, before the notebooks run, as one would download ImageNet
weights: ``make data`` builds the encoder the notebooks load (``--only vgg_tiny``, the
standard profile, ``COURSE_SEED``), ``make pretrain SEEDS="0 1 2"`` every encoder for the
three seeds on which the lessons are checked.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from torch import nn

from . import config
from .models import build_model
from .models.backbones import build_backbone
from .pretrain import Recipe, cache_dir, cache_path, load_pretrained


def course_encoders(profile: config.Profile | None = None) -> dict[str, nn.Module]:
    """The encoders the notebooks start from, at the profile's sizes (what ``make pretrain``
    builds): the VGG that the notebooks load (03's TernausNet, 05, 06, 07's pre-trained SegNet,
    09's FCN / PSPNet / FPN, 11's DeepLabs, 12), the ResNet that 09 and 11 measured against it
    (it found about half the objects), LinkNet's ResNet-18 and SegNet's / DeconvNet's VGG16 at
    their papers' depths (notebook 07), and notebook 03's encoder."""
    p = profile or config.get_profile()
    width = max(4, p.width // 2)  # the family notebooks train at half the base width
    return {
        "vgg_tiny": build_backbone("vgg_tiny", width=width),
        "resnet_tiny": build_backbone("resnet_tiny", width=width),
        "resnet18": build_backbone("resnet18", width=max(8, width)),
        "vgg16": build_backbone("vgg16", width=max(8, width)),
        "encoder_decoder": build_model("encoder_decoder", width=width).encoder,
    }


def _build(job: tuple[str, int, str]) -> str:
    """Load or pre-train course encoder ``name`` for ``seed`` in ``profile`` (one job of
    :func:`main`); a line saying what was done. The caller's settings are restored after."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    # one thread: float sums differ with the thread count, and the weights must not depend on
    # the machine's cores. No oneDNN: torch 2.14's oneDNN backward can corrupt the heap on tiny
    # CPU convolutions (see tests/conftest.py); the native kernels are safe. (Not
    # torch.backends.mkldnn.flags: it warns about TF32 on Intel GPUs on every use.)
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    try:
        return _load_or_pretrain(*job)
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn


def _load_or_pretrain(name: str, seed: int, profile_name: str) -> str:
    config.set_profile(profile_name)
    profile = config.get_profile()
    encoder = course_encoders(profile)[name]
    report = load_pretrained(encoder, seed, Recipe.for_encoder(encoder, profile), verbose=False)
    how = "pre-trained now" if report.trained_now else "cached"
    return (f"{name} seed {seed}: {how} ({report.seconds:.0f} s of pre-training), held-out objects "
            f"{report.object_accuracy:.0%}, scene F1 {report.scene_f1:.2f} -> {report.path.name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pre-train the course's encoders once and "
                                     "cache their weights (data/pretrained).")
    parser.add_argument("--profile", default=None, choices=sorted(config.PROFILES),
                        help="whose sizes and recipe (default: the active profile)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to pre-train (default: COURSE_SEED)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="names of course_encoders() to build (default: all)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="encoders pre-trained at once (default 1); each on one thread, "
                        "so that the weights do not depend on the number of cores")
    args = parser.parse_args(argv)
    if args.profile is not None:
        config.set_profile(args.profile)
    profile = config.get_profile()
    encoders = course_encoders(profile)
    names = list(encoders)
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"unknown encoder(s) {unknown}; the course's encoders are {names}")
    seeds = args.seeds if args.seeds is not None else [config.course_seed()]
    jobs = [(name, seed, profile.name) for seed in seeds for name in names
            if args.only is None or name in args.only]
    missing = [(name, seed, _) for name, seed, _ in jobs if not cache_path(
        encoders[name], Recipe.for_encoder(encoders[name], profile), seed).is_file()]
    started = time.perf_counter()
    print(f"[{profile.name}] {len(jobs)} encoder(s), {len(missing)} to pre-train "
          f"({max(1, args.jobs)} at a time, minutes each)", flush=True)
    if args.jobs > 1 and len(missing) > 1:  # spawned workers: a forked torch may deadlock
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            for line in pool.map(_build, missing):
                print(line, flush=True)
    else:
        for job in missing:
            print(_build(job), flush=True)
    print(f"[{profile.name}] pre-trained encoders ready in {time.perf_counter() - started:.0f} s "
          f"under {cache_dir()}")


if __name__ == "__main__":
    main()
