"""Reader speed: images per second through a ``DataLoader`` (notebook 17).

    python -m course_lib.bench_data                 # the real samples present + shapes layouts
    python -m course_lib.bench_data --workers 0 2 --epochs 3

A reader's speed is decoding (PNG/JPEG/.mat/TIFF) plus the label recoding; with workers the
decoding runs in parallel processes, which pays only when an item costs more than handing
it over between processes. Library modules do not import this module.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

__all__ = ["reader_speed", "survey_readers_speed"]


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collate that keeps the items as they are (their sizes and keys differ between sets)."""
    return batch


def reader_speed(dataset: Dataset, workers: Sequence[int] = (0, 2), batch_size: int = 4,
                 epochs: int = 2) -> dict[int, float]:
    """Images per second of ``dataset`` read through a ``DataLoader`` with each number of
    ``workers``: the median over ``epochs`` full passes, after one untimed pass (worker
    start-up and the file system cache are not what is measured)."""
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("reader_speed needs a non-empty data set")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    speeds: dict[int, float] = {}
    for w in workers:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=w, collate_fn=_as_list,
                            persistent_workers=w > 0)
        times = []
        for epoch in range(epochs + 1):
            start = time.perf_counter()
            count = sum(len(batch) for batch in loader)
            if epoch:
                times.append(time.perf_counter() - start)
        assert count == n
        times.sort()
        speeds[w] = n / times[len(times) // 2]
    return speeds


def _shapes_layouts(root: Path, num: int, size: int) -> dict[str, Callable[[], Dataset]]:
    from course_lib.data import ShapesWorld, layouts
    from course_lib.data import readers_rgbd_em as rgbd_em
    from course_lib.data import readers_scenes as scenes

    world = ShapesWorld(num, image_size=size, seed=0, split="train")
    layouts.write_cityscapes(world, root / "cityscapes")
    layouts.write_ade20k(world, root / "ade")
    layouts.write_sbd(world, root / "sbd")
    layouts.write_nyu_depth(ShapesWorld(num, image_size=size, split="train", with_depth=True),
                            root / "nyu")
    layouts.write_isbi2012(ShapesWorld(num, image_size=size, variant="microscopy"),
                           root / "isbi")
    return {
        f"Cityscapes layout ({size} px)": lambda: scenes.Cityscapes(root / "cityscapes"),
        f"ADE20K layout ({size} px)": lambda: scenes.ADE20K(root / "ade"),
        f"SBD layout ({size} px, .mat)": lambda: scenes.SBD(root / "sbd"),
        f"NYU-Depth V2 layout ({size} px)": lambda: rgbd_em.NYUDepthV2(root / "nyu"),
        f"ISBI 2012 TIFF ({size} px)": lambda: rgbd_em.ISBI2012Stack(root / "isbi"),
    }


def _real_samples() -> dict[str, Callable[[], Dataset]]:
    import os

    from course_lib import config
    from course_lib.data import readers as rd

    real = Path(os.environ.get("COURSE_DATA_MIRROR") or config.data_dir() / "real")
    found: dict[str, Callable[[], Dataset]] = {}
    if (real / "CamVid").exists():
        found["CamVid 480x360 (real)"] = lambda: rd.CamVid(real, split="train")
    if (real / "drosophila_vnc_sstem").exists():
        found["ssTEM 1024x1024 (real)"] = lambda: rd.EMStack(real, kind="sstem")
    if (real / "coco_tiny").exists():
        found["COCO tiny (real)"] = lambda: rd.COCOInstances(real / "coco_tiny")
    return found


def survey_readers_speed(workers: Sequence[int] = (0, 2), num: int = 24, size: int = 256,
                         epochs: int = 2) -> list[dict[str, Any]]:
    """:func:`reader_speed` of the real samples found (``COURSE_DATA_MIRROR`` or
    ``data/real``) and of the shapes world written in five official layouts (``num``
    images of ``size`` px). One row per reader: ``name``, ``images``, ``workers_<w>``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        makers = {**_real_samples(), **_shapes_layouts(Path(tmp), num, size)}
        for name, make in makers.items():
            ds = make()
            speeds = reader_speed(ds, workers, epochs=epochs)
            rows.append({"name": name, "images": len(ds),  # type: ignore[arg-type]
                         **{f"workers_{w}": s for w, s in speeds.items()}})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--num", type=int, default=24, help="images per shapes layout")
    parser.add_argument("--size", type=int, default=256, help="side of the shapes images")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    rows = survey_readers_speed(args.workers, args.num, args.size, args.epochs)
    heads = [f"{w} workers" for w in args.workers]
    print(f"{'reader':34s} {'images':>6s} " + " ".join(f"{h:>12s}" for h in heads))
    for r in rows:
        speeds = " ".join(f"{r[f'workers_{w}']:10.1f}/s" for w in args.workers)
        print(f"{r['name']:34s} {r['images']:6d} {speeds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
