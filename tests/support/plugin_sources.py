"""Source text of small workload plug-ins for the tests: a working one, and ways to break it.

TOY is a least-squares fit that traces and compiles in a moment; `broken(kind)` returns its source
with one contract violation. Each test writes the source under a module name of its own, so Python's
import caches never hand one test another test's module.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

TOY = textwrap.dedent('''
    import jax
    import jax.numpy as jnp
    from optui.workloads import Metric, Setting, SettingError, Workload, WorkloadSpec

    def build(settings):
        x = jnp.linspace(-1.0, 1.0, 32).reshape(16, 2)
        data = {"x": x, "y": x @ jnp.array([1.0, -2.0])}
        scale = settings.model["scale"]

        def init(key):
            return {"w": jnp.zeros(2) * scale}, {}

        def sample_batch(data, key, step, batch_size):
            return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, 16)

        def loss(params, state, data, idx, key):
            return jnp.mean((data["x"][idx] @ params["w"] - data["y"][idx]) ** 2), state

        def evaluate(params, state, data):
            return {"train_loss": jnp.mean((data["x"] @ params["w"] - data["y"]) ** 2)}

        return Workload("toy", data, 16, init, sample_batch, loss, evaluate)

    def check(settings):
        if settings.model["scale"] == 13:
            raise SettingError("model.scale", "must not be 13 (an unlucky number)")

    def make():
        return WorkloadSpec("toy", build, (Metric("train_loss", split="train"),), "train_loss",
                            settings={"model": {"scale": Setting("float", 1.0, low=0.0, high=100.0,
                                                                 help="init scale")}},
                            check_settings=check, description="a least-squares toy")
''')

# kind -> (replace this, with that); each breaks one promise of the contract.
BREAKS = {
    "import-error": ("import jax\n", "import jax\nraise RuntimeError('plug-in broken at import')\n"),
    "factory-raises": ("def make():\n", "def make():\n    raise ValueError('no spec today')\n"),
    "factory-wrong-type": ("def make():\n", "def make():\n    return 42\n"),
    "objective-not-declared": ('split="train"),), "train_loss",', 'split="train"),), "test_accuracy",'),
    "check-settings-raises": ('    if settings.model["scale"] == 13:', '    if settings.model["nope"] == 13:'),
    "build-raises": ("    scale = settings.model", "    1 / 0\n    scale = settings.model"),
    "init-not-a-pair": ('return {"w": jnp.zeros(2) * scale}, {}', 'return {"w": jnp.zeros(2) * scale}'),
    "init-nan": ('return {"w": jnp.zeros(2) * scale}, {}', 'return {"w": jnp.full(2, jnp.nan)}, {}'),
    "loss-not-scalar": ('return jnp.mean((data["x"][idx] @ params["w"] - data["y"][idx]) ** 2), state',
                        'return (data["x"][idx] @ params["w"] - data["y"][idx]) ** 2, state'),
    "state-changes-shape": ("return jnp.mean((data[\"x\"][idx] @ params[\"w\"] - data[\"y\"][idx]) ** 2), state",
                            "return jnp.mean((data[\"x\"][idx] @ params[\"w\"] - data[\"y\"][idx]) ** 2), "
                            "{\"extra\": jnp.zeros(3)}"),
    "strategy-not-a-strategy": ('return Workload("toy", data, 16, init, sample_batch, loss, evaluate)',
                                'return Workload("toy", data, 16, init, sample_batch, loss, evaluate, lambda b: "fast")'),
    "evaluate-wrong-metrics": ('return {"train_loss": jnp.mean', 'return {"loss": jnp.mean'),
    "evaluate-not-scalar": ('return {"train_loss": jnp.mean((data["x"] @ params["w"] - data["y"]) ** 2)}',
                            'return {"train_loss": (data["x"] @ params["w"] - data["y"]) ** 2}'),
}

_counter = itertools.count()


def broken(kind: str) -> str:
    old, new = BREAKS[kind]
    assert old in TOY, kind
    return TOY.replace(old, new, 1)


def write_module(folder: Path, source: str = TOY, stem: str = "toy_workload") -> str:
    """Write source as a module with a name no other test uses; returns the module name."""
    name = f"{stem}_{next(_counter)}_{abs(hash(str(folder))) % 10**8}"
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    return name


def toy_preset(workload: str, extra: str = "") -> str:
    return textwrap.dedent(f'''\
        study = "toy"
        workload = "{workload}"
        [budget]
        iterations = 4
        [eval]
        points = 2
        [replicates]
        count = 2
        [configs.sgd]
        optimizer = "sgd"
        learning_rate = 0.1
        batch_size = 4
    ''') + extra


def write_dist_info(folder: Path, dist: str, entries: dict[str, str], version: str = "1.0") -> Path:
    """An installed distribution's metadata (what pip writes) registering entry points, so that
    importlib.metadata finds them when `folder` is on sys.path."""
    info = folder / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    lines = ["[optui.workloads]"] + [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return info
