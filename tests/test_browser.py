"""JupyterLab in headless Chromium: every widget class driven by its first control.

Starts JupyterLab on 127.0.0.1 (random port and token, ``COURSE_PROFILE=quick``) and drives it
with Playwright through Debian's ``/usr/bin/chromium``:

- the **widget gallery** (``tests/widget_gallery.ipynb``: every widget class of
  ``course_lib.widgets`` once, on tiny data): after Run All Cells, each widget's first control
  is moved (a slider one step, a drop-down to its next option, a button clicked) and its
  picture must change; a screenshot of each widget goes to ``artifacts/browser/<Class>.png``;
- a course notebook (notebook 00, or ``COURSE_BROWSER_NOTEBOOK``): run from the menu, its
  first slider moved, the readout and the picture must change (``artifacts/browser/<name>.png``).

JupyterLab serves a copy of the notebook from a temporary folder: nothing it saves reaches the
repository. Each browser session runs in a thread of its own (see ``_in_thread``).

Without Chromium (or Playwright) the browser tests skip, except under ``CI=true`` where they
fail. Whether the gallery covers every widget class is checked without a browser.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import os
import pkgutil
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "artifacts" / "browser"
DEFAULT_NOTEBOOK = "notebooks/00_introduction.ipynb"
GALLERY = "tests/widget_gallery.ipynb"
MARKER = re.compile(r'print\("\[gallery widget: (\w+)\]"\)')
IDLE = "Python 3 (ipykernel) | Idle"
# Run All Cells of the target notebook (quick profile); a loaded 2-core machine is slow
RUN_TIMEOUT_MS = int(float(os.environ.get("COURSE_BROWSER_TIMEOUT", "600")) * 1000)
# The controls a widget can start with, in the order they appear in the page.
CONTROLS = ".widget-slider, .widget-dropdown select, .widget-toggle-buttons, button"


def _gallery_widgets() -> list[str]:
    """The widget classes the gallery shows, in its order (from its marker lines)."""
    notebook = nbformat.read(ROOT / GALLERY, as_version=4)
    return [m.group(1) for cell in notebook.cells if cell.cell_type == "code"
            for m in MARKER.finditer(cell.source)]


def _widget_classes() -> set[str]:
    """Every Explorer subclass defined in the course_lib.widgets package and its modules."""
    import importlib

    import course_lib.widgets as package
    from course_lib.widgets.base import Explorer

    modules = [package] + [importlib.import_module(f"{package.__name__}.{info.name}")
                           for info in pkgutil.iter_modules(package.__path__)]
    return {cls.__name__ for module in modules
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Explorer) and cls is not Explorer
            and cls.__module__.startswith(package.__name__)}


def _check_gallery_covers_every_widget() -> None:
    shown = _gallery_widgets()
    missing = _widget_classes() - set(shown)
    assert not missing, (f"{GALLERY} shows no {', '.join(sorted(missing))}: add a cell that "
                         f"prints '[gallery widget: Name]' and displays one")
    assert len(shown) == len(set(shown)), f"a widget appears twice in {GALLERY}: {shown}"


def test_every_widget_class_is_in_the_gallery() -> None:
    assert len(_gallery_widgets()) >= 10
    _check_gallery_covers_every_widget()


def test_a_widget_class_without_a_gallery_cell_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new Explorer in one of the widget modules, with no gallery cell, is named."""
    import course_lib.widgets.attention as module
    from course_lib.widgets.base import Explorer

    unshown = type("UnshownExplorer", (Explorer,), {"__module__": module.__name__})
    monkeypatch.setattr(module, "UnshownExplorer", unshown, raising=False)
    with pytest.raises(AssertionError, match="shows no UnshownExplorer"):
        _check_gallery_covers_every_widget()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


