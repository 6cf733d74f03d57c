"""Exercise checks: a tick when right; expected / got / hint when wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import grading


def test_passed_prints_a_tick(capsys: pytest.CaptureFixture) -> None:
    grading.passed("my check")
    assert capsys.readouterr().out == "✓ my check passed\n"


def test_check_shape(capsys: pytest.CaptureFixture) -> None:
    grading.check_shape(torch.zeros(2, 3, 8, 8), (2, 3, None, -1), name="logits")
    assert "✓ logits passed" in capsys.readouterr().out
    with pytest.raises(AssertionError) as info:
        grading.check_shape(torch.zeros(2, 8, 8), (2, 3, 8, 8), name="logits")
    message = str(info.value)
    assert "✗ logits failed" in message
    assert "expected: shape (2, 3, 8, 8)" in message and "got:      shape (2, 8, 8)" in message
    assert "hint:" in message and "dimension" in message
    with pytest.raises(AssertionError, match="wrong order"):
        grading.check_shape(torch.zeros(8, 8, 3), (3, 8, 8))
    with pytest.raises(AssertionError, match="a list"):
        grading.check_shape([1, 2], (2,))
    assert capsys.readouterr().out == ""  # nothing printed for failures


def test_check_dtype() -> None:
    grading.check_dtype(torch.zeros(2, dtype=torch.int64), torch.int64)
    grading.check_dtype(torch.zeros(2), "float32")
    grading.check_dtype(np.zeros(2, dtype=np.uint8), np.uint8)
    with pytest.raises(AssertionError, match=r"(?s)expected: dtype torch.int64.*\.long\(\)"):
        grading.check_dtype(torch.zeros(2), torch.int64, name="labels")


def test_check_close_scalars_and_tensors(capsys: pytest.CaptureFixture) -> None:
    grading.check_close(0.1 + 0.2, 0.3, name="sum")
    grading.check_close(torch.tensor([1.0, float("nan")]), [1.0, float("nan")], name="nan ok")
    out = capsys.readouterr().out
    assert "✓ sum passed" in out and "✓ nan ok passed" in out
    with pytest.raises(AssertionError) as info:
        grading.check_close(0.5, 0.75, name="iou")
    assert "expected: 0.75" in str(info.value) and "got:      0.5" in str(info.value)
    with pytest.raises(AssertionError) as info:
        grading.check_close(torch.tensor([[1.0, 2.0], [3.0, 9.0]]), torch.tensor([[1.0, 2.0],
                                                                                 [3.0, 4.0]]))
    message = str(info.value)
    assert "at index (1, 1): 4" in message and "9 there; 1 of 4 elements differ" in message
    with pytest.raises(AssertionError, match="shape"):
        grading.check_close(torch.zeros(3), torch.zeros(1, 3))
    with pytest.raises(AssertionError, match="sign is flipped"):
        grading.check_close(torch.tensor([1.0, -2.0]), torch.tensor([-1.0, 2.0]))
    with pytest.raises(AssertionError, match="not numeric"):
        grading.check_close("abc", 1.0)


def test_check_equal_and_true() -> None:
    grading.check_equal(torch.tensor([1, 2]), torch.tensor([1, 2]))
    grading.check_equal("road", "road")
    with pytest.raises(AssertionError, match="expected: 'sky'"):
        grading.check_equal("road", "sky")
    with pytest.raises(AssertionError):
        grading.check_equal(torch.tensor([1, 2]), torch.tensor([[1, 2]]))
    grading.check_true(3 > 2, "order")
    with pytest.raises(AssertionError, match="hint:     think"):
        grading.check_true(False, "order", hint="think")


def test_check_function_cases(capsys: pytest.CaptureFixture) -> None:
    def add(a: float, b: float = 0.0) -> float:
        return a + b

    grading.check_function(add, [((1, 2), 3), {"args": (1,), "kwargs": {"b": 4}, "expected": 5},
                                 {"args": (2, 2), "expected": lambda r: r == 4}])
    assert "✓ add (3 cases) passed" in capsys.readouterr().out
    with pytest.raises(AssertionError) as info:
        grading.check_function(add, [((1, 2), 3), ((2, 2), 5)])
    message = str(info.value)
    assert "case 2: add(2, 2)" in message and "expected: 5" in message and "got:      4" in message

    def forgot_return(a: int) -> None:
        a + 1

    with pytest.raises(AssertionError, match="forget `return`"):
        grading.check_function(forgot_return, [((1,), 2)])
    with pytest.raises(ValueError, match="at least one case"):
        grading.check_function(add, [])
    with pytest.raises(ValueError, match="expected"):
        grading.check_function(add, [{"args": (1,)}])


def test_unsolved_exercise_error_is_not_hidden() -> None:
    def stub(x: int) -> int:
        raise NotImplementedError("Exercise: write the body of stub()")

    with pytest.raises(NotImplementedError, match="Exercise"):
        grading.check_function(stub, [((1,), 1)])


def test_forbid_fails_a_solution_that_only_calls_the_library() -> None:
    from course_lib import metrics

    cm = torch.tensor([[3.0, 1.0], [2.0, 4.0]])
    expected = metrics.iou_per_class(cm)

    def delegating(cm: torch.Tensor) -> torch.Tensor:
        return metrics.iou_per_class(cm)

    def own(cm: torch.Tensor) -> torch.Tensor:
        d = cm.diag()
        return d / (cm.sum(0) + cm.sum(1) - d)

    with pytest.raises(AssertionError, match="called the library's course_lib.metrics"):
        grading.check_function(delegating, [((cm,), expected)], forbid=[metrics.iou_per_class])
    grading.check_function(own, [((cm,), expected)], forbid=[metrics.iou_per_class])
    assert metrics.iou_per_class(cm).allclose(expected)  # restored afterwards
