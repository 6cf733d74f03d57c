"""Exercise checks: a tick when right; expected / got / hint when wrong."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
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


# ----------------------------------------------------------------------------------------
# Unsolved exercises: a line and the run goes on; under nbgrader: a failure (0 points)
# ----------------------------------------------------------------------------------------
def stub(x: int) -> int:
    raise NotImplementedError("Exercise: write the body of stub()")


def nbgrader_stub(x: int) -> int:
    # YOUR CODE HERE
    raise NotImplementedError()


@pytest.fixture
def student_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(grading.AUTOGRADE_VAR, raising=False)


def test_unsolved_exercise_says_so_and_the_run_goes_on(
        student_run: None, capsys: pytest.CaptureFixture) -> None:
    grading.check_function(stub, [((1,), 1)])  # no exception: a student copy runs on
    grading.check_function(nbgrader_stub, [((1,), 1)], name="Exercise 2")
    out = capsys.readouterr().out.splitlines()
    assert out == ["○ stub: not solved yet (write the body of stub()); the rest of the "
                   "notebook runs without it",
                   "○ Exercise 2: not solved yet (replace the stub with your solution); the "
                   "rest of the notebook runs without it"]


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_unsolved_exercise_fails_under_nbgrader(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture, mode: str) -> None:
    monkeypatch.setenv(grading.AUTOGRADE_VAR, mode)  # what nbgrader autograde / validate set
    with pytest.raises(grading.CheckFailed, match=r"✗ stub: not solved yet \(write the body"):
        grading.check_function(stub, [((1,), 1)])
    with pytest.raises(grading.CheckFailed, match="not solved yet"), grading.exercise(stub):
        stub(1)
    with pytest.raises(grading.CheckFailed, match="not solved yet"):
        grading.check_close(..., 1.0, name="answer")
    assert capsys.readouterr().out == ""


def test_wrong_answer_still_fails_in_a_student_run(student_run: None) -> None:
    with pytest.raises(grading.CheckFailed, match="case 1"):
        grading.check_function(lambda x: x + 1, [((1,), 1)], name="off by one")


def test_a_library_not_implemented_error_is_an_error_not_an_unsolved_exercise(
        student_run: None) -> None:
    def uses_a_missing_op(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Could not run 'aten::foo' with arguments from the 'Meta' "
                                  "backend")

    with pytest.raises(grading.CheckFailed, match="your code raised NotImplementedError: "
                                                  "Could not run"):
        grading.check_function(uses_a_missing_op, [((torch.zeros(1),), 0.0)])


def test_the_students_error_is_a_short_message_with_the_case_and_the_line(
        student_run: None) -> None:
    def add_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a + b  # the shapes do not match in case 2
        return total

    with pytest.raises(grading.CheckFailed) as info:
        grading.check_function(add_rows, [((torch.ones(2), torch.ones(2)), torch.full((2,), 2.0)),
                                          ((torch.ones(2), torch.ones(3)), torch.ones(3))])
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == ("✗ add_rows failed on case 2: add_rows(tensor [1.0, 1.0] (shape (2,), "
                        "dtype torch.float32), tensor [1.0, 1.0, 1.0] (shape (3,), dtype "
                        "torch.float32))")
    assert lines[1].startswith("  your code raised RuntimeError: The size of tensor a (2)")
    assert lines[2] == "  in add_rows, line " + str(add_rows.__code__.co_firstlineno + 1) + \
        ": total = a + b  # the shapes do not match in case 2"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # IPython (JupyterLab, nbval) shows _render_traceback_ instead of the traceback:
    assert info.value._render_traceback_() == lines


def test_failed_check_renders_as_its_message_only_in_ipython(student_run: None) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    saved = sys.modules["__main__"], sys.displayhook, sys.excepthook
    shell = InteractiveShell.instance()
    try:
        shell.user_ns["grading"] = grading
        with contextlib.redirect_stdout(io.StringIO()) as out:
            shell.run_cell("grading.check_close(0.5, 0.75, name='iou')")
    finally:  # the shell took over __main__ and the hooks: give them back
        InteractiveShell.clear_instance()
        sys.modules["__main__"], sys.displayhook, sys.excepthook = saved
    assert out.getvalue().strip().splitlines() == [
        "✗ iou failed", "  expected: 0.75", "  got:      0.5"]


def test_an_answer_left_as_ellipsis_is_not_solved_yet(
        student_run: None, capsys: pytest.CaptureFixture) -> None:
    for check in (lambda: grading.check_close(..., 1.0, name="a"),
                  lambda: grading.check_equal(..., "road", name="a"),
                  lambda: grading.check_shape(..., (2,), name="a"),
                  lambda: grading.check_dtype(..., torch.int64, name="a"),
                  lambda: grading.check_true(..., name="a")):
        check()
    assert capsys.readouterr().out.count("○ a: not solved yet (replace the ... with your "
                                         "answer)") == 5


# ----------------------------------------------------------------------------------------
# grading.exercise: a whole check cell as one exercise
# ----------------------------------------------------------------------------------------
def test_exercise_block_skips_the_rest_of_an_unsolved_cell(
        student_run: None, capsys: pytest.CaptureFixture) -> None:
    reached = []
    with grading.exercise(stub, name="Exercise 3"):
        grading.check_function(stub, [((1,), 1)])
        reached.append(stub(2))  # never runs: the block ends at the first unsolved call
    assert reached == []
    assert capsys.readouterr().out == ("○ Exercise 3: not solved yet (write the body of "
                                       "stub()); the rest of the notebook runs without it\n")
    with grading.exercise(stub):
        value = ...
        grading.check_close(value, 1.0)
    assert "○ stub: not solved yet" in capsys.readouterr().out


def test_exercise_block_passes_wrong_answers_and_errors_through_as_messages(
        student_run: None) -> None:
    def half(x: float) -> float:
        return x / 3

    with pytest.raises(grading.CheckFailed, match="expected: 1"), grading.exercise(half):
        grading.check_close(half(2.0), 1.0)

    def broken(x: float) -> float:
        return x.missing  # an AttributeError of the student's code

    with pytest.raises(grading.CheckFailed) as info, grading.exercise(broken):
        broken(1.0)
    assert str(info.value).splitlines()[:2] == [
        "✗ broken failed", "  your code raised AttributeError: 'float' object has no "
        "attribute 'missing'"]
    with pytest.raises(ZeroDivisionError), grading.exercise(half):  # the cell's own error
        _ = 1 / 0
    with pytest.raises(ValueError, match="function"):
        grading.exercise()


# ----------------------------------------------------------------------------------------
# forbid=: a solution that only calls the library's answer fails
# ----------------------------------------------------------------------------------------
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


def test_forbid_blocks_classes_methods_and_torch_functions_and_restores_them() -> None:
    import torch.nn.functional as F  # noqa: N812

    from course_lib import losses
    from course_lib.models import basics

    logits, target = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    dice = losses.DiceLoss()  # an instance made before the check is blocked too
    with grading.forbidding([losses.DiceLoss]):
        with pytest.raises(grading.DelegatedToLibrary, match="course_lib.losses.DiceLoss"):
            dice(logits, target)
    assert torch.isfinite(dice(logits, target))
    with grading.forbidding([F.adaptive_avg_pool2d]):
        with pytest.raises(grading.DelegatedToLibrary, match="adaptive_avg_pool2d"):
            torch.nn.AdaptiveAvgPool2d(2)(torch.rand(1, 1, 4, 4))  # the module calls F's
    assert F.adaptive_avg_pool2d(torch.ones(1, 1, 4, 4), 2).shape == (1, 1, 2, 2)
    cell = basics.LSTMCell(2, 3)
    state = (torch.zeros(1, 3), torch.zeros(1, 3))
    with grading.forbidding([basics.LSTMCell.forward]):
        with pytest.raises(grading.DelegatedToLibrary, match="LSTMCell.forward"):
            cell(torch.zeros(1, 2), state)
    assert "forward" not in vars(basics.LSTMCell) or basics.LSTMCell.forward.__name__ == \
        "forward"
    cell(torch.zeros(1, 2), state)  # restored
    with pytest.raises(TypeError, match="forbid= takes functions"), grading.forbidding([3]):
        pass


def test_forbid_in_an_exercise_block_blocks_only_the_students_calls(student_run: None) -> None:
    from course_lib import metrics

    cm = torch.tensor([[3.0, 1.0], [2.0, 4.0]])

    def delegating(cm: torch.Tensor) -> torch.Tensor:
        return metrics.iou_per_class(cm)

    with pytest.raises(grading.CheckFailed, match=r"(?s)✗ delegating failed.*called the "
                                                  r"library's course_lib\.metrics"):
        with grading.exercise(delegating, forbid=[metrics.iou_per_class]):
            reference = metrics.iou_per_class(cm)  # the check cell may use the library
            grading.check_close(delegating(cm), reference)


# The four solutions confirmed to pass by one line of delegation (issue 22), and the other
# exercises whose check is a check_function. Each notebook's own solution (read from the
# notebook) passes with the forbid= list; a delegating one fails. These are the lists the
# notebooks' check cells pass.
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _notebook_solution(notebook: str, function: str) -> Callable:
    """The solution function as the notebook defines it (its cell executed on its own)."""
    nb = nbformat.read(next(NOTEBOOKS.glob(f"{notebook}_*.ipynb")), as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code"
                  and f"def {function}(" in c.source and "### BEGIN SOLUTION" in c.source)
    namespace: dict[str, Any] = {"torch": torch, "F": torch.nn.functional, "np": np}
    exec(compile(source, f"<{notebook} {function}>", "exec"), namespace)
    return namespace[function]


def _smallest_padding(n_in: int, n_out: int, kernel: int, stride: int = 1,
                      dilation: int = 1) -> int | None:
    """The smallest padding (up to 64) that maps n_in to n_out, by brute force."""
    from course_lib.models import basics

    return next((p for p in range(65)
                 if basics.conv_output_size(n_in, kernel, stride, p, dilation) == n_out), None)


def _measured_seen_fraction(rates: tuple[int, ...]) -> float:
    """1 - the share of holes in the gradient support of a dilated stack's centre output."""
    from course_lib import receptive_field as rf

    erf = rf.effective_receptive_field(rf.conv_stack(rates), 65, samples=2)
    return 1 - rf.receptive_field_stats(erf)["holes"]