def _browser_available() -> None:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(home: Path) -> None:
    settings = home / "settings" / "@jupyterlab"
    for plugin, text in (
        # no "get notified about Jupyter news?" toast over the screenshots
        ("apputils-extension/notification", '{"fetchNews": "false"}'),
        # render every cell (no windowing), so each widget exists in the page wherever it is
        ("notebook-extension/tracker", '{"windowingMode": "none"}'),
        # never write the executed notebook (with outputs) back into the repository
        ("docmanager-extension/plugin", '{"autosave": false}'),
    ):
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@contextlib.contextmanager
def _jupyter_lab(notebook: str, tmp: Path) -> Iterator[str]:
    """A JupyterLab serving a copy of ``notebook``; yields the URL that opens it.

    The copy (same relative path, under ``tmp``) keeps the repository's notebook untouched
    whatever JupyterLab saves, and never overwrites an edit made in the working tree meanwhile.
    The kernel imports ``course_lib`` from the repository (``PYTHONPATH``) and its data from
    the repository's ``data/`` (``config.data_dir``).
    """
    _browser_available()  # before starting anything
    port, token = _free_port(), secrets.token_hex(16)
    home, served = tmp / "jupyter", tmp / "served"
    (served / notebook).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / notebook, served / notebook)
    env = dict(os.environ, COURSE_PROFILE="quick", JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_CONFIG_DIR=str(home / "config"), PYTHONPATH=str(ROOT))
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={served}", "--ServerApp.port_retries=0",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        # no network from the server: no news feed, no update check, no PyPI extension manager
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
        command.append("--allow-root")
    _write_settings(home)
    log_path = tmp / "jupyter.log"
    log = log_path.open("w")
    process = subprocess.Popen(command, cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail("JupyterLab exited early:\n" + log_path.read_text())
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start within 60 s:\n" + log_path.read_text())
                time.sleep(0.3)
        yield f"{base}/lab/tree/{notebook}?reset&token={token}"
    finally:
        # our own process group: the server and the kernels it started
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
        log.close()


def _run_all_cells(page) -> None:
    # keys and clicks sent before the kernel is idle are lost
    page.get_by_text(IDLE).first.wait_for(timeout=60_000)
    page.locator(".lm-MenuBar-item").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu-content").get_by_text("Run All Cells", exact=True).click()


@contextlib.contextmanager
def _chromium_page(height: int = 1000) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": height})
        finally:
            browser.close()


Result = TypeVar("Result")


def _in_thread(function: Callable[..., Result], *args: object) -> Result:
    """Run ``function`` in a thread of its own, to its end.

    Playwright's sync API refuses a thread where an asyncio loop runs: under pytest with nbval
    or xdist one may run in the main thread, and so does any Playwright session still open in
    it. Each browser session therefore opens and closes inside one fresh thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


# ----------------------------------------------------------------------------------------
# The gallery: one JupyterLab session, one test per widget class
# ----------------------------------------------------------------------------------------
@dataclass
class WidgetRun:
    """What moving one widget's first control did in the browser."""

    done: str = ""  # the control moved, e.g. "slider 0 -> 1"
    before: str | None = None  # the picture's src before ...
    after: str | None = None  # ... and after
    error: str | None = None  # why driving it failed (a failure screenshot is saved)


def _drive_widget(page, name: str) -> WidgetRun:
    run = WidgetRun()
    area = _widget_cell(page, name).locator(".jp-Cell-outputArea")
    picture = area.locator("img.widget-image").first
    (SCREENSHOTS / f"{name}-failure.png").unlink(missing_ok=True)
    try:
        picture.scroll_into_view_if_needed()
        run.before = picture.get_attribute("src")
        run.done = _move_first_control(page, area)
        page.wait_for_function("([img, old]) => img.getAttribute('src') !== old",
                               arg=[picture.element_handle(), run.before], timeout=60_000)
        run.after = picture.get_attribute("src")
        page.wait_for_timeout(300)
        area.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    except Exception as error:  # reported by this widget's test, the others still run
        run.error = f"{type(error).__name__}: {error}"
        with contextlib.suppress(Exception):
            area.screenshot(path=str(SCREENSHOTS / f"{name}-failure.png"))
    return run


def _drive_gallery(url: str, names: list[str]) -> dict[str, WidgetRun]:
    # tall enough for the tallest widget: a screenshot beyond the window is blank
    with _chromium_page(height=1600) as page:
        page.goto(url)
        _run_all_cells(page)
        for name in names:
            _widget_cell(page, name).locator("img.widget-image").first.wait_for(
                state="attached", timeout=RUN_TIMEOUT_MS)
        page.get_by_text(IDLE).first.wait_for(timeout=RUN_TIMEOUT_MS)
        return {name: _drive_widget(page, name) for name in names}


@pytest.fixture(scope="module")
def gallery_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, WidgetRun]:
    """The gallery run in JupyterLab, then each widget's first control moved in turn."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with _jupyter_lab(GALLERY, tmp_path_factory.mktemp("lab")) as url:
        return _in_thread(_drive_gallery, url, _gallery_widgets())


def _widget_cell(page, name: str):
    return page.locator(".jp-CodeCell").filter(has_text=f"[gallery widget: {name}]")


def _move_first_control(page, area) -> str:
    """Move the first control inside ``area``; return what was done (for the report)."""
    control = area.locator(CONTROLS).first
    control.scroll_into_view_if_needed()
    kind = control.evaluate("e => e.matches('.widget-slider') ? 'slider' : e.tagName === 'SELECT'"
                            " ? 'select' : e.matches('.widget-toggle-buttons') ? 'toggles' :"
                            " 'button'")
    if kind == "slider":
        readout = control.locator(".widget-readout")
        before = readout.inner_text().strip()
        handle = control.locator(".noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        with contextlib.suppress(Exception):  # at its maximum: step left instead
            page.wait_for_function("([el, old]) => el.innerText.trim() !== old",
                                   arg=[readout.element_handle(), before], timeout=3_000)
        if readout.inner_text().strip() == before:
            handle.focus()
            page.keyboard.press("ArrowLeft")
        page.wait_for_function("([el, old]) => el.innerText.trim() !== old",
                               arg=[readout.element_handle(), before], timeout=10_000)
        return f"slider {before} -> {readout.inner_text().strip()}"
    if kind == "select":
        count, index = control.evaluate("e => [e.options.length, e.selectedIndex]")
        assert count > 1, "a drop-down with a single option cannot be moved"
        control.select_option(index=(index + 1) % count)
        return f"drop-down option {index} -> {(index + 1) % count}"
    if kind == "toggles":
        choice = control.locator("button:not(.mod-active)").first
        label = choice.inner_text().strip()
        choice.click()
        return f"toggle buttons -> {label}"
    label = control.inner_text().strip()
    control.click()
    return f"button {label!r} clicked"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("name", _gallery_widgets())
def test_widget_picture_follows_its_first_control(gallery_runs: dict[str, WidgetRun],
                                                  name: str) -> None:
    run = gallery_runs[name]
    assert run.error is None, f"{name}: {run.done or 'its first control'} failed: {run.error}"
    assert run.before and run.after != run.before, f"{name}: {run.done} left the picture as it was"
    assert (SCREENSHOTS / f"{name}.png").stat().st_size > 5_000


# ----------------------------------------------------------------------------------------
# A course notebook, as a student runs it
# ----------------------------------------------------------------------------------------
def _drive_course_notebook(url: str, shot: Path) -> tuple[str, str, str | None, str | None]:
    """Run All Cells, move the first slider one step: its readout and picture, before/after."""
    with _chromium_page() as page:
        try:
            page.goto(url)
            _run_all_cells(page)
            slider = page.locator(".widget-slider").first
            slider.wait_for(state="attached", timeout=RUN_TIMEOUT_MS)
            slider.scroll_into_view_if_needed()
            slider.wait_for(timeout=10_000)
            box = slider.locator("xpath=ancestor::div[contains(@class, "
                                 "'jp-OutputArea-output')][1]")
            picture = box.locator("img").first
            picture.wait_for(timeout=30_000)
            before_src = picture.get_attribute("src")
            readout = slider.locator(".widget-readout")
            before_value = readout.inner_text().strip()
            slider.locator(".noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("([el, old]) => el.innerText.trim() !== old",
                                   arg=[readout.element_handle(), before_value], timeout=10_000)
            after_value = readout.inner_text().strip()
            page.wait_for_function("([img, old]) => img.getAttribute('src') !== old",
                                   arg=[picture.element_handle(), before_src], timeout=30_000)
            after_src = picture.get_attribute("src")
            page.wait_for_timeout(300)
            page.screenshot(path=str(shot), full_page=False)
        except Exception:
            page.screenshot(path=str(shot.with_name(f"{shot.stem}-failure.png")))
            raise
    return before_value, after_value, before_src, after_src


@pytest.mark.browser
@pytest.mark.slow
def test_course_notebook_slider_changes_the_picture(tmp_path: Path) -> None:
    notebook = os.environ.get("COURSE_BROWSER_NOTEBOOK", DEFAULT_NOTEBOOK)
    if not (ROOT / notebook).is_file():
        pytest.fail(f"notebook {notebook} not found")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{Path(notebook).stem}.png"
    (SCREENSHOTS / f"{Path(notebook).stem}-failure.png").unlink(missing_ok=True)
    with _jupyter_lab(notebook, tmp_path) as url:
        before_value, after_value, before_src, after_src = _in_thread(
            _drive_course_notebook, url, shot)
    assert int(after_value) == int(before_value) + 1
    assert after_src and after_src != before_src
    assert shot.stat().st_size > 10_000


def test_chromium_policy_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing Chromium: a skip on a laptop, a failure in CI."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
        _unavailable("no chromium")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        _unavailable("no chromium")
