"""The loss explorer: its state against the library's losses, its widget, its static fallback,
and the widget in JupyterLab in a real browser (headless Chromium driven by Selenium)."""
import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import numpy as np
import pytest
from autograd import grad
from PIL import Image

import sandbox
from sandbox.views.explorer import (LossExplorer, default_box, explorer_state, loss_explorer,
                              plot_explorer_state, slider_ranges, static_figure, values_table_html)
from sandbox.optim.starts import random_box_pairs

from helpers import ROOT

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TARGET = [-1.0, -0.5, 1.0, 0.5]  # as in notebooks/04_loss_explorer.ipynb, which the browser test runs


def png_size(data):
    """(width, height) of a PNG given as bytes or base64 text; fails if it is no PNG."""
    if isinstance(data, str):
        data = base64.b64decode(data)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


# The state: plain functions, no widgets.
@pytest.mark.parametrize("seed", range(3))
def test_explorer_values_are_the_library_losses(seed):
    pred, target = random_box_pairs(4, seed=seed)
    specs = [*sandbox.LOSSES, "l1:coords=cxcywh", "alpha_iou:alpha=2"]
    for box, target_box in zip(pred, target):
        cx, cy, w, h = sandbox.box_convert(box, "xyxy", "cxcywh")
        state = explorer_state(cx, cy, w, h, target=target_box, losses=specs)
        assert list(state.values) == specs
        for spec in specs:
            assert state.values[spec] == pytest.approx(float(sandbox.get_loss(spec)(box, target_box)),
                                                       rel=1e-12, abs=1e-12)
        assert state.iou == pytest.approx(float(sandbox.iou(box, target_box)))
        assert state.giou == pytest.approx(float(sandbox.giou(box, target_box)))


def test_explorer_gradients_are_autograds_with_respect_to_the_corners():
    state = explorer_state(0.3, 0.2, 1.5, 0.8, target=TARGET, losses=["giou", "l2"])
    box = sandbox.box_convert(np.array([0.3, 0.2, 1.5, 0.8]), "cxcywh", "xyxy")
    for name in ["giou", "l2"]:
        expected = grad(lambda b: sandbox.get_loss(name)(b, np.array(TARGET)))(box)
        np.testing.assert_allclose(state.gradients[name], expected, rtol=1e-12)


def test_start_box_is_apart_so_the_iou_loss_is_flat_and_giou_pulls_the_near_edge_in():
    state = explorer_state(*default_box(TARGET), target=TARGET, losses=["iou", "giou"])
    assert state.iou == 0.0
    assert not np.any(state.gradients["iou"])
    x1 = 0  # the start is right of the target: its left edge is the near one
    assert -state.gradients["giou"][x1] < 0


@pytest.mark.parametrize("arguments, message", [
    (dict(losses=["giou", "nope"]), "unknown loss 'nope'"),
    (dict(losses=["l1:coords=polar"]), "coords"),
    (dict(losses=[]), "at least one loss"),
    (dict(target=[0, 0, 0, 1]), "target"),
    (dict(target=[1, 0, 0, 1]), "target"),
    (dict(target=[[0, 0, 1, 1], [0, 0, 2, 2]]), "one target box"),
    (dict(box=(0, 0, -1, 1)), "positive width and height"),
])
def test_bad_input_fails_before_any_widget_is_made(arguments, message, monkeypatch):
    monkeypatch.setattr(LossExplorer, "_build", lambda *_: pytest.fail("widgets were made"))
    with pytest.raises(ValueError, match=message):
        loss_explorer(**arguments)


def test_explorer_state_refuses_a_box_without_size():
    with pytest.raises(ValueError, match="predicted box"):
        explorer_state(0, 0, 0, 1, target=TARGET, losses=["giou"])


def test_arrows_on_every_edge_that_moves_and_a_note_where_the_gradient_is_zero():
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation
    state = explorer_state(*default_box(TARGET), target=TARGET, losses=["giou", "iou"])
    ax = Figure().subplots()
    arrows = [a for a in plot_explorer_state(ax, state, "giou") if isinstance(a, Annotation)]
    assert len(arrows) == int(np.count_nonzero(state.gradients["giou"])) == 4
    ax = Figure().subplots()
    drawn = plot_explorer_state(ax, state, "iou")
    assert not [a for a in drawn if isinstance(a, Annotation)]
    assert "exactly 0" in drawn[-1].get_text()


