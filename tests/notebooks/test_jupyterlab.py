"""JupyterLab starts (it imports the i18n package Babel) and its project kernel imports *our* babel.

JupyterLab lives in its own environment (.venv-lab, `make lab-install`); the kernel `babel`
registered there runs .venv's interpreter, where `babel` is this repository's package. The test
starts the real server headless, opens the Lab page, starts a `babel` kernel through the REST
API, runs code over the kernel's websocket and checks `babel.__file__` and one call.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from babel.core import paths

LAB = paths.PROJ_ROOT / ".venv-lab"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def _run_code(port: int, token: str, kernel_id: str, code: str, timeout: float = 60) -> str:
    from tornado import ioloop, websocket
    from tornado.httpclient import HTTPRequest

    async def go() -> str:
        req = HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels",
                          headers={"Authorization": f"token {token}"})
        ws = await websocket.websocket_connect(req)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))
        out = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            raw = await ws.read_message()
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("kernel error: " + " ".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        ws.close()
        return "".join(out)

    return ioloop.IOLoop.current().run_sync(go, timeout=timeout + 5)



def test_jupyterlab_runs_project_kernel_with_our_babel(tmp_path: Path):
    if not (LAB / "bin" / "jupyter").exists():
        pytest.fail("JupyterLab's environment is missing: run `make lab-install` (make test does)")
    # the server side really imports the i18n Babel (jupyterlab_server needs it)
    probe = subprocess.run([str(LAB / "bin" / "python"), "-c",
                            "import babel, jupyterlab_server; print(babel.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "site-packages" in probe.stdout and str(paths.PROJ_ROOT / "babel") not in probe.stdout
    port, token = _free_port(), uuid.uuid4().hex
    env = dict(os.environ, JUPYTER_PATH=str(LAB / "share" / "jupyter"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    server = subprocess.Popen(
        [str(LAB / "bin" / "jupyter"), "lab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={paths.PROJ_ROOT}",
         "--MappingKernelManager.default_kernel_name=babel", "--allow-root"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=paths.PROJ_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if _get(f"{base}/api/status", token)[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            server.kill()
            pytest.fail("jupyter lab did not start: " + server.stdout.read().decode()[-2000:])
        status, page = _get(f"{base}/lab", token)
        assert status == 200 and b"JupyterLab" in page
        specs = json.loads(_get(f"{base}/api/kernelspecs", token)[1])
        assert "babel" in specs["kernelspecs"]
        # the lab env's shipped defaults (lab/overrides.json): .py opens as a notebook, no autosave
        docmanager = json.loads(_get(
            f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin", token)[1])
        defaults = {k: v.get("default") for k, v in docmanager["schema"]["properties"].items()}
        assert defaults["defaultViewers"]["python"] == "Jupytext Notebook"
        assert defaults["autosave"] is False
        req = urllib.request.Request(f"{base}/api/kernels", method="POST",
                                     data=json.dumps({"name": "babel"}).encode(),
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            kernel = json.loads(r.read())
        code = ("import json, babel, babel.data.languages as L\n"
                "print(json.dumps({'file': babel.__file__, 'fr': L.get_language('fr').family}))")
        out = _run_code(port, token, kernel["id"], code)
        got = json.loads(out.strip().splitlines()[-1])
        assert Path(got["file"]).resolve() == (paths.PROJ_ROOT / "babel" / "__init__.py").resolve()
        assert got["fr"] == "Indo-European"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    assert sys.executable  # the test itself ran in .venv


def test_make_lab_keeps_tracked_files_as_they_are():
    """`make lab` sends interactive runs' figures under build/ and installs the shipped Lab
    defaults (no autosave: parameter edits stay in the browser until saved on purpose)."""
    dry = subprocess.run(["make", "-n", "lab", "lab-install", "-W", "lab/overrides.json"],
                         capture_output=True, text=True, cwd=paths.PROJ_ROOT, check=True).stdout
    assert f"BABEL_FIGURES_DIR={paths.BUILD_DIR / 'figures' / 'lab'} " in dry
    assert "lab/overrides.json .venv-lab/share/jupyter/lab/settings/overrides.json" in dry
    shipped = json.loads((paths.PROJ_ROOT / "lab" / "overrides.json").read_text())
    assert shipped["@jupyterlab/docmanager-extension:plugin"]["autosave"] is False
