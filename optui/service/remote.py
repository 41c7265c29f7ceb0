"""Where a run's work units train: in this process, or on a Ray cluster.

`--ray [ADDRESS]` (or [engine] executor = "ray") hands the units to Ray; Ray is an optional
extra, so without it the run stops before any work with the command that installs it.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..optional import MissingDependency, require


def executor_for(study: Any, ray_address: str | None, strategy: Any) -> Any:
    """None (train here), or a RayExecutor connected to the cluster at ray_address ("" or None
    with [engine] executor = "ray": RAY_ADDRESS, else a cluster started on this machine)."""
    if not on_ray(study, ray_address):
        return None
    check_ray()
    from .ray_executor import RayExecutor

    return RayExecutor(study, strategy, address=ray_address or None)


def on_ray(study: Any, ray_address: str | None) -> bool:
    """Whether the run is asked to train on Ray (--ray, or [engine] executor = "ray")."""
    return ray_address is not None or study.engine.executor == "ray"


def check_pruner_on_ray(study: Any, space: Any, ray_address: str | None) -> None:
    """A pruner pauses each group at its rungs in this process, so it cannot train on Ray:
    refused as a usage error (exit 2) before the run is created or a cluster is joined."""
    if on_ray(study, ray_address) and space.pruner != "none":
        raise UsageError(f"search space {space.name!r} has pruner = {space.pruner!r}, which trains in this "
                         f"process: drop --ray (or executor = \"ray\"), or set "
                         f"search.{space.name}.pruner=none to train on Ray")


def check_ray() -> None:
    """Ray is installed, else a usage error (exit 2) with the command that installs it."""
    try:
        require("ray", "training on a Ray cluster (--ray, or [engine] executor = \"ray\")")
    except MissingDependency as exc:
        raise UsageError(str(exc)) from None


def record_devices(store: Any, run_id: str, label: str) -> None:
    """Record the devices this session trains run_id on: meta "device" is the latest, and
    "devices_used" lists every one, in order (a run resumed elsewhere names both)."""
    used = list(store.run_info(run_id)["meta"].get("devices_used") or [])
    store.update_run_meta(run_id, device=label, devices_used=used + [label] if label not in used else used)
