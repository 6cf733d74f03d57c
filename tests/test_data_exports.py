"""``course_lib.data`` exports every reader, layout writer and the catalogue and balance
helpers under the names of the modules that define them (the same objects, not copies)."""

from __future__ import annotations

import course_lib.data as data
from course_lib.data import balance, catalogue, layouts, readers_rgbd_em, readers_scenes, synthetic

READERS = ("Cityscapes", "ADE20K", "PascalContext", "SBD", "NYUDepthV2", "ISBI2012Stack",
           "VOCSegmentation", "COCOInstances", "CamVid", "EMStack", "PennFudanPed")


def test_every_reader_is_exported_from_the_package() -> None:
    for name in READERS:
        assert name in data.__all__, name
        assert isinstance(getattr(data, name), type), name
    assert data.Cityscapes is readers_scenes.Cityscapes
    assert data.NYUDepthV2 is readers_rgbd_em.NYUDepthV2
    assert data.ISBI2012Stack is readers_rgbd_em.ISBI2012Stack


def test_exports_are_the_defining_modules_objects() -> None:
    for module in (readers_scenes, readers_rgbd_em, layouts):
        for name in module.__all__:
            if name in data.__all__:
                assert getattr(data, name) is getattr(module, name), name
    for name in ("write_cityscapes", "write_ade20k", "write_pascal_context", "write_sbd",
                 "write_nyu_depth", "write_isbi2012", "cityscapes_train_ids"):
        assert name in data.__all__, name
    assert data.pixel_shares is balance.pixel_shares
    assert data.objects_per_image is balance.objects_per_image
    assert data.CATALOGUE is catalogue.CATALOGUE
    assert data.RGBD_CLASS_NAMES is synthetic.RGBD_CLASS_NAMES


def test_all_lists_only_names_that_exist_once() -> None:
    assert len(data.__all__) == len(set(data.__all__))
    missing = [name for name in data.__all__ if not hasattr(data, name)]
    assert not missing, missing
