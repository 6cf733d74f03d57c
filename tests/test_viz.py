"""Static plots: palettes, colouring, overlays and that every figure draws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import viz  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sample(n: int = 2, h: int = 24, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, h, w, generator=g)
    masks = torch.zeros(n, h, w, dtype=torch.long)
    masks[:, 4:12, 5:20] = 3
    masks[:, 16:, :] = 1
    masks[:, 0, :] = 255
    return images, masks


def test_voc_colormap_matches_the_standard_values() -> None:
    cmap = viz.voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert cmap[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert cmap[15].tolist() == [192, 128, 128]  # VOC "person"
    assert cmap[255].tolist() == [224, 224, 192]  # VOC void


def test_palettes_by_name() -> None:
    assert set(viz.PALETTES) == {"shapes", "voc", "camvid", "binary"}
    assert viz.PALETTES["camvid"].shape == (12, 3)
    assert viz.PALETTES["binary"].tolist() == [[0, 0, 0], [255, 255, 255]]
    with pytest.raises(ValueError, match="unknown palette"):
        viz.get_palette("nope")
    with pytest.raises(ValueError, match=r"\[K, 3\]"):
        viz.get_palette(np.zeros((3, 4)))


def test_shapes_palette_comes_from_the_synthetic_module() -> None:
    synthetic = pytest.importorskip("course_lib.data.synthetic")
    np.testing.assert_array_equal(viz.PALETTES["shapes"], np.asarray(synthetic.PALETTE))
    assert len(viz.PALETTES["shapes"]) >= synthetic.NUM_CLASSES


def test_colorize_maps_labels_and_void() -> None:
    mask = torch.tensor([[0, 1], [255, 1]])
    rgb = viz.colorize(mask, "binary")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[1, 0].tolist() == viz.VOID_COLOR.tolist()
    batch = viz.colorize(torch.zeros(3, 4, 5, dtype=torch.long), "voc")
    assert batch.shape == (3, 4, 5, 3)
    with pytest.raises(ValueError, match="palette has only 2"):
        viz.colorize(torch.tensor([[2]]), "binary")
    with pytest.raises(ValueError, match="integer class indices"):
        viz.colorize(torch.tensor([[0.5]]), "binary")


def test_overlay_blends_and_keeps_void_pixels() -> None:
    image = torch.zeros(3, 2, 2)
    mask = torch.tensor([[1, 1], [255, 0]])
    out = viz.overlay(image, mask, "binary", alpha=0.5)
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(out[1, 0], [0.0, 0.0, 0.0])  # void: the plain image
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(image, mask, "binary", alpha=2)
    with pytest.raises(ValueError, match="mask is"):
        viz.overlay(image, torch.zeros(3, 3, dtype=torch.long), "binary")


def test_to_numpy_image_accepts_common_layouts() -> None:
    assert viz.to_numpy_image(torch.rand(3, 5, 6)).shape == (5, 6, 3)
    assert viz.to_numpy_image(torch.rand(4, 5, 6)).shape == (5, 6, 3)  # RGB-D
    assert viz.to_numpy_image(torch.rand(1, 5, 6)).shape == (5, 6, 3)
    u8 = viz.to_numpy_image(np.full((5, 6, 3), 255, dtype=np.uint8))
    assert u8.max() == 1.0
    normalised = viz.to_numpy_image(torch.randn(3, 5, 6) * 3)
    assert normalised.min() >= 0.0 and normalised.max() <= 1.0
    with pytest.raises(ValueError):
        viz.to_numpy_image(torch.rand(2, 3, 5, 6))


def test_segmentation_grid_has_titled_panels_and_legend() -> None:
    images, masks = _sample()
    preds = masks.clone()
    preds[preds == 255] = 0
    preds[:, 4:8, 5:10] = 2
    fig = viz.plot_segmentation_grid(images, masks, preds, class_names=["a", "b", "c", "d"],
                                     palette="voc", title="demo")
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 2 * 4
    assert [ax.get_title() for ax in axes[:4]] == ["image", "ground truth", "prediction",
                                                   "error map"]
    assert "pixel accuracy" in axes[3].get_xlabel()
    legend_texts = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"a", "b", "c", "d", "wrong pixel"} <= legend_texts
    assert viz.figure_to_png(fig).startswith(PNG_MAGIC)
    no_pred = viz.plot_segmentation_grid(images, masks)
    assert len(no_pred.get_axes()) == 2 * 2
    with pytest.raises(ValueError, match="targets"):
        viz.plot_segmentation_grid(images, masks[:1])


def test_model_predictions_puts_models_side_by_side() -> None:
    images, masks = _sample(n=3)
    preds = {"a": masks.clamp(max=3), "b": torch.zeros_like(masks)}
    fig = viz.plot_model_predictions(images, masks, preds, indices=[2, 0],
                                     class_names=["w", "x", "y", "z"], palette="voc",
                                     row_labels=["first", "second"])
    axes = fig.get_axes()
    assert len(axes) == 2 * 4
    assert [ax.get_title() for ax in axes[:4]] == ["image", "ground truth", "a", "b"]
    assert [axes[0].get_ylabel(), axes[4].get_ylabel()] == ["first", "second"]
    # the model "b" column of the first row shows class 0 everywhere (one colour)
    assert len(np.unique(axes[3].get_images()[0].get_array().reshape(-1, 3), axis=0)) == 1
    assert viz.figure_to_png(fig).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="model 'b'"):
        viz.plot_model_predictions(images, masks, {"b": masks[:2]}, indices=[0])
    with pytest.raises(ValueError, match="indices"):
        viz.plot_model_predictions(images, masks, preds, indices=[3])


class _History:
    def __init__(self) -> None:
        self.epoch = [1, 2, 3]
        self.train_loss = [1.0, 0.7, 0.5]
        self.val_loss = [1.1, 0.8, 0.7]
        self.val_miou = [0.2, 0.35, 0.4]
        self.val_pixel_accuracy = [0.5, 0.6, 0.7]
        self.lr = [1e-3, 5e-4, 1e-4]

    def as_dict(self) -> dict:
        return dict(vars(self))


@pytest.mark.parametrize("as_dict", [False, True])
def test_plot_history_draws_every_curve(as_dict: bool) -> None:
    history = _History()
    fig = viz.plot_history(history.as_dict() if as_dict else history)
    loss, metric, lr = fig.get_axes()[:3]
    assert [line.get_label() for line in loss.get_lines()] == ["train", "validation"]
    assert [line.get_label() for line in metric.get_lines()] == ["val mIoU", "val pixel accuracy"]
    np.testing.assert_allclose(metric.get_lines()[0].get_ydata(), history.val_miou)
    assert lr.get_yscale() == "linear" and loss.get_xlabel() == "epoch"


def test_plot_history_with_no_validation_and_empty() -> None:
    fig = viz.plot_history({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [],
                            "val_miou": [], "lr": [1e-3, 1e-3]})
    assert len(fig.get_axes()[0].get_lines()) == 1
    viz.plot_history({"epoch": []})  # nothing yet: still a figure
    with pytest.raises(ValueError):
        viz.plot_history(object())


def _visible_tick_labels(fig: Figure, ax: object) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # tick labels are only set when the figure is drawn
    low, high = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 13])
def test_plot_history_epoch_ticks_are_whole_numbers(epochs: int) -> None:
    # Matplotlib's default locator labels a 3-epoch run 1.00, 1.25, ..., 3.00.
    n = range(1, epochs + 1)
    fig = viz.plot_history({"epoch": list(n), "train_loss": [1 / e for e in n],
                            "val_loss": [1.2 / e for e in n], "val_miou": [0.1 * e for e in n],
                            "lr": [1e-3] * epochs})
    for ax in fig.get_axes()[:3]:
        labels = _visible_tick_labels(fig, ax)
        assert labels, ax.get_title()
        assert all(label.lstrip("\N{MINUS SIGN}-").isdigit() for label in labels), (
            ax.get_title(), labels)
        assert epochs > 7 or labels == [str(e) for e in n], labels


def test_confusion_matrix_is_row_normalised() -> None:
    cm = torch.tensor([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    fig = viz.plot_confusion_matrix(cm, ["x", "y", "z"])
    image = fig.get_axes()[0].get_images()[0].get_array()
    np.testing.assert_allclose(image[0], [0.8, 0.2, 0.0])
    np.testing.assert_allclose(image[1], [0.0, 0.0, 0.0])  # empty row stays 0, no NaN
    np.testing.assert_allclose(image[2], [0.25, 0.25, 0.5])
    ax = fig.get_axes()[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    raw = viz.plot_confusion_matrix(cm, ["x", "y", "z"], normalize=False)
    assert raw.get_axes()[0].get_images()[0].get_array().max() == 8
    with pytest.raises(ValueError, match="class names"):
        viz.plot_confusion_matrix(cm, ["x"])
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(torch.zeros(2, 3), None)


def test_plot_instances_draws_outlines_boxes_and_labels() -> None:
    image = torch.rand(3, 32, 40)
    masks = torch.zeros(2, 32, 40, dtype=torch.bool)
    masks[0, 2:10, 3:15] = True
    masks[1, 15:30, 20:35] = True
    boxes = torch.tensor([[3, 2, 15, 10], [20, 15, 35, 30]])
    fig = viz.plot_instances(image, masks, boxes, torch.tensor([4, 5]),
                             class_names=[str(i) for i in range(4)] + ["disk", "square"])
    ax = fig.get_axes()[0]
    assert len(ax.patches) == 2  # the two boxes
    texts = {t.get_text() for t in ax.texts}
    assert texts == {"disk", "square"}
    assert ax.collections  # contour lines
    with pytest.raises(ValueError, match="2 masks but 1 boxes"):
        viz.plot_instances(image, masks, boxes[:1])


def test_draw_instance_masks_keeps_the_confident_instances() -> None:
    image = torch.rand(3, 32, 40)
    masks = torch.zeros(3, 1, 32, 40)  # Mask R-CNN's [M, 1, H, W] probabilities
    masks[0, 0, 2:10, 3:15] = 0.9
    masks[1, 0, 15:30, 20:35] = 0.8
    masks[2, 0, 15:20, 2:8] = 0.7
    fig = viz.CourseFigure()
    ax = fig.subplots()
    drawn = viz.draw_instance_masks(ax, image, masks, torch.tensor([0.9, 0.2, 0.5]), title="model")
    assert drawn == 2 and ax.get_title() == "model: 2 objects"
    layers = ax.get_images()
    assert len(layers) == 3  # the grey image and one fill per kept instance
    grey = layers[0].get_array()
    np.testing.assert_allclose(grey, image.mean(0).numpy(), atol=1e-6)
    fill = layers[1].get_array()
    assert fill.shape == (32, 40, 4)
    assert fill[5, 5, 3] == pytest.approx(0.6) and fill[20, 25, 3] == 0  # opaque on the mask only
    # ground truth: bool [M, H, W], no scores: every instance is drawn
    assert viz.draw_instance_masks(fig.subplots(), image, masks[:1, 0] > 0.5) == 1
    with pytest.raises(ValueError, match="3 masks but 2 scores"):
        viz.draw_instance_masks(ax, image, masks, torch.tensor([0.9, 0.2]))
    with pytest.raises(ValueError, match=r"masks must be \[M, H, W\]"):
        viz.draw_instance_masks(ax, image, masks[:, :, :16])


def test_plot_metric_table_highlights_the_best() -> None:
    fig = viz.plot_metric_table({"otsu": {"miou": 0.3}, "kmeans": {"miou": 0.5}})
    bars = fig.get_axes()[0].patches
    assert len(bars) == 2 and bars[1].get_facecolor() != bars[0].get_facecolor()
    with pytest.raises(ValueError, match="missing"):
        viz.plot_metric_table({"a": {"miou": 1.0}, "b": {"dice": 1.0}}, metric="miou")


def test_figures_render_once_as_png_in_notebooks() -> None:
    fig = viz.plot_history(_History())
    assert fig._repr_png_().startswith(PNG_MAGIC)


def test_show_source_displays_highlighted_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    viz.show_source(viz.colorize)
    assert len(shown) == 1
    code = shown[0]
    assert isinstance(code, IPython.display.Code)
    assert "def colorize(" in code.data
    assert "<span" in code._repr_html_()  # syntax highlighted
    with pytest.raises(ValueError, match="cannot show the source"):
        viz.get_source(len)


# --------------------------------------------------------------------------------------
# show_source shows the part that teaches: input checks elided, full=True shows all
# --------------------------------------------------------------------------------------
def _shown(monkeypatch: pytest.MonkeyPatch, obj: object, **kwargs: object) -> str:
    import IPython.display

    shown: list = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    viz.show_source(obj, **kwargs)
    assert len(shown) == 1
    return shown[0].data


def test_show_source_elides_a_functions_argument_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    import ast

    from course_lib.models import fcn
    from course_lib.viz.source import ELIDED

    shown = _shown(monkeypatch, fcn.bilinear_kernel)
    full = _shown(monkeypatch, fcn.bilinear_kernel, full=True)
    check = "raise ValueError(f\"upsampling factor must be a positive integer"
    assert check in full and check not in shown and "if int(factor) != factor" not in shown
    assert f"    {ELIDED}\n" in shown  # one comment line where the check was
    for teaching in ("k = 2 * f - f % 2", "tent = (1 - (t - centre).abs() / f).clamp(min=0)",
                     "return torch.outer(tent, tent).to(dtype)", "bilinear-interpolation"):
        assert teaching in shown
    ast.parse(shown)
    assert full == viz.get_source(fcn.bilinear_kernel)  # the opt-out is the library's code

    # helper calls that only check (check_ignore_index, check_pred_range under an if), and
    # the docstring's Raises: section, go; the counting stays
    from course_lib import metrics

    shown = _shown(monkeypatch, metrics.confusion_matrix)
    assert "check_ignore_index" not in shown and "check_pred_range" not in shown
    assert "Raises:" not in shown and "Returns:" in shown
    assert "return confusion_counts(pred, target, num_classes, ignore_index)" in shown
    assert len(shown.splitlines()) < len(viz.get_source(metrics.confusion_matrix).splitlines())


def test_show_source_of_a_model_class_keeps_init_and_forward(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from course_lib.models import fcn

    shown = _shown(monkeypatch, fcn.FCN)
    full = viz.get_source(fcn.FCN)
    assert "check_channels(" in full and "check_channels(" not in shown
    assert "FCN variant must be one of" in full and "FCN variant must be one of" not in shown
    assert "Fig. 3 as code" in shown  # the figure in the docstring is kept ...
    assert "Args: see help(FCN)." in shown and "fc_kernel: fc6 kernel" not in shown  # ... its
    for teaching in ("def __init__(", "def forward(self, x: torch.Tensor)", "self.backbone = "):
        assert teaching in shown  # ... argument list is not
    assert shown.count("input checks elided") >= 1
    assert shown.count("see the library for the full code") == 1


_RULES_MODULE = '''
class Net:
    """Adds one.

    Args:
        scale: a factor.

    The idea stays.
    """

    def _check_input(self, x):
        if x < 0:
            raise ValueError("negative")

    def forward(self, x, names=()):
        # the input must be a number
        if not isinstance(x, int):
            raise TypeError("int")
        elif x > 100:
            raise ValueError("big")
        for name in names:
            if not name:
                raise ValueError("empty name")
        assert x == x
        if x > 10:
            x = 10
        else:
            raise ValueError("kept: this if does work")
        self._check_input(x)
        return x + 1


def only_checks(x):
    if x < 0:
        raise ValueError("negative")
'''


def test_teaching_source_rules(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ast
    import importlib

    from course_lib.viz.source import ELIDED, ELIDED_AGAIN, teaching_source

    (tmp_path / "rules_module.py").write_text(_RULES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("rules_module")
    shown = teaching_source(module.Net)
    ast.parse(shown)
    expected_forward = f"""    def forward(self, x, names=()):
        {ELIDED_AGAIN}
        if x > 10:
            x = 10
        else:
            raise ValueError("kept: this if does work")
        {ELIDED_AGAIN}
        return x + 1
