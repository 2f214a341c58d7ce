"""The Procfile's web process (gunicorn with portal/gunicorn.conf.py), as it runs.

It masks credentials (signed file links, invitation links, codes, bytedToken) in its logs,
answers an oversized upload with 413 before the body arrives, and keeps its control socket in
the portal's var folder.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core import signing

from sandbox.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(settings.BASE_DIR)


@dataclass
class WebProcess:
    base_url: str
    process: subprocess.Popen[str]

    def stop(self) -> str:
        """Stops the server; its output (the access log) so far."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=15)
        return output


def _procfile_web_command(port: int) -> list[str]:
    """The Procfile's ``web:`` command, run by this interpreter on ``port``."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = shlex.split(line.removeprefix("web:"))
    assert command[0] == "gunicorn"
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", "gunicorn", *command[1:]]


def _runtime_dir(tmp_path: Path) -> Path:
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)
    return runtime


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebProcess]:
    port = free_port()
    environment = {
        **os.environ,
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        # gunicorn's own default place for its control socket, shared by all of a user's servers.
        "XDG_RUNTIME_DIR": str(_runtime_dir(tmp_path)),
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and the Procfile's command
        _procfile_web_command(port),
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = WebProcess(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{server.base_url}/healthz", timeout=5)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"gunicorn did not start:\n{server.stop()}")
            time.sleep(0.1)
    yield server
    if process.poll() is None:
        server.stop()


def test_the_access_log_masks_the_token_of_signed_file_links(web: WebProcess):
    token = signing.dumps({"n": "assets/portrait.jpg", "e": int(time.time()) + 900})
    link = f"/files/{token}/portrait.jpg"
    requests.get(f"{web.base_url}{link}", timeout=10)
    requests.get(f"{web.base_url}/healthz", headers={"Referer": link}, timeout=10)

    output = web.stop()
    access_log = [line for line in output.splitlines() if line.startswith("127.0.0.1 - ")]

    assert token not in output  # neither the access log nor Django's "Not Found" warning
    assert len(access_log) == 3  # the start-up probe and the two requests
    assert '"GET /files/***/portrait.jpg HTTP/1.1" 404' in access_log[1]
    assert '"GET /healthz HTTP/1.1"' in access_log[2]
    assert '"/files/***/portrait.jpg"' in access_log[2]  # the referer


def test_the_logs_carry_no_invitation_link_code_or_bytedtoken(web: WebProcess):
    invitation = "q3Vx-Ew2bJ0yZ_Tn8f0aGQe1rXc4nU7oKpLs9dHmAiw"
    token, code = "20261203090000ABCDEF0123456789AB", "6AM3-ATNV"
    callback = "/verify/callback/5f0c7a51-7a0b-4b1e-9a55-000000000000/"
    requests.get(f"{web.base_url}/verify/{invitation}/", timeout=10)
    requests.get(f"{web.base_url}{callback}?bytedToken={token}&resultCode=10000", timeout=10)
    requests.get(f"{web.base_url}/verify/?code={code}", timeout=10)
    referer = f"{web.base_url}/verify/{invitation}/?bytedToken={token}"
    requests.get(f"{web.base_url}/healthz", headers={"Referer": referer}, timeout=10)

    output = web.stop()

    for secret in (invitation, token, code):
        assert secret not in output  # the access log, Django's warnings and errors
    assert '"GET /verify/***/ HTTP/1.1"' in output
    assert f'"GET {callback}?bytedToken=***&resultCode=10000 HTTP/1.1"' in output


def test_an_oversized_anonymous_upload_is_refused_before_its_body_is_sent(web: WebProcess):
    length = 200 * 1024 * 1024
    head = (
        "POST /admin/login/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    port = int(web.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        started = time.monotonic()
        connection.sendall(head.encode() + b"x" * 65536)  # the first 64 KB of 200 MB
        answer = b""
        while b"accepted here" not in answer and (chunk := connection.recv(4096)):
            answer += chunk
        elapsed = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert f"The request body is {length} bytes; at most 1048576 are".encode() in answer
    assert elapsed < 5


def test_the_control_socket_is_in_the_portals_var_folder(web: WebProcess, tmp_path: Path):
    own = tmp_path / "gunicorn.ctl"
    control = subprocess.run(  # noqa: S603 - gunicorn's own client beside this interpreter
        [str(Path(sys.executable).with_name("gunicornc")), "-s", str(own), "-c", "show workers"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert control.returncode == 0, control.stderr + control.stdout
    assert "PID" in control.stdout.upper()
    assert list(_runtime_dir(tmp_path).iterdir()) == []  # the shared default stays free


def test_the_procfile_serves_on_the_port_honcho_gives_it(tmp_path: Path):
    """``bin/dev`` runs ``honcho start --port $PORT``: the web process binds that port."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
    }
    process = subprocess.Popen(  # noqa: S603 - honcho beside this interpreter, our Procfile
        [str(bin_dir / "honcho"), "start", "--procfile", "Procfile", "--port", str(port), "web"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("the Procfile's web process did not listen on $PORT")
                time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=15)

    assert "database" in answer.json()  # the portal answered (its database is not migrated)
