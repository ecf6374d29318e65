"""Joining or starting Ray fails with one clear message, not a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_head import free_port

from mtal_ray.errors import MtalError
from mtal_ray.ray_session import JOB_CONFIG_ENV, ensure_ray, ephemeral_output_warning

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
TIMEOUT = (
    "The current node timed out during startup. This could happen because some of "
    "the raylet failed to startup or the GCS has become overloaded."
)


@pytest.fixture
def failing_init(monkeypatch):
    """``ray.init`` fails as it does when the local node cannot come up; returns the calls."""
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    calls: list[dict] = []

    def init(**kwargs):
        calls.append(kwargs)
        raise Exception(TIMEOUT)

    monkeypatch.setattr(ray, "init", init)
    return calls


def test_a_local_start_is_retried_once(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    events: list[str] = []

    def init(**kwargs):
        events.append("init")
        if events.count("init") == 1:
            raise Exception(TIMEOUT)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: events.append("shutdown"))
    assert ensure_ray() is True
    assert events == ["init", "shutdown", "init"]


def test_a_local_start_failure_says_what_to_check(failing_init, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(MtalError) as err:
        ensure_ray()
    assert len(failing_init) == 2  # tried twice
    message = str(err.value)
    assert message.startswith("could not start or join a local Ray: The current node timed out")
    assert "ray start --head" in message and "\n" not in message


def test_a_cluster_failure_names_the_address(failing_init, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    with pytest.raises(MtalError, match=r"RAY_ADDRESS=10\.0\.0\.7:6379: .*ray status"):
        ensure_ray()
    assert len(failing_init) == 1  # a named cluster is not retried


def test_an_initialized_ray_is_left_alone(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "init", lambda **kw: pytest.fail("ray.init called again"))
    assert ensure_ray() is False


def _job_env(runtime_env: dict) -> dict[str, str]:
    return {JOB_CONFIG_ENV: json.dumps({"runtime_env": runtime_env, "metadata": {}})}


def test_a_run_dir_inside_the_job_working_dir_copy_is_warned_about(tmp_path: Path) -> None:
    copy = tmp_path / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    env = _job_env({"working_dir": "gcs://_ray_pkg_1.zip"})
    warning = ephemeral_output_warning("run directory", copy / "runs" / "x", environ=env, cwd=copy)
    assert warning is not None
    assert str(copy / "runs" / "x") in warning and "--run-dir /mnt/shared" in warning
    assert warning.startswith("warning: the run directory ")


@pytest.mark.parametrize(
    "env",
    [
        {},  # not under ray job submit
        _job_env({}),  # a job without --working-dir: cwd is the user's own directory
        _job_env({"working_dir": None}),
        {JOB_CONFIG_ENV: "not json"},
    ],
)
def test_no_warning_without_a_job_working_dir(tmp_path: Path, env: dict) -> None:
    path = tmp_path / "runs" / "x"
    assert ephemeral_output_warning("run directory", path, environ=env, cwd=tmp_path) is None


def test_no_warning_for_a_path_outside_the_copy(tmp_path: Path) -> None:
    env = _job_env({"working_dir": "gcs://_ray_pkg_1.zip"})
    copy = tmp_path / "copy"
    shared = tmp_path / "shared" / "runs" / "x"
    assert ephemeral_output_warning("run directory", shared, environ=env, cwd=copy) is None


# --- A local Ray: loopback only, its address in every process, gone with its launcher ---

_HOLDER = """
import os, sys, time
from pathlib import Path
import ray
from mtal_ray.ray_session import ensure_ray

ensure_ray(log_to_driver=False)

@ray.remote(num_cpus=0)
def address_seen_by_a_worker():
    return os.environ.get("RAY_ADDRESS")

@ray.remote(num_cpus=0)
class Alive:
    def ping(self):
        return True

@ray.remote(num_cpus=0)
def state_seen_by_a_worker(actor_id):
    # what Train's placement-group cleaner asks: is this actor alive (State API, no address)
    from ray.util.state import get_actor
    found = get_actor(actor_id, timeout=60)
    return found.state if found else "NOT-FOUND"

actor = Alive.remote()
ray.get(actor.ping.remote(), timeout=120)
seen = ray.get(address_seen_by_a_worker.remote(), timeout=120)
state = ray.get(state_seen_by_a_worker.remote(actor._actor_id.hex()), timeout=180)
# the port the node's dashboard agent serves HTTP on, as it recorded it (-1: not serving)
session = ray._private.worker.global_worker.node.get_session_dir_path()
deadline = time.monotonic() + 120
while not (found := list(Path(session).glob("dashboard_agent_listen_port_*"))):
    assert time.monotonic() < deadline, "the dashboard agent recorded no port"
    time.sleep(0.5)
agent_port = found[0].read_text().strip()
gcs = ray.get_runtime_context().gcs_address
print("READY", gcs, seen, state, agent_port, flush=True)
time.sleep(600)
"""

#: Ray processes that must go with the launcher (the agents are the ones that used to stay).
_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _name(proc) -> str:
    try:
        return " ".join(proc.cmdline()) or proc.name()
    except Exception:
        return "?"


#: Ray's fixed default port of a node's dashboard agent (``ray start`` can change it,
#: ``ray.init`` cannot).
DEFAULT_AGENT_PORT = 52365


def _hold_port(port: int) -> socket.socket | None:
    """A socket listening on 127.0.0.1:``port``; None when something else holds it already
    (then it is taken all the same)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen()
    except OSError:
        holder.close()
        return None
    return holder