"""
    assert shown.endswith(expected_forward), shown
    assert f"    {ELIDED}\n\n    def forward" in shown  # the _check_input method
    assert "Args: see help(Net).\n\n    The idea stays." in shown and "scale:" not in shown
    for gone in ("the input must be a number", "TypeError", "empty name", "assert"):
        assert gone not in shown
    # a function that only checks is shown whole (an elided body would say nothing)
    assert teaching_source(module.only_checks) == viz.get_source(module.only_checks)
    assert teaching_source(module) == viz.get_source(module)  # a module: whole


def test_running_mean_is_the_valid_moving_average() -> None:
    values = np.random.default_rng(0).random(23)
    np.testing.assert_allclose(viz.running_mean(values, 5),
                               np.convolve(values, np.ones(5) / 5, mode="valid"), rtol=1e-6)
    np.testing.assert_allclose(viz.running_mean(values[:3], 10), [values[:3].mean()], rtol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        viz.running_mean([], 3)


def test_plot_loss_terms_draws_each_term_smoothed_and_the_total_thicker() -> None:
    history = {"loss": [4.0, 3.0, 2.5, 2.0, 1.8, 1.5, 1.4, 1.2, 1.1, 1.0, 0.9, 0.8],
               "loss_mask": [1.0] * 12, "loss_box": [0.5, 0.4] * 6}
    fig = viz.plot_loss_terms(history, title="terms")
    ax = fig.axes[0]
    window = 2  # a fifth of 12 steps
    assert [line.get_label() for line in ax.lines] == list(history)
    assert [len(line.get_ydata()) for line in ax.lines] == [12 - window + 1] * 3
    np.testing.assert_allclose(ax.lines[0].get_ydata(), viz.running_mean(history["loss"], window))
    assert ax.lines[0].get_linewidth() > ax.lines[1].get_linewidth()
    assert ax.get_yscale() == "log" and f"moving average of {window}" in ax.get_ylabel()
    with pytest.raises(ValueError, match="no loss term"):
        viz.plot_loss_terms({}, title="nothing")
