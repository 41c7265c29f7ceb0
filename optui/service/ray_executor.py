"""A run's groups of units as Ray tasks; the driver stays the run store's one writer.

Each group (a config's replicate block, or a search group) becomes one streaming Ray task that
rebuilds the study from its preset text, runs the same executor (`engine.executor.train_group`)
on the worker's own devices, and streams what a sink would receive (restarts, chunks with their
checkpoints) and the engine's events back. Workers never open the store. The driver writes a
chunk index only once every unit of the group has sent it, so the units of a group always hold
checkpoints of the same chunk.

A worker that dies (killed, out of memory, its machine gone) is retried from its group's last
stored checkpoint: the retry first drops the chunks after it, then writes them again (chunk
writes replace by index), so the finished run equals an uninterrupted one. Cancelling the run
cancels the tasks; what was stored stays, and `--resume` finishes it, here or on Ray.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import ray
import ray.exceptions
import ray.util

from ..engine import ChunkDone, ChunkOutput, GroupOutcome, Placement, Unit, describe, train_group
from ..errors import OptuiError, StoreError, UsageError
from ..status import Status
from .execution import Recorder, RunContext

# Times a group is started again after its worker died, before the group (or run) fails.
RETRIES = 3
# Messages a worker may stream ahead of the driver: bounds what waits in the object store.
BACKLOG = 16


@dataclass(frozen=True)
class GroupJob:
    """Everything a worker needs to train one group: plain, picklable data."""

    preset_text: str
    preset_path: str | None
    overrides: tuple[str, ...]
    cwd: str  # relative data paths in the preset are read from here
    data_hash: str  # the driver's data fingerprint: a worker with other data refuses to train
    strategy: Any
    optimizer: str
    batch_size: int
    steps: int
    eval_points: int
    checkpoint_seconds: float
    units: tuple[Unit, ...]
    checkpoints: tuple[tuple[int, bytes] | None, ...]  # per unit, from the store


# -- the worker -----------------------------------------------------------------------------------
_CONTEXT: dict[tuple, tuple[Any, Any]] = {}  # the last study a worker process built, and its programs


def _workload_for(job: GroupJob) -> tuple[Any, Any]:
    """(workload, CompiledGroups), kept across the tasks a worker process runs for one study."""
    from . import fingerprint
    from ..study import presets
    from .. import workloads
    from .execution import CompiledGroups

    key = (job.preset_text, job.preset_path, job.overrides, job.cwd)
    if key not in _CONTEXT:
        if job.cwd and os.path.isdir(job.cwd):
            os.chdir(job.cwd)
        study = presets.loads(job.preset_text, job.preset_path, list(job.overrides) or None)
        workload = workloads.build(study)
        found = fingerprint.data_fingerprint(workload)["hash"]
        if job.data_hash and found != job.data_hash:
            raise OptuiError(f"the worker on {socket.gethostname()} reads different data for "
                             f"{job.preset_path or 'the preset'} than the driver (fingerprint {found} vs "
                             f"{job.data_hash}); give every machine the same data files")
        _CONTEXT.clear()
        _CONTEXT[key] = (workload, CompiledGroups())
    return _CONTEXT[key]


class StreamSink:
    """The executor's sink on a worker: checkpoints come with the job, the rest is streamed."""

    def __init__(self, units: tuple[Unit, ...], checkpoints: tuple, put: Callable[[tuple], None]):
        self.saved = {u.name: c for u, c in zip(units, checkpoints)}
        self.put = put

    def checkpoint(self, unit: str) -> tuple[int, bytes] | None:
        return self.saved.get(unit)

    def restart(self, unit: str, after_chunk: int) -> None:
        self.put(("restart", unit, after_chunk))

    def chunk(self, unit: str, out: ChunkOutput, state: bytes | None) -> None:
        self.put(("chunk", unit, out, state))


def train_streamed(job: GroupJob):
    """The Ray task: train the group and yield each message as it happens (a generator)."""
    yield ("worker", socket.gethostname(), os.getpid())
    workload, compiled = _workload_for(job)
    placement = Placement.of("all")  # the devices Ray gave this worker
    first = job.units[0]
    runner = compiled.runner(workload, job.optimizer, job.batch_size, job.strategy, placement)
    before = Counter(runner.programs)
    messages: queue.Queue = queue.Queue()
    sink = StreamSink(job.units, job.checkpoints, messages.put)

    def work() -> None:
        try:
            outcome = train_group(runner, list(job.units), job.steps, job.eval_points, sink,
                                  checkpoint_seconds=job.checkpoint_seconds,
                                  emit=lambda e: messages.put(("event", e)))
            messages.put(("outcome", outcome, runner.programs - before, placement.label))
        except BaseException as exc:  # handed to the generator, which raises it to the driver
            messages.put(("error", exc))

    threading.Thread(target=work, name=f"optui-train-{first.name}", daemon=True).start()
    while True:
        message = messages.get()
        if message[0] == "error":
            raise message[1]
        yield message
        if message[0] == "outcome":
            return


