"""course_lib.bench_data: reader speed through a DataLoader (counts every item, rejects bad
arguments). Speeds themselves are measured by the module's CLI, never asserted here."""

from __future__ import annotations

import pytest
from torch.utils.data import Dataset

from course_lib import bench_data


class _Counting(Dataset):
    def __init__(self, n: int) -> None:
        self.n, self.reads = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        return {"image_id": str(i)}


def test_reader_speed_reads_every_item_each_pass():
    ds = _Counting(7)
    speeds = bench_data.reader_speed(ds, workers=(0,), batch_size=3, epochs=2)
    assert list(speeds) == [0] and speeds[0] > 0
    assert ds.reads == 7 * 3  # one untimed pass + two timed ones


def test_reader_speed_with_a_worker_process():
    speeds = bench_data.reader_speed(_Counting(4), workers=(1,), epochs=1)
    assert speeds[1] > 0


def test_reader_speed_rejects_bad_arguments():
    with pytest.raises(ValueError, match="non-empty"):
        bench_data.reader_speed(_Counting(0))
    with pytest.raises(ValueError, match="epochs"):
        bench_data.reader_speed(_Counting(2), epochs=0)


def test_cli_prints_one_row_per_reader(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(tmp_path))  # no real samples there
    assert bench_data.main(["--workers", "0", "--num", "2", "--size", "24", "--epochs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 5 and lines[1].startswith("Cityscapes layout")
