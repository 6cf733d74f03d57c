"""course_lib.config: profiles, profile selection, device, mixed precision, seeding, banner."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from course_lib import config, machine


@pytest.fixture(autouse=True)
def _no_chosen_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no set_profile() choice (restored afterwards)."""
    monkeypatch.setattr(config, "_chosen", None)
    monkeypatch.setattr(config, "_read", None)


def test_profiles_grow_from_quick_to_full() -> None:
    quick, standard, full = (config.PROFILES[n] for n in ("quick", "standard", "full"))
    assert set(config.PROFILES) == {"quick", "standard", "full"}
    for name, prof in config.PROFILES.items():
        assert prof.name == name
        for f in dataclasses.fields(prof):
            value = getattr(prof, f.name)
            if f.name != "name" and f.name != "num_workers":
                assert value > 0, f"{name}.{f.name} = {value}"
    for field in ("image_size", "num_train", "num_val", "epochs", "width", "bench_repeats"):
        assert getattr(quick, field) <= getattr(standard, field) <= getattr(full, field), field
    assert quick.image_size < full.image_size and quick.num_train < standard.num_train


def test_profile_replace_and_frozen() -> None:
    prof = config.get_profile("quick")
    short = prof.replace(epochs=1)
    assert short.epochs == 1 and prof.epochs == config.PROFILES["quick"].epochs
    with pytest.raises(dataclasses.FrozenInstanceError):
        prof.epochs = 5  # type: ignore[misc]


def test_unknown_profile_lists_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="valid profiles are: quick, standard, full"):
        config.set_profile("huge")
    with pytest.raises(ValueError, match="'huge'"):
        config.get_profile("huge")
    monkeypatch.setenv(config.ENV_VAR, "tiny")
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        config.get_profile()


def test_env_var_then_set_profile_then_using_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    assert config.profile_name() == "standard"  # the default
    monkeypatch.setenv(config.ENV_VAR, "")
    assert config.profile_name() == "standard"
    monkeypatch.setenv(config.ENV_VAR, "full")
    assert config.get_profile().name == "full"  # the environment variable
    with pytest.warns(UserWarning, match="already read"):  # after get_profile() above
        config.set_profile("quick")
    assert config.profile_name() == "quick"  # set_profile wins over the variable
    with config.using_profile("standard") as prof:
        assert prof.name == "standard" and config.get_profile().name == "standard"
    assert config.profile_name() == "quick"  # restored
    with pytest.raises(RuntimeError), config.using_profile("full"):
        raise RuntimeError
    assert config.profile_name() == "quick"  # restored after an error too


def test_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(config.DATA_DIR_VAR, raising=False)
    assert config.data_dir().name == "data"
    monkeypatch.setenv(config.DATA_DIR_VAR, str(tmp_path))
    assert config.data_dir() == tmp_path


def test_get_device() -> None:
    assert config.get_device("cpu") == torch.device("cpu")
    device = config.get_device()
    assert device.type in ("cuda", "mps", "cpu")
    assert (device.type == "cuda") == torch.cuda.is_available()


def test_autocast_and_scaler_are_noops_on_cpu() -> None:
    assert not config.amp_enabled("cpu") and not config.amp_enabled(torch.device("mps"))
    assert config.amp_enabled("cuda")
    a = torch.rand(8, 8)
    with config.autocast("cpu"):
        assert (a @ a).dtype == torch.float32
        assert not torch.is_autocast_enabled()
    assert not config.grad_scaler("cpu").is_enabled()


def test_seed_everything_is_deterministic() -> None:
    def draw() -> tuple:
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()

    config.seed_everything(3)
    first = draw()
    config.seed_everything(3)
    assert draw() == first
    config.seed_everything(4)
    assert draw() != first


def test_banner_is_a_short_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    monkeypatch.setenv(machine.THREADS_VAR, "1")
    with config.using_profile("quick"):
        text = config.banner()
    rows = dict(line.split(None, 1) for line in text.splitlines())
    assert list(rows)[:7] == ["profile", "sizes", "device", "AMP", "threads", "seed",
                              "versions"]
    assert all(len(line) <= 100 for line in text.splitlines() if not line.startswith("warn"))
    assert rows["profile"].startswith("quick") and "images 64 px" in rows["sizes"]
    assert rows["device"].startswith(config.get_device().type) and rows["AMP"][:2] in "onoff"
    assert torch.__version__ in rows["versions"] and torchvision.__version__ in rows["versions"]
    assert rows["threads"].startswith("1 (from COURSE_THREADS")
    assert torch.get_num_threads() == 1  # the banner applied it


def test_set_profile_after_reading_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_read", None)
    monkeypatch.setenv(config.ENV_VAR, "quick")
    config.set_profile("full")  # nothing read yet: silent
    assert config.get_profile().name == "full"
    config.set_profile("full")  # the same profile again: silent
    with pytest.warns(UserWarning, match=r"set_profile\('standard'\) after the 'full' profile "
                                         r"was already read.*setup cell"):
        config.set_profile("standard")
    assert config.get_profile().name == "standard"  # it still switches


def test_seed_and_smoke_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    from course_lib import config

    monkeypatch.delenv(config.SMOKE_VAR, raising=False)
    monkeypatch.delenv(config.SEED_VAR, raising=False)
    assert config.course_seed() == 0 and not config.smoke()
    assert config.cap_steps(50) == 50 and list(config.capped(range(5))) == [0, 1, 2, 3, 4]
    monkeypatch.setenv(config.SEED_VAR, "2")
    monkeypatch.setenv(config.SMOKE_VAR, "1")
    assert config.course_seed() == 2 and config.smoke()
    assert config.cap_steps(50) == config.SMOKE_STEPS == 2
    assert list(config.capped(range(5))) == [0, 1]
    monkeypatch.setenv(config.SEED_VAR, "one")
    with pytest.raises(ValueError, match="COURSE_SEED must be an integer"):
        config.course_seed()


def test_smoke_profile_caps_data_and_loops_but_keeps_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    from course_lib import config

    monkeypatch.setenv(config.SMOKE_VAR, "1")
    monkeypatch.setenv(config.SEED_VAR, "2")
    full = config.get_profile("full")  # a named profile is never capped
    assert full.num_train == 8000 and full.epochs == 60
    with config.using_profile("full"):
        smoke = config.get_profile()
        assert config.run_tag() == "full-smoke-seed2"
        assert "SMOKE" in config.banner()
    assert (smoke.image_size, smoke.width, smoke.context_size) == (256, 64, full.context_size)
    assert smoke.num_train == config.SMOKE_TRAIN and smoke.num_val == config.SMOKE_VAL
    assert smoke.batch_size == config.SMOKE_BATCH and smoke.num_workers == 0
    for name in ("epochs", "gan_epochs", "fcn_epochs", "deeplab_epochs"):
        assert getattr(smoke, name) == 1, name
    for name in ("seq_steps", "demo_steps", "medical_steps", "volume_steps"):
        assert getattr(smoke, name) == config.SMOKE_STEPS, name
    for name in ("context_train", "medical_train", "volume_train"):
        assert getattr(smoke, name) <= config.SMOKE_TRAIN, name
    assert smoke.classic_samples <= config.SMOKE_VAL
    monkeypatch.setenv(config.SMOKE_VAR, "")
    with config.using_profile("standard"):
        assert config.get_profile() == config.PROFILES["standard"]
        assert config.run_tag() == "standard-seed2"