# -- the driver -----------------------------------------------------------------------------------
_REMOTE: list = []


def _remote_train() -> Any:
    if not _REMOTE:  # one remote function per process: Ray ships it to the workers once
        _REMOTE.append(ray.remote(train_streamed))
    return _REMOTE[0]


def connect(address: str | None) -> None:
    """Join the cluster at address ("auto", "ray://host:10001"; None: RAY_ADDRESS or a new local
    cluster) unless this process already has."""
    if os.environ.get("NO_COLOR") and "RAY_COLOR_PREFIX" not in os.environ:
        os.environ["RAY_COLOR_PREFIX"] = "0"  # Ray colours raylet warnings unless told so, when it prints them
    if ray.is_initialized():
        return
    if address:
        check_reachable(address, "--ray")
    else:  # Ray reads it too, but would skip the check
        check_reachable(os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS")
    try:
        with warnings.catch_warnings():  # Ray starts its processes by forking; they never run JAX
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "(RAY_ADDRESS, or a new one on this machine)"
        raise OptuiError(f"could not reach the Ray cluster {where}: {exc}; start one with `ray start --head` "
                         f"or pass its address to --ray") from None


def check_reachable(address: str | None, given: str) -> None:
    """A HOST:PORT (from --ray or RAY_ADDRESS) that takes no connection is refused at once: Ray
    itself would wait for minutes. Ray dials a loopback address as this machine's own address,
    so a cluster that listens on loopback only is refused too, saying what to set."""
    if not address or address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    if "://" in address and not client:
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")
    if not host:
        return
    _dial(host, port, f"could not reach the Ray cluster at {address} ({given})",
          "start one with `ray start --head`, or give its address to --ray or RAY_ADDRESS")
    if client or not _is_loopback(host):
        return
    dialled = ray.util.get_node_ip_address()  # what Ray turns a loopback host into
    if _is_loopback(dialled):
        return
    _dial(dialled, port, f"the Ray cluster at {address} ({given}) listens on loopback only, but Ray connects "
          f"to {host} as this machine's address, {dialled}:{port}",
          f"restart the cluster on that address (`ray start --head --node-ip-address {dialled} --port {port}`) "
          f"and set RAY_ADDRESS={dialled}:{port} (or --ray {dialled}:{port})")


def _dial(host: str, port: str, what: str, fix: str) -> None:
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise UsageError(f"{what}: {getattr(exc, 'strerror', None) or exc}; {fix}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _worker_lost(exc: BaseException) -> bool:
    """The worker (or its machine) went away, as opposed to training raising an error."""
    return isinstance(exc, ray.exceptions.RayError) and not isinstance(
        exc, (ray.exceptions.RayTaskError, ray.exceptions.TaskCancelledError))


@dataclass
class _Attempt:
    """A group's current task and what it has streamed that is not yet written."""

    index: int
    group: list
    task: Any
    started: float
    attempts: int
    pending: dict[int, dict[str, tuple]]  # chunk index -> unit -> (out, state)
    held: list  # events waiting for their chunk to be written
    worker: tuple[str, int] | None = None
    earlier: float = 0.0  # seconds the group's lost attempts ran, from submission to loss


class RayExecutor:
    """Trains a run's groups as Ray tasks (an execution.Executor), reporting to its recorder."""

    pauses = False  # a group trains in one task, to its end: no rungs across workers yet

    def __init__(self, study: Any, strategy: Any, address: str | None = None, *, backlog: int | None = None,
                 retries: int | None = None):
        self.study = study
        self.strategy = strategy
        self.address = address
        self.backlog = backlog or BACKLOG
        self.retries = RETRIES if retries is None else retries
        connect(address)
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.slots = self.gpus or int(resources.get("CPU", 1))
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        kind = "GPU" if self.gpus else "CPU"
        self.label = f"ray ({nodes} node{'s' if nodes != 1 else ''}, {self.slots} {kind} worker slots)"
        self.workers: list[tuple[str, int]] = []  # (host, pid) of every task started, in order
        self.worker_of: dict[str, tuple[str, int]] = {}  # unit -> (host, pid) training it now
        self.retried = 0  # groups started again after their worker died
        self.worker_devices: set[str] = set()

    # -- tasks ---------------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        if self.gpus:
            return {"num_gpus": 1, "num_cpus": 1}
        # A CPU worker uses the one core it asked for: XLA would otherwise spread over them all.
        flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false",
                                       "intra_op_parallelism_threads=1"]))
        return {"num_cpus": 1, "runtime_env": {"env_vars": {"XLA_FLAGS": flags}}}

    def _submit(self, recorder: Recorder, context: RunContext, index: int, group: list,
                attempts: int, earlier: float = 0.0) -> _Attempt:
        from . import fingerprint

        first = group[0]
        job = GroupJob(
            preset_text=self.study.text, preset_path=self.study.path,
            overrides=tuple(self.study.overrides), cwd=os.getcwd(),
            data_hash=context.data_hash or fingerprint.data_fingerprint(context.workload)["hash"],
            strategy=self.strategy, optimizer=first.optimizer, batch_size=first.batch_size, steps=first.steps,
            eval_points=context.eval_points, checkpoint_seconds=context.checkpoint_seconds,
            units=tuple(p.unit for p in group),
            checkpoints=tuple(recorder.sink.checkpoint(p.name) for p in group))
        remote = _remote_train().options(
            num_returns="streaming", max_retries=0, _generator_backpressure_num_objects=self.backlog,
            **self._options())
        return _Attempt(index, group, remote.remote(job), time.perf_counter(), attempts, {}, [], earlier=earlier)

    def cancel(self, running: dict[Any, _Attempt]) -> None:
        for task in list(running):
            try:
                ray.cancel(task, force=True)
            except Exception:  # already finished or gone: nothing to stop
                pass

    # -- the run -------------------------------------------------------------------------------
    def train(self, groups: list[list], recorder: Recorder, context: RunContext, *,
              isolate_failures: bool = False, early_stop: Any = None) -> tuple[Status, str | None]:
        """Train every group on the cluster; (run status, first error), as LocalExecutor.train."""
        running: dict[Any, _Attempt] = {}
        for i, group in enumerate(groups):
            a = self._submit(recorder, context, i, group, 0)
            running[a.task] = a
        errors: list[str] = []
        try:
            while running:
                if context.cancel.is_set():
                    self._interrupt(recorder, running)
                    return Status.INTERRUPTED, None
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                for task in ready:
                    a = running[task]
                    try:
                        message = ray.get(next(task))
                    except StopIteration:
                        running.pop(task)
                        continue
                    except Exception as exc:
                        running.pop(task)
                        if _worker_lost(exc) and a.attempts < self.retries:
                            self.retried += 1
                            b = self._submit(recorder, context, a.index, a.group, a.attempts + 1,
                                             a.earlier + time.perf_counter() - a.started)
                            running[b.task] = b
                            continue
                        cause = getattr(exc, "cause", None) or exc
                        if isinstance(cause, (StoreError, OptuiError)) or not isinstance(cause, Exception):
                            raise cause from None
                        if not isinstance(exc, ray.exceptions.RayTaskError) and a.attempts >= self.retries:
                            cause = OptuiError(f"the workers training {a.group[0].name} died {a.attempts + 1} "
                                               f"times (last: {type(exc).__name__}); finished chunks are kept: "
                                               f"resume with --resume")
                        if not isolate_failures:
                            raise cause from None
                        errors.append(describe(cause))
                        recorder.failed(a.group, describe(cause))
                        continue
                    if self._handle(recorder, a, message):
                        running.pop(task)
        finally:
            self.cancel(running)
            if self.worker_devices:
                recorder.note(worker_devices=sorted(self.worker_devices))
        if errors:
            return Status.FAILED, f"{len(errors)} group(s) of trials failed: {errors[0]}"
        return Status.DONE, None

    def _handle(self, recorder: Recorder, a: _Attempt, message: tuple) -> bool:
        """Apply one streamed message; True when the group is done."""
        kind = message[0]
        if kind == "worker":
            a.worker = (message[1], message[2])
            self.workers.append(a.worker)
            self.worker_of.update({p.name: a.worker for p in a.group})
        elif kind == "restart":
            recorder.sink.restart(message[1], message[2])
        elif kind == "chunk":
            _, unit, out, state = message
            chunk = a.pending.setdefault(out.chunk_index, {})
            chunk[unit] = (out, state)
            if len(chunk) == len(a.group):  # every unit has it: write them, then their events
                for name, (o, s) in chunk.items():
                    recorder.sink.chunk(name, o, s)
                del a.pending[out.chunk_index]
                held, a.held = a.held, []
                for event in held:
                    recorder.emit(event)
        elif kind == "event":
            if isinstance(message[1], ChunkDone) and a.pending:
                a.held.append(message[1])
            else:
                recorder.emit(message[1])
        elif kind == "outcome":
            _, outcome, programs, devices = message
            self.worker_devices.add(f"{a.worker[0] if a.worker else '?'}: {devices}")
            recorder.programs_used(a.group[0], Counter(programs))
            # A unit's wall time counts every attempt: the lost ones too, not only the last.
            recorder.trained(a.group, replace(outcome, seconds=outcome.seconds + a.earlier))
            return True
        return False

    def _interrupt(self, recorder: Recorder, running: dict[Any, _Attempt]) -> None:
        """Cancel every task; their units end interrupted, keeping what was written."""
        self.cancel(running)
        for a in running.values():
            outcome = GroupOutcome(False, a.earlier + time.perf_counter() - a.started,
                                   {p.name: np.full(p.replicates, -1) for p in a.group})
            recorder.trained(a.group, outcome)
        running.clear()
