"""Joining or starting Ray: one place, one clear error when it cannot be done."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mtal_ray.errors import ConfigError, MtalError

#: True while this process's Ray is one it started itself (one machine, no autoscaler that
#: could add nodes); False when it joined a cluster.
_started_local = False


def ensure_ray(*, log_to_driver: bool = True, gpus: Mapping[str, float] | None = None) -> bool:
    """Connect to ``RAY_ADDRESS`` (or the cluster ``ray job submit`` runs in), else start a
    local Ray; do nothing when Ray is already up. Returns True when this call started it.

    ``gpus`` (setting → GPUs one of its workers or actors reserves, :func:`gpu_needs`): then
    :func:`check_gpus` on the Ray joined or started; a Ray this call started is stopped
    again when the check fails.

    Raises
    ------
    MtalError
        Ray could not be reached or started (the cause in one line, and what to check).
    ConfigError
        ``gpus`` asks for more GPUs than a local Ray (no autoscaler) has.
    """
    import ray

    started = False if ray.is_initialized() else _init_ray(ray, log_to_driver)
    if gpus:
        try:
            check_gpus(gpus)
        except BaseException:
            if started:
                ray.shutdown()
            raise
    return started


def _init_ray(ray: Any, log_to_driver: bool) -> bool:
    global _started_local
    address = os.environ.get("RAY_ADDRESS")
    _started_local = False
    kwargs = {
        "address": address,
        "include_dashboard": False,
        "configure_logging": False,
        "log_to_driver": log_to_driver,
    }
    if address:
        try:
            ray.init(**kwargs)
        except Exception as err:  # ray.init raises bare Exception on start-up timeouts
            raise _failure(err, address) from None
    else:
        try:
            _start_local(ray, kwargs)
        except Exception:
            # A local start can time out on a loaded machine (raylet/GCS slow to come
            # up): clean up what was started and try once more before giving up.
            ray.shutdown()
            try:
                _start_local(ray, kwargs)
            except Exception as again:
                ray.shutdown()
                raise _failure(again, None) from None
        _started_local = True
    if log_to_driver:  # Ray's known-harmless lines stay out of the job log (mtal_ray.logs)
        from mtal_ray.logs import filter_forwarded_lines

        filter_forwarded_lines()
    return True


#: The only interface a local Ray listens on.
LOOPBACK = "127.0.0.1"
#: Ray's own switch for a single-machine Ray (its default on macOS and Windows): the node
#: IP is the loopback address, so the GCS, raylet, workers, agents and the metrics export
#: listen on 127.0.0.1 only. A Ray module constant read at start, also set in the
#: environment the Ray processes inherit.
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: Ray reads the GCS port of a new head from this variable.
_GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"

#: Ray kills idle worker processes beyond a soft limit (default: the node's CPUs). In a
#: probe on a local ``ray.init`` Ray, two 1-CPU actors held for 15 s (as a round's training
#: holds the CPUs) got the task workers of the last scoring replaced under the default, and
#: not under this limit; the next scoring would otherwise start processes and import torch
#: again (``scoring.compute: tasks``). A local Ray keeps this many more.
EXTRA_IDLE_WORKERS = 4
#: Ray's setting (``RAY_<name>`` in a raylet's environment, ``_system_config`` in ray.init).
SOFT_LIMIT_SETTING = "num_workers_soft_limit"


def gpu_needs(configs: Iterable[Any]) -> dict[str, float]:
    """The settings of run configs that reserve GPUs → the most GPUs one worker or actor
    of any of them reserves."""
    needs: dict[str, float] = {}
    for config in configs:
        for setting, gpus in {**config.training.gpu_needs(), **config.scoring.gpu_needs()}.items():
            needs[setting] = max(gpus, needs.get(setting, 0.0))
    return needs


#: who reserves the GPUs of a setting, for messages
_GPU_USERS = {
    "training.use_gpu": "each Train worker",
    "scoring.gpus_per_actor": "each scoring actor",
}


def check_gpus(needs: Mapping[str, float], echo: Any = None) -> None:
    """Stop with one line when a setting asks for GPUs that this Ray can never give.

    ``needs``: setting → GPUs that one of its workers or actors reserves. On a Ray this
    process started (one machine, no autoscaler) a request for more GPUs than the machine
    has would wait forever: :class:`~mtal_ray.errors.ConfigError`. On a cluster the
    autoscaler may still add GPU nodes: a note, and the job waits for them.
    """
    import ray

    have = float(ray.cluster_resources().get("GPU", 0.0))
    for setting, gpus in needs.items():
        if gpus <= have:
            continue
        who = _GPU_USERS.get(setting, "each of its workers")
        if _started_local:
            raise ConfigError(
                f"{setting}: {who} needs {gpus:g} GPU, and the local Ray on this "
                f"machine has {have:g} (no CUDA device found, or CUDA_VISIBLE_DEVICES hides "
                "it): turn the setting off, or run the job on a cluster with GPU nodes "
                "(RAY_ADDRESS or `ray job submit`)"
            )
        (echo or (lambda line: print(line, file=sys.stderr, flush=True)))(
            f"note: {setting}: {who} needs {gpus:g} GPU and the cluster has {have:g} now; "
            "the job waits until the autoscaler adds GPU nodes"
        )


def worker_soft_limit(cpus: int | None = None) -> int:
    """The idle-worker soft limit of a local Ray on ``cpus`` CPUs (default: this machine's)."""
    return (cpus or os.cpu_count() or 1) + EXTRA_IDLE_WORKERS


#: The watchdogs of the local Rays this process started (their stdin pipes stay open
#: while this process lives; see :mod:`mtal_ray.ray_watchdog`).
_watchdogs: list[subprocess.Popen] = []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration of the block, then as before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_local(ray: Any, kwargs: dict[str, Any]) -> None:
    """Start a local Ray that listens on 127.0.0.1 only, whose every process knows its
    address (``RAY_ADDRESS``: Ray's own helpers, such as Train's placement-group cleaner,
    otherwise look for "the" local Ray and fail when several run on the machine), and that
    dies with this process (a watchdog stops its processes, agents included, even after
    ``kill -9``). Its dashboard listens on a free loopback port, so that Ray's State API
    answers for this instance and no other. What a failed start left behind is stopped at
    once."""
    from ray._private import ray_constants

    port = _free_port()
    # The dashboard (on a free loopback port) is the State API server of *this* Ray: without
    # it the address Ray records for it is the default 127.0.0.1:8265, so Train's
    # placement-group cleaner asks whatever other Ray listens there whether our training's
    # controller is alive, is told "no such actor", and removes the training's placement
    # group in the middle of a run (seen with a second Ray on the machine).
    kwargs = {
        **kwargs,
        "include_dashboard": True,
        "dashboard_host": LOOPBACK,
        "dashboard_port": _free_port(),
    }
    recorded = _recorded_ray_start_address()
    if recorded:
        print(
            f"note: RAY_ADDRESS is unset, so this run starts a local Ray of its own; a Ray "
            f"started with `ray start` is recorded on this machine at {recorded} "
            f"(set RAY_ADDRESS={recorded} to run on that one)",
            file=sys.stderr,
            flush=True,
        )
    # address "local": a new Ray, always. With None, ray.init joins the cluster that the
    # last `ray start` (or a test harness's Cluster) recorded in <Ray temp dir>/
    # ray_current_cluster and then refuses this start's settings ("When connecting to an
    # existing cluster, _system_config must not be provided"), or waits on a dead address
    # the file still names.
    kwargs = {**kwargs, "address": "local"}
    before = _child_pids()
    local_only = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with (
            scoped_environ({_LOCAL_ONLY_ENV: "0", _GCS_PORT_ENV: str(port)}),
            _agent_port(ray, _free_port()),
        ):
            ray.init(
                **kwargs,
                runtime_env={"env_vars": {"RAY_ADDRESS": f"{LOOPBACK}:{port}"}},
                _system_config={SOFT_LIMIT_SETTING: worker_soft_limit()},
            )
    except Exception:
        _stop_new_children(before)
        raise
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = local_only
    _start_watchdog(ray)


def _recorded_ray_start_address() -> str | None:
    """The address the last ``ray start`` on this machine recorded for plain ``ray.init()``
    calls to join (None when there is none)."""
    try:
        from ray._private.utils import read_ray_address  # what a plain ray.init() reads

        return read_ray_address(None) or None
    except Exception:  # unreadable, or a Ray without the helper: nothing recorded
        return None


@contextlib.contextmanager
def _agent_port(ray: Any, agent_port: int) -> Iterator[None]:
    """``ray.init`` starts its node's dashboard agent on ``agent_port`` (a free loopback
    port) instead of Ray's fixed default, 52365: with a second local Ray on the machine (two
    experiments, a sweep beside a run) the new agent could not bind that port, never wrote
    its metrics port, and the raylet died ("Timed out waiting for file
    .../metrics_agent_port") — the start failed as a time-out. ``ray.init`` has no argument
    for it (``ray start --dashboard-agent-listen-port`` has), so the node's parameters get it
    as their default for the duration of the call."""
    parameter = ray._private.parameter
    original = parameter.RayParams

    class _LocalParams(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("dashboard_agent_listen_port", agent_port)
            super().__init__(*args, **kwargs)

    parameter.RayParams = _LocalParams
    try:
        yield
    finally:
        parameter.RayParams = original


def _child_pids() -> set[int]:
    try:
        import psutil

        return {child.pid for child in psutil.Process().children()}
    except Exception:
        return set()


def _stop_new_children(before: set[int]) -> None:
    """Stop the processes a failed ``ray.init`` started (and what they started)."""
    try:
        import psutil

        from mtal_ray.ray_watchdog import stop

        new = [child for child in psutil.Process().children() if child.pid not in before]
        stop({child.pid: child for child in new}, grace_s=2.0)
    except Exception:  # best effort: they still die with this process
        pass


def _start_watchdog(ray: Any) -> None:
    """Start :mod:`mtal_ray.ray_watchdog` for the Ray processes this process started."""
    node = ray._private.worker._global_node
    if node is None:
        return
    try:
        roots = [str(info.process.pid) for infos in node.all_processes.values() for info in infos]
        command = [sys.executable, str(Path(__file__).with_name("ray_watchdog.py"))]
        log = Path(node.get_session_dir_path()) / "logs" / "mtal_ray_watchdog.err"
        with log.open("ab") as stderr:
            watchdog = subprocess.Popen(
                [*command, str(os.getpid()), *roots],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # a terminal's signals are for this process
            )
        _watchdogs.append(watchdog)
    except Exception as err:  # without it Ray's agents may outlive a kill -9 by a minute
        print(f"warning: no watchdog for the local Ray: {err}", file=sys.stderr, flush=True)


def _failure(err: BaseException, address: str | None) -> MtalError:
    where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
    hint = (
        "check that the head is running (`ray status`) and the address is right"
        if address
        else "tried twice; the machine may be overloaded or out of memory/disk under "
        "/tmp/ray; retry, or start one with `ray start --head` and set RAY_ADDRESS"
    )
    text = str(err).strip()
    first_line = text.splitlines()[-1] if text else type(err).__name__
    return MtalError(f"could not start or join {where}: {first_line} ({hint})")


#: Set by ``ray job submit`` in the entrypoint's environment: the job's runtime env as JSON.
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def ephemeral_output_warning(
    what: str,
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str | None:
    """A warning when ``path`` would be written inside a ``ray job submit`` working dir copy.

    Under ``ray job submit --working-dir DIR`` the entrypoint runs in Ray's unpacked copy
    of DIR in the session's temporary files: a relative run or sweep directory lands there,
    on one node, and is deleted with the session. Returns None when the job has no
    working dir or ``path`` lies outside it.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(JOB_CONFIG_ENV)
    if not raw:
        return None
    try:
        runtime_env = (json.loads(raw) or {}).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(runtime_env, dict) or not runtime_env.get("working_dir"):
        return None
    base = (cwd or Path.cwd()).resolve()
    target = Path(path).expanduser().resolve()
    if not target.is_relative_to(base):
        return None
    return (
        f"warning: the {what} {target} is inside Ray's temporary copy of the job's "
        "--working-dir: it lives on this node only and is deleted with the Ray session. "
        "Give an absolute path on storage every node shares (e.g. --run-dir /mnt/shared/runs/x)."
    )


def warn_if_ephemeral(what: str, path: Path) -> None:
    """Print :func:`ephemeral_output_warning` to stderr when it applies."""
    warning = ephemeral_output_warning(what, path)
    if warning:
        print(warning, file=sys.stderr, flush=True)
