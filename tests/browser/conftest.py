"""Browser tier: headless Chromium from the OS packages (``chromium``, ``chromium-driver``),
driven by selenium. Nothing downloads a browser: without the packages these tests skip with
the reason, and fail when ``CI`` is set (``.ci/run`` installs the packages).

Every test in this folder gets the ``browser`` marker (``-m "not browser"`` leaves them out).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from babel.core import paths
from babel.core.notebook import HEADLESS_ENV

HERE = Path(__file__).parent
LAB = paths.PROJ_ROOT / ".venv-lab"
SCREENSHOTS = paths.BUILD_DIR / "screenshots"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: JupyterLab settings of the test's own user-settings folder (the shipped defaults, from
#: lab/overrides.json, stay in force): every cell stays in the page, no news prompt.
TEST_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent == HERE:
            item.add_marker(pytest.mark.browser)


def unavailable(reason: str) -> None:
    """Skip with ``reason``; in CI (``CI`` set) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run here)")
    pytest.skip(reason)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def browser() -> Iterator:
    """A headless Chromium (1400×1000) driven through the OS's chromedriver."""
    binary = _chromium()
    driver_path = shutil.which("chromedriver") or CHROMEDRIVER
    if binary is None or not Path(driver_path).exists():
        unavailable("headless Chromium is missing: `apt-get install -y chromium "
                    "chromium-driver` (as root; .ci/run does it)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is missing from .venv: `make install` (it is a dev dependency)")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager: never fetch a driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots() -> Path:
    """``build/screenshots/`` (kept after the test: the issue's evidence)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    log: Path

    def page(self, path: str) -> str:
        """The Lab URL that opens ``path`` (relative to the root), with the token."""
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def get(self, path: str) -> dict:
        req = urllib.request.Request(f"{self.url}{path}",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


@contextlib.contextmanager
def jupyter_lab(root: Path, state: Path) -> Iterator[Lab]:
    """JupyterLab from .venv-lab on a free local port, as ``make lab`` starts it (the lab
    env's kernels and settings, default kernel ``babel``), serving ``root``; its config,
    runtime and user settings live in ``state``."""
    if not (LAB / "bin" / "jupyter").exists():
        pytest.fail("JupyterLab's environment is missing: run `make lab-install` (make test does)")
    settings = state / "config" / "lab" / "user-settings"
    for key, value in TEST_SETTINGS.items():
        f = settings / f"{key}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port, token = free_port(), uuid.uuid4().hex
    env = dict(os.environ, JUPYTER_PATH=str(LAB / "share" / "jupyter"),
               JUPYTER_RUNTIME_DIR=str(state / "runtime"),
               JUPYTER_CONFIG_DIR=str(state / "config"), HF_HUB_OFFLINE="1",
               OMP_WAIT_POLICY="PASSIVE")
    env.pop(HEADLESS_ENV, None)  # a frontend is attached: the explorer is a widget
    log = state / "lab.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(LAB / "bin" / "jupyter"), "lab", "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}",
             "--MappingKernelManager.default_kernel_name=babel", "--allow-root"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.time() + 90
        while True:
            try:
                lab.get("/api/status")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail("jupyter lab did not start: " + log.read_text()[-2000:])
                time.sleep(0.5)
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture
def start_lab():
    """:func:`jupyter_lab`, for a test to start with its own root folder."""
    return jupyter_lab
