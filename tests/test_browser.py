"""JupyterLab in headless Chromium: run a notebook, move a widget slider, see the picture change.

Starts JupyterLab on 127.0.0.1 (random port and token, ``COURSE_PROFILE=quick``), opens the
notebook with Playwright driving Debian's ``/usr/bin/chromium``, runs all cells from the
menu, presses ArrowRight on the first ``.widget-slider`` and checks that the readout and the
widget's ``<img>`` change. A screenshot goes to ``artifacts/browser/``.

Without Chromium (or Playwright) the test is skipped, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "artifacts" / "browser"
DEFAULT_NOTEBOOK = "notebooks/00_introduction.ipynb"
TOY = "toy"  # a tiny notebook written to a temporary folder (a PredictionBrowser)
IDLE = "Python 3 (ipykernel) | Idle"
# Run All Cells of the target notebook (quick profile); a loaded 2-core machine is slow
RUN_TIMEOUT_MS = int(float(os.environ.get("COURSE_BROWSER_TIMEOUT", "600")) * 1000)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOY_SOURCE = """import torch
from torch import nn
from course_lib.widgets import PredictionBrowser

torch.manual_seed(0)
model = nn.Conv2d(3, 4, 3, padding=1)
data = [(torch.rand(3, 32, 32), torch.randint(0, 4, (32, 32))) for _ in range(4)]
PredictionBrowser(model, data, num_classes=4)"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _targets() -> list[str]:
    """The notebooks to drive: notebook 00 once it exists, else the toy notebook."""
    chosen = os.environ.get("COURSE_BROWSER_NOTEBOOK")
    if chosen:
        return [chosen]
    return [DEFAULT_NOTEBOOK] if (ROOT / DEFAULT_NOTEBOOK).is_file() else [TOY]


@pytest.fixture
def lab_root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """(JupyterLab root folder, notebook path relative to it)."""
    target = request.param
    if target == TOY:
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_markdown_cell("# Toy widget notebook"),
                          nbformat.v4.new_code_cell(TOY_SOURCE)]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 "
                                           "(ipykernel)", "language": "python"}
        folder = tmp_path / "lab"
        folder.mkdir()
        nbformat.write(notebook, folder / "toy_widget.ipynb")
        return folder, "toy_widget.ipynb"
    if not (ROOT / target).is_file():
        pytest.fail(f"notebook {target} not found")
    return ROOT, target


@pytest.fixture
def jupyter_lab(lab_root: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A running JupyterLab; yields (base url, notebook path). Always shut down after."""
    _chromium()  # before starting anything
    root, notebook = lab_root
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path / "jupyter"
    env = dict(os.environ, COURSE_PROFILE="quick", JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_CONFIG_DIR=str(home / "config"), PYTHONPATH=str(ROOT))
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        # no network from the server: no news feed, no update check, no PyPI extension manager
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
        command.append("--allow-root")
    notification = home / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the screenshot
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    # render every cell (no windowing), so the widget exists in the page wherever it is
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    # never write the executed notebook (with outputs) back into the repository
    docmanager = home / "settings" / "@jupyterlab" / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    original = (root / notebook).read_bytes()
    log = (tmp_path / "jupyter.log").open("w")
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail("JupyterLab exited early:\n" + (tmp_path / "jupyter.log").read_text())
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start within 60 s:\n"
                                + (tmp_path / "jupyter.log").read_text())
                time.sleep(0.3)
        yield f"{base}/lab/tree/{notebook}?reset&token={token}", notebook
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
        if (root / notebook).read_bytes() != original:  # a save slipped through: undo it
            (root / notebook).write_bytes(original)
            pytest.fail(f"JupyterLab saved {notebook} during the test (restored it)")


def _chromium() -> None:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed")


@pytest.mark.parametrize("lab_root", _targets(), indirect=True)
def test_widget_slider_changes_the_picture(jupyter_lab: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    url, notebook = jupyter_lab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{Path(notebook).stem}.png"
    (SCREENSHOTS / f"{Path(notebook).stem}-failure.png").unlink(missing_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(url)
                # keys sent before the kernel is idle are lost
                page.get_by_text(IDLE).first.wait_for(timeout=60_000)
                page.locator(".lm-MenuBar-item").get_by_text("Run", exact=True).click()
                page.locator(".lm-Menu-content").get_by_text("Run All Cells", exact=True).click()
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
                page.wait_for_function(
                    "([el, old]) => el.innerText.trim() !== old",
                    arg=[readout.element_handle(), before_value], timeout=10_000)
                after_value = readout.inner_text().strip()
                page.wait_for_function(
                    "([img, old]) => img.getAttribute('src') !== old",
                    arg=[picture.element_handle(), before_src], timeout=30_000)
                after_src = picture.get_attribute("src")
                page.wait_for_timeout(300)
                page.screenshot(path=str(shot), full_page=False)
            except Exception:
                page.screenshot(path=str(SCREENSHOTS / f"{Path(notebook).stem}-failure.png"))
                raise
        finally:
            browser.close()
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