def test_values_table_lists_every_loss_with_its_value():
    state = explorer_state(0.5, 0.0, 2.0, 1.0, target=TARGET, losses=["giou", "l1:coords=cxcywh"])
    html = values_table_html(state, arrows="giou")
    assert "loss-row-giou" in html and "loss-row-l1-coords-cxcywh" in html
    assert f"{state.values['giou']:.4f}" in html and "arrows" in html


def test_static_figure_has_a_panel_per_box_and_the_values_below():
    fig = static_figure(TARGET, ["giou", "iou"])
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 4
    words = " ".join(t.get_text() for ax in fig.axes for t in ax.texts).split()
    assert "giou" in words and "iou" in words


# The widget, driven from Python.
def test_explorer_displays_the_widget_and_a_static_png_in_one_output():
    pytest.importorskip("ipywidgets")
    explorer = loss_explorer(target=TARGET, losses=["giou", "iou"])
    bundle = explorer._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == explorer.widget.model_id
    width, height = png_size(bundle["image/png"])
    assert 400 < width < 1600 and 150 < height < 800
    assert "static view" in bundle["text/plain"]


def test_moving_a_slider_updates_the_values_and_the_figure():
    pytest.importorskip("ipywidgets")
    explorer = loss_explorer(target=TARGET, losses=["giou", "iou"])
    table, image = explorer.table.value, explorer.image.value
    explorer.sliders["cx"].value = 0.5
    expected = explorer_state(0.5, *default_box(TARGET)[1:], target=TARGET, losses=["giou", "iou"])
    assert explorer.state.values == expected.values
    assert f"{expected.values['giou']:.4f}" in explorer.table.value and explorer.table.value != table
    assert explorer.image.value != image
    png_size(explorer.image.value)


def test_picking_losses_changes_the_rows_and_the_arrows_follow():
    pytest.importorskip("ipywidgets")
    explorer = loss_explorer(target=TARGET, losses=["giou", "iou"])
    assert explorer.arrows.value == "giou"
    explorer.picker.value = ("iou", "diou")
    assert list(explorer.state.values) == ["iou", "diou"]
    assert "loss-row-diou" in explorer.table.value and "loss-row-giou" not in explorer.table.value
    assert explorer.arrows.options == ("iou", "diou") and explorer.arrows.value == "iou"
    explorer.picker.value = ()
    assert "pick at least one loss" in explorer.table.value


