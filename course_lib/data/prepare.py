"""Pre-generate and cache the shapes-world train/val sets of a profile.

``python -m course_lib.data.prepare [--profile NAME] [--depth]`` (``make data`` runs it).
The cache lives in ``config.data_dir()/"cache"``; a set that is already cached is loaded,
not regenerated. Takes seconds for the standard profile.
"""

from __future__ import annotations

import argparse
import time

from course_lib import config
from course_lib.data.synthetic import ShapesWorld


def prepare(profile: str | None = None, with_depth: bool = False) -> list[ShapesWorld]:
    """Build (or load) the cached train and val sets of ``profile`` and report on each."""
    prof = config.get_profile(profile)
    sets = []
    for split, n in (("train", prof.num_train), ("val", prof.num_val)):
        start = time.perf_counter()
        ds = ShapesWorld(n, image_size=prof.image_size, split=split, with_depth=with_depth,
                         cache=True)
        took = time.perf_counter() - start
        print(f"[{prof.name}] {split}: {n} images of {prof.image_size}x{prof.image_size} "
              f"-> {ds.cache_path} ({took:.2f} s)")
        sets.append(ds)
    return sets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, choices=sorted(config.PROFILES),
                        help="profile to prepare (default: the active one)")
    parser.add_argument("--depth", action="store_true", help="also cache with a depth channel")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    prepare(args.profile)
    if args.depth:
        prepare(args.profile, with_depth=True)
    print(f"data ready in {time.perf_counter() - start:.2f} s under {config.data_dir()}")


if __name__ == "__main__":
    main()