def _constant_prediction_scores(pixel_counts: torch.Tensor, c: int) -> torch.Tensor:
    """(pixel accuracy, mIoU) of predicting class c everywhere, by the library's metrics."""
    from course_lib import metrics

    k = len(pixel_counts)
    truth = torch.repeat_interleave(torch.arange(k), pixel_counts)
    m = metrics.segmentation_metrics(metrics.confusion_matrix(torch.full_like(truth, c), truth, k))
    return torch.tensor([m["pixel_accuracy"], m["miou"]], dtype=torch.float64)


def _delegation_cases() -> list:
    import torch.nn.functional as F  # noqa: N812

    from course_lib import classic, losses, metrics, receptive_field
    from course_lib.models import basics, fcn, unet
    from course_lib.models import encoder_decoder as ed

    g = torch.Generator().manual_seed(0)
    cm = torch.randint(0, 20, (4, 4), generator=g)
    hist = torch.randint(0, 50, (256,), generator=g).double()
    logits, target = torch.randn(2, 3, 5, 6, generator=g), torch.randint(0, 3, (2, 5, 6),
                                                                            generator=g)
    real, fake = torch.randn(5, generator=g) * 3, torch.randn(5, generator=g) * 3
    pooled, indices, size = ed.IndexPool()(torch.randn(2, 3, 7, 9, generator=g))
    feature = torch.rand(2, 3, 7, 5, generator=g)
    skip, up = torch.rand(1, 4, 9, 7, generator=g), torch.rand(1, 2, 4, 4, generator=g)
    return [  # confirmed cases first
        pytest.param("05", "my_bilinear_kernel", [((f,), fcn.bilinear_kernel(f)) for f in (2, 3)],
                     lambda factor: fcn.bilinear_kernel(factor),
                     [fcn.bilinear_kernel], id="05-bilinear_kernel"),
        pytest.param("00", "otsu_from_histogram", [((hist,), classic.otsu_threshold(hist))],
                     lambda hist: classic.otsu_threshold(hist),
                     [classic.otsu_threshold], id="00-otsu"),
        pytest.param("08", "my_dice_loss",
                     [((logits, target), losses.DiceLoss()(logits, target))],
                     lambda logits, target, smooth=1.0: losses.DiceLoss(smooth=smooth)(
                         logits, target),
                     [losses.DiceLoss], id="08-dice"),
        pytest.param("01", "my_padding_for",
                     [((n_in, n_out, k, st, d), _smallest_padding(n_in, n_out, k, st, d))
                      for n_in, n_out, k, st, d in [(32, 32, 3, 1, 1), (33, 17, 3, 2, 1),
                                                    (32, 33, 3, 1, 1), (17, 17, 3, 1, 8)]],
                     _smallest_padding, [basics.conv_output_size], id="01-padding_for"),
        pytest.param("03", "my_break_even_bottleneck",
                     [((h, w, c, depth), -(-c * h * w // basics.ConvAutoencoder(
                         width=4, bottleneck=1, depth=depth).code_size(h, w)))
                      for h, w, c, depth in [(32, 32, 3, 3), (33, 17, 1, 4)]],
                     lambda h, w, c, depth: -(-c * h * w // basics.ConvAutoencoder(
                         width=4, bottleneck=1, depth=depth).code_size(h, w)),
                     [basics.ConvAutoencoder.code_size], id="03-break_even_bottleneck"),
        pytest.param("04", "my_discriminator_loss",
                     [((real, fake), basics.discriminator_loss(real, fake))],
                     lambda r, f: basics.discriminator_loss(r, f),
                     [basics.discriminator_loss], id="04-discriminator_loss"),
        pytest.param("07", "my_max_unpool",
                     [((pooled, indices, tuple(size)),
                       torch.nn.MaxUnpool2d(2, stride=2)(pooled, indices, output_size=list(size)))],
                     lambda p, i, size: F.max_unpool2d(p, i, 2, 2, output_size=list(size)),
                     [ed.IndexUnpool, F.max_unpool2d], id="07-max_unpool"),
        pytest.param("08", "my_crop_and_concat", [((skip, up), unet.crop_and_concat(skip, up))],
                     lambda skip, up: unet.crop_and_concat(skip, up),
                     [unet.crop_and_concat], id="08-crop_and_concat"),
        pytest.param("09", "my_adaptive_avg_pool",
                     [((feature, b), F.adaptive_avg_pool2d(feature, b)) for b in (1, 2, 3)],
                     lambda x, bins: torch.nn.AdaptiveAvgPool2d(bins)(x),
                     [F.adaptive_avg_pool2d], id="09-adaptive_avg_pool"),
        pytest.param("11", "my_seen_fraction",
                     [((rates,), _measured_seen_fraction(rates))
                      for rates in [(2, 2, 2), (1, 4, 4)]],
                     _measured_seen_fraction,
                     [receptive_field.effective_receptive_field,
                      receptive_field.receptive_field_stats], id="11-seen_fraction"),
        pytest.param("18", "my_constant_prediction_scores",
                     [((counts, c), _constant_prediction_scores(counts, c))
                      for counts in (cm[0], torch.tensor([6, 3, 1, 0])) for c in (0, 3)],
                     _constant_prediction_scores,
                     [metrics.segmentation_metrics, metrics.confusion_matrix,
                      metrics.iou_per_class, metrics.mean_iou, metrics.pixel_accuracy],
                     id="18-constant_prediction_scores"),
    ]


@pytest.mark.parametrize("notebook, function, cases, delegating, forbid", _delegation_cases())
def test_delegating_solutions_fail_and_the_notebook_solutions_pass(
        notebook: str, function: str, cases: list, delegating: Callable, forbid: list,
        student_run: None, capsys: pytest.CaptureFixture) -> None:
    grading.check_function(delegating, cases, name=function)  # without forbid= it passed
    with pytest.raises(grading.CheckFailed, match="your solution called the library's"):
        grading.check_function(delegating, cases, name=function, forbid=forbid)
    solution = _notebook_solution(notebook, function)
    grading.check_function(solution, cases, name=function, forbid=forbid)
    assert capsys.readouterr().out.count("passed") == 2