def test_without_ipywidgets_the_explorer_is_the_static_figure(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets raises ImportError
    explorer = loss_explorer(target=TARGET, losses=["giou"])
    bundle = explorer._repr_mimebundle_()
    assert explorer.widget is None and WIDGET_VIEW not in bundle
    png_size(bundle["image/png"])


# The widget in JupyterLab, in headless Chromium.
BROWSER_BUDGET = 240  # seconds for the whole browser test, every wait included
INSTALL = ("the explorer's browser test needs Debian's Chromium and its driver: make test installs them "
           "where it can, or apt-get install chromium chromium-driver")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Deadline:
    """One time budget shared by every wait of a test."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            pytest.fail("the browser test ran out of its time budget")
        return left


@contextlib.contextmanager
def jupyterlab(tmp_path):
    """JupyterLab from this interpreter's environment on a free loopback port with a token,
    serving a copy of notebooks/, with its own settings (no news, no update checks); yields
    ``(url, token, log)`` and shuts the server down afterwards."""
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    settings = tmp_path / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),  # extensions and kernels: sys.prefix
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "IPYTHONDIR": str(tmp_path / "ipython")}
    port, token = free_port(), uuid.uuid4().hex
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI runs as root on a fresh machine; JupyterLab refuses root unless told
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, token, log
    finally:
        stop_process_group(server)


def stop_process_group(process):
    """Terminate a process started with ``start_new_session=True`` and all it started."""
    for sig, wait in [(signal.SIGTERM, 15), (signal.SIGKILL, 5)]:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            # The kernels JupyterLab started are in its group; make sure none is left.
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def chromium_paths():
    """Debian's Chromium and chromedriver; the test fails, never skips, when either is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if binary is None or driver is None:
        missing = " and ".join(name for name, path in [("chromium", binary), ("chromedriver", driver)]
                               if path is None)
        pytest.fail(f"{missing} not found; {INSTALL}")
    return binary, driver


@contextlib.contextmanager
def chromium(tmp_path, binary, driver_path):
    """Headless Chromium driven through chromedriver, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium'}"]:
        options.add_argument(argument)
    # An explicit driver path, so that Selenium Manager never tries to download one.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path,
                                              log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_explorer_in_jupyterlab_moves_with_its_slider(tmp_path):
    binary, driver_path = chromium_paths()
    with jupyterlab(tmp_path) as (url, token, log), chromium(tmp_path, binary, driver_path) as driver:
        drive_the_explorer(driver, url, token, log, tmp_path)


def drive_the_explorer(driver, url, token, log, tmp_path):
    """Open the explorer notebook, run it, move the centre-x slider, check the GIoU loss moves."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    deadline = Deadline(BROWSER_BUDGET)
    screenshot = tmp_path / "explorer.png"

    def wait_for(condition, what):
        try:
            return WebDriverWait(driver, deadline.left(), poll_frequency=0.25,
                                 ignored_exceptions=(WebDriverException,)).until(lambda d: condition())
        except Exception:
            driver.save_screenshot(str(screenshot))
            pytest.fail(f"timed out waiting for {what}; screenshot {screenshot}; "
                        f"JupyterLab's log:\n{log.read_text()[-2000:]}")

    def css(selector):
        return driver.find_elements(By.CSS_SELECTOR, selector)

    def command(menu, data_command):
        """Click a menu of the menu bar, then one of its items."""
        wait_for(lambda: [m for m in css(".lm-MenuBar-item") if m.text.strip() == menu], f"the {menu} menu")
        [m for m in css(".lm-MenuBar-item") if m.text.strip() == menu][0].click()
        item = wait_for(lambda: css(f'.lm-Menu-item[data-command="{data_command}"]'), data_command)
        item[0].click()

    def body_text():
        return driver.find_element(By.TAG_NAME, "body").text

    def giou_value():
        cells = css(".loss-explorer-values .loss-row-giou .loss-value")
        return cells[0].text.strip() if cells else None

    driver.get(f"{url}/lab/tree/04_loss_explorer.ipynb?token={token}")
    wait_for(lambda: css(".jp-Notebook .jp-Cell"), "the notebook to open")
    wait_for(lambda: "Idle" in driver.find_element(By.TAG_NAME, "body").text, "the kernel to start")
    # The committed outputs, before any cell runs: JupyterLab does not render widgets in an
    # untrusted notebook, so the explorer's output shows its static PNG, not an error.
    wait_for(lambda: css(".jp-OutputArea-output img") or "Error displaying widget" in body_text(),
             "the saved outputs")
    driver.save_screenshot(str(tmp_path / "opened.png"))
    assert "Error displaying widget" not in body_text()
    # Start from a notebook without outputs, so the widget read below is the one this run makes.
    command("Edit", "editmenu:clear-all")
    wait_for(lambda: not css(".loss-explorer-values"), "the outputs to clear")
    command("Run", "runmenu:run-all")
    wait_for(giou_value, "the explorer's table of values")
    before = giou_value()

    handle = wait_for(lambda: css(".loss-explorer-cx .noUi-handle"), "the centre-x slider")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.click()
    presses = 6
    for _ in range(presses):
        handle.send_keys(Keys.ARROW_LEFT)  # one step each, toward the target
    cx, cy, width, height = default_box(TARGET)
    cx -= presses * slider_ranges(TARGET)["cx"][2]
    expected = explorer_state(cx, cy, width, height, target=TARGET, losses=["giou"]).values["giou"]
    wait_for(lambda: giou_value() == f"{expected:.4f}",
             f"the GIoU loss to show {expected:.4f}, its value at centre x {cx:.2f}")
    after = giou_value()
    widget = css(".loss-explorer")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", widget)
    driver.save_screenshot(str(screenshot))
    widget.screenshot(str(tmp_path / "explorer-widget.png"))  # the widget alone

    assert "Error displaying widget" not in body_text()
    assert float(after) < float(before)
    assert png_size(screenshot.read_bytes())
