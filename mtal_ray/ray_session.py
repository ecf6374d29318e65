"""Joining or starting Ray: one place, one clear error when it cannot be done."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mtal_ray.errors import MtalError


def ensure_ray(*, log_to_driver: bool = True) -> bool:
    """Connect to ``RAY_ADDRESS`` (or the cluster ``ray job submit`` runs in), else start a
    local Ray; do nothing when Ray is already up. Returns True when this call started it.

    Raises
    ------
    MtalError
        Ray could not be reached or started (the cause in one line, and what to check).
    """
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    kwargs = {
        "address": address,
        "include_dashboard": False,
        "configure_logging": False,
        "log_to_driver": log_to_driver,
    }
    try:
        ray.init(**kwargs)
    except Exception as err:  # ray.init raises bare Exception on start-up timeouts
        if address:
            raise _failure(err, address) from None
        # A local start can time out on a loaded machine (raylet/GCS slow to come up):
        # clean up what was started and try once more before giving up.
        ray.shutdown()
        try:
            ray.init(**kwargs)
        except Exception as again:
            raise _failure(again, None) from None
    if log_to_driver:  # Ray's known-harmless lines stay out of the job log (mtal_ray.logs)
        from mtal_ray.logs import filter_forwarded_lines

        filter_forwarded_lines()
    return True


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
