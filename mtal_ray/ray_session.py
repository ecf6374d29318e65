"""Joining or starting Ray: one place, one clear error when it cannot be done."""

from __future__ import annotations

import os

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