@pytest.mark.integration
def test_a_local_ray_listens_on_loopback_and_dies_with_a_killed_launcher(tmp_path: Path):
    """``kill -9`` of a process that started a local Ray (as the launcher does): within
    15 s no process of that Ray is left, agents included; while it ran, every socket of
    that Ray listened on 127.0.0.1 only, its workers had ``RAY_ADDRESS`` set to it and the
    State API they reach (Train's placement-group cleaner uses it) saw its own actors.
    Ray's default dashboard-agent port (52365) is taken meanwhile, as another local Ray on
    the machine takes it: the start must not need it. And a ``ray start`` is recorded in
    Ray's temp dir (``ray_current_cluster``, where a plain ``ray.init()`` looks for a Ray to
    join; here an address nothing listens on, as after a crashed cluster): without
    ``RAY_ADDRESS`` the launcher still starts its own Ray, and says which one it left."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("ray")
    squatter = _hold_port(DEFAULT_AGENT_PORT)
    script = tmp_path / "hold_ray.py"
    script.write_text(_HOLDER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    ray_tmp = Path(f"/tmp/mtal_rt_{os.getpid()}")  # short: Unix socket paths
    (ray_tmp / "ray").mkdir(parents=True, exist_ok=True)
    recorded = f"127.0.0.1:{free_port()}"
    (ray_tmp / "ray" / "ray_current_cluster").write_text(recorded)
    env["RAY_TMPDIR"] = str(ray_tmp)
    launcher = subprocess.Popen(
        [sys.executable, str(script)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    tracked: list = []
    try:
        ready, before_ready = "", []
        for line in launcher.stdout:
            if line.startswith("READY"):
                ready = line
                break
            before_ready.append(line)
        assert ready, (
            f"the local Ray did not come up (exit {launcher.wait(timeout=30)}):\n"
            + "".join(before_ready)[-3000:]
        )
        _, gcs_address, seen, state, agent_port = ready.split()
        assert gcs_address != recorded
        assert any(
            line.startswith("note: RAY_ADDRESS is unset") and f"RAY_ADDRESS={recorded}" in line
            for line in before_ready
        ), before_ready
        # the agent serves HTTP (job submission goes through it) on a port of its own
        assert int(agent_port) not in (-1, DEFAULT_AGENT_PORT), agent_port
        assert gcs_address.startswith("127.0.0.1:"), gcs_address
        assert seen == gcs_address  # Ray's helpers in workers find their own instance
        # ...and its State API answers for this instance (not for whatever listens on 8265)
        assert state == "ALIVE", state

        holder = psutil.Process(launcher.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the raylet starts its agents asynchronously
            tracked = holder.children(recursive=True)
            if all(any(agent in _name(p) for p in tracked) for agent in _AGENTS):
                break
            time.sleep(0.5)
        names = [_name(p) for p in tracked]
        assert all(any(agent in n for n in names) for agent in _AGENTS), names

        listening = []
        for proc in [holder, *tracked]:
            try:
                listening += [
                    (_name(proc)[:60], c.laddr.ip, c.laddr.port)
                    for c in proc.net_connections("inet")
                    if c.status == psutil.CONN_LISTEN
                ]
            except psutil.Error:
                continue
        assert listening
        exposed = [s for s in listening if s[1] not in ("127.0.0.1", "::ffff:127.0.0.1")]
        assert not exposed, exposed

        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 15
        left = tracked
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, [(p.pid, _name(p)[:80]) for p in left]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
        if squatter is not None:
            squatter.close()
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(timeout=30)
        for proc in tracked:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def test_gpus_the_local_ray_cannot_give_stop_the_run_and_a_cluster_waits(
    ray_session, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import ray

    from mtal_ray import ray_session as session
    from mtal_ray.config import load_config
    from mtal_ray.errors import ConfigError

    have = float(ray.cluster_resources().get("GPU", 0.0))  # the real cluster's (0 in CI)
    config = load_config(
        QUICKSTART, ["training.use_gpu=true", f"scoring.gpus_per_actor={int(have) + 1}"]
    )
    needs = session.gpu_needs([config, load_config(QUICKSTART, [])])  # a sweep's trials
    assert needs == {"training.use_gpu": 1.0, "scoring.gpus_per_actor": have + 1}
    assert session.gpu_needs([load_config(QUICKSTART, [])]) == {}
    lines: list[str] = []
    session.check_gpus({"scoring.gpus_per_actor": have}, echo=lines.append)  # enough
    assert lines == []
    monkeypatch.setattr(session, "_started_local", True)  # a Ray this process started
    with pytest.raises(ConfigError, match=r"scoring.gpus_per_actor: each scoring actor needs"):
        session.check_gpus({"scoring.gpus_per_actor": have + 1}, echo=lines.append)
    monkeypatch.setattr(session, "_started_local", False)  # a cluster: the autoscaler may add
    session.check_gpus({"scoring.gpus_per_actor": have + 1}, echo=lines.append)
    assert len(lines) == 1 and "waits until the autoscaler adds GPU nodes" in lines[0]


def test_mtal_ray_train_asking_for_a_gpu_on_a_machine_without_one_stops_at_once(
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    output = tmp_path / "train"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mtal_ray.cli", "train", "--config", str(QUICKSTART),
         "--output", str(output), "training.use_gpu=true"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training.use_gpu: each Train worker needs 1 GPU" in errors[0]
    assert "Traceback" not in done.stderr
    assert not output.exists()  # nothing written: a later CPU training may take the folder
    assert time.perf_counter() - started < 120  # it used to wait for a GPU forever
