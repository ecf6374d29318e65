"""A real Label Studio server for tests: its own cached virtual environment, a free port on
127.0.0.1, a temporary SQLite data directory, a user with a known API token.

The environment lives in ``$MTAL_LABEL_STUDIO_VENV`` (default
``~/.cache/mtal_ray/label-studio-venv``) so that Label Studio's dependencies (Django…)
stay out of ours; ``.ci/install_label_studio.sh`` builds it, and so does
:func:`label_studio_bin` when it is missing (a few minutes, once). Beside it a migrated
data directory (:func:`template_dir`, built at the first start) spares each later server
Django's migrations.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

#: The version the tests and the README were checked against.
LABEL_STUDIO_VERSION = "1.23.2"
REPO = Path(__file__).resolve().parents[1]


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "mtal_ray" / "label-studio-venv"
    return Path(os.environ.get("MTAL_LABEL_STUDIO_VENV", default))


def label_studio_bin() -> Path:
    """The ``label-studio`` executable, building the cached environment when missing.

    Raises ``RuntimeError`` with pip's last lines when it cannot be built.
    """
    binary = venv_dir() / "bin" / "label-studio"
    if binary.exists() and (venv_dir() / f".mtal-label-studio-{LABEL_STUDIO_VERSION}").exists():
        return binary
    script = REPO / ".ci" / "install_label_studio.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env={**os.environ}, check=False
    )
    if done.returncode != 0 or not binary.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"cannot build the Label Studio environment: {' | '.join(tail)}")
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    username: str
    password: str
    data_dir: Path
    log: Path


def template_dir() -> Path:
    """A migrated data directory kept beside the environment. Label Studio's first start in
    an empty directory runs every Django migration (~55 s on 2 cores); a start in a copy of
    this one takes ~6 s and adds the test's own user and token to it."""
    return venv_dir().parent / f"label-studio-data-{LABEL_STUDIO_VERSION}"


def _ensure_template(binary: Path, timeout: float) -> Path:
    """:func:`template_dir`, migrated by one start of its own (with a throwaway user whose
    token and password nobody keeps) when missing; whole or not at all."""
    target = template_dir()
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _serve(binary, staging, "template@example.com", timeout):
            pass
        (staging / "server.log").unlink(missing_ok=True)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # not another process's copy that came first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@contextmanager
def label_studio_server(timeout: float = 600.0) -> Iterator[Server]:
    """Start Label Studio in a copy of the migrated :func:`template_dir`, wait until its API
    answers with our token, stop it after."""
    binary = label_studio_bin()
    template = _ensure_template(binary, timeout)
    data_dir = Path(tempfile.mkdtemp(prefix="mtal-ls-"))
    try:
        shutil.copytree(template, data_dir, dirs_exist_ok=True)
        with _serve(binary, data_dir, "annotator@example.com", timeout) as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def _serve(binary: Path, data_dir: Path, username: str, timeout: float) -> Iterator[Server]:
    """Label Studio on a free port with ``data_dir`` and a new user ``username`` with a fresh
    token, up (its API answers with that token) until the block ends."""
    port = _free_port()
    token = secrets.token_hex(20)
    password = secrets.token_hex(12)  # token_urlsafe may start with '-': not an argument
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = data_dir / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir / "data"),
                "--username",
                username,
                "--password",
                password,
                "--user-token",
                token,
                "--enable-legacy-api-token",  # 1.23 defaults to personal access tokens
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=data_dir,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"label-studio exited ({proc.returncode}): {_tail(log)}")
            try:
                req = urllib.request.Request(
                    f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}
                )
                with urllib.request.urlopen(req, timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"label-studio did not answer in {timeout:.0f}s: {_tail(log)}")
            time.sleep(1)
        yield Server(url, token, username, password, data_dir, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)  # our own process group (start_new_session)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def _tail(log: Path, n: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":  # python tests/label_studio_server.py: start one, print, wait
    if sys.argv[1:] == ["--template"]:  # only build the migrated data directory (.ci/run)
        print(_ensure_template(label_studio_bin(), 600.0))
        sys.exit(0)
    with label_studio_server() as server:
        print(server, flush=True)
        with suppress(KeyboardInterrupt):
            time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
