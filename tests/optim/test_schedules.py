"""Schedules and chain elements as data: each schedule equals optax's own schedule function at
sampled steps, is sized from the member's step count, trains inside the optimiser as optax would,
and is validated in configs and search spaces (kinds, the fractions each kind reads)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optui.optim import registry as optimizers
from optui.study import presets
from optui.errors import PresetError
from optui.export.search_report import write_best_config
from optui.optim import schedules

from support.common import tiny_preset_text

LR = 0.4
T = 200


def ours(kind: str, total: int = T, **fractions) -> np.ndarray:
    hp = {**schedules.DEFAULTS[kind], **fractions, "schedule": schedules.code(kind)}
    hp = {k: jnp.float32(v) for k, v in hp.items()}
    fn = jax.jit(jax.vmap(lambda c: schedules.scheduled(jnp.float32(LR), hp, jnp.float32(total))(c)))
    return np.asarray(fn(jnp.arange(total)))  # the counts of a run's steps: 0 .. total - 1


def reference(schedule) -> np.ndarray:
    return np.asarray([float(schedule(c)) for c in range(T)])


def warm_then(decay, warm: int):
    return optax.join_schedules([optax.linear_schedule(0.0, LR, warm), decay], [warm])


@pytest.mark.parametrize("kind, fractions, expected", [
    ("constant", {}, lambda: optax.constant_schedule(LR)),
    ("constant", {"warmup_fraction": 0.1}, lambda: optax.warmup_constant_schedule(0.0, LR, 20)),
    ("cosine", {}, lambda: optax.cosine_decay_schedule(LR, T)),
    ("cosine", {"final_fraction": 0.1}, lambda: optax.cosine_decay_schedule(LR, T, alpha=0.1)),
    ("linear", {"final_fraction": 0.25}, lambda: optax.linear_schedule(LR, LR * 0.25, T)),
    ("exponential", {}, lambda: optax.exponential_decay(LR, T, 0.01)),
    ("exponential", {"final_fraction": 0.5}, lambda: optax.exponential_decay(LR, T, 0.5)),
    ("step", {}, lambda: optax.exponential_decay(LR, T / 3, 0.1, staircase=True)),
    ("step", {"step_every": 0.25, "step_factor": 0.5},
     lambda: optax.exponential_decay(LR, T / 4, 0.5, staircase=True)),
    ("warmup_cosine", {}, lambda: optax.warmup_cosine_decay_schedule(0.0, LR, 10, T)),
    ("warmup_cosine", {"warmup_fraction": 0.2, "final_fraction": 0.05},
     lambda: optax.warmup_cosine_decay_schedule(0.0, LR, 40, T, end_value=LR * 0.05)),
    ("linear", {"warmup_fraction": 0.1, "final_fraction": 0.0},
     lambda: warm_then(optax.linear_schedule(LR, 0.0, T - 20), 20)),
])
def test_schedules_match_optax_at_every_step(kind, fractions, expected):
    np.testing.assert_allclose(ours(kind, **fractions), reference(expected()), rtol=2e-5, atol=1e-7)


def test_a_schedule_is_sized_from_the_members_step_count():
    short, long = ours("cosine", total=100), ours("cosine", total=T)
    assert short[50] == pytest.approx(long[100], rel=1e-5)  # half-way is half-way
    assert short[99] < 1e-3 and long[99] > 0.1


def test_kinds_are_data_in_one_program():
    """Members with different kinds and fractions share one compiled schedule."""
    kinds = ["cosine", "step", "linear", "warmup_cosine"]
    hp = {"schedule": jnp.asarray([schedules.code(k) for k in kinds]),
          "warmup_fraction": jnp.asarray([0.0, 0.0, 0.0, 0.05]), "final_fraction": jnp.asarray([0.0, 0.0, 0.25, 0.0]),
          "step_every": jnp.full(4, 1 / 3), "step_factor": jnp.full(4, 0.1)}
    fn = jax.jit(jax.vmap(lambda h, c: schedules.multiplier(c, h, jnp.float32(T)), in_axes=(0, None)))
    got = np.asarray(fn(hp, jnp.int32(150)))
    np.testing.assert_allclose(got * LR, [float(optax.cosine_decay_schedule(LR, T)(150)),
                                          float(optax.exponential_decay(LR, T / 3, 0.1, staircase=True)(150)),
                                          float(optax.linear_schedule(LR, LR * 0.25, T)(150)),
                                          float(optax.warmup_cosine_decay_schedule(0.0, LR, 10, T)(150))],
                               rtol=2e-5)
    assert fn._cache_size() == 1


def test_a_scheduled_optimiser_trains_as_optax_with_that_schedule():
    target = jnp.array([1.0, -2.0, 0.5])
    grad = jax.grad(lambda p: jnp.sum((p - target) ** 2))
    hp = {"learning_rate": 0.1, "momentum": 0.8, "schedule": schedules.code("cosine"), "warmup_fraction": 0.1,
          "final_fraction": 0.0, "total_steps": 20.0}

    def steps(tx, n=20):
        p, s = jnp.zeros(3), tx.init(jnp.zeros(3))
        for _ in range(n):
            u, s = tx.update(grad(p), s, p)
            p = optax.apply_updates(p, u)
        return np.asarray(p)

    ours_tx = optimizers.build("momentum", {k: jnp.float32(v) for k, v in hp.items()})
    ref = optax.sgd(optax.warmup_cosine_decay_schedule(0.0, 0.1, 2, 20), momentum=0.8)
    np.testing.assert_allclose(steps(ours_tx), steps(ref), rtol=1e-5, atol=1e-6)


# --- validation in presets and search spaces -------------------------------------------------------

def config(tmp_path, **settings):
    cfg = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 8, **settings}
    path = tmp_path / "p.toml"
    path.write_text(tiny_preset_text(configs={"x": cfg}), encoding="utf-8")
    return path


def test_a_schedule_fills_its_kinds_defaults_and_reads_back_by_name(tmp_path):
    cfg = presets.load(config(tmp_path, schedule="warmup_cosine")).configs["x"]
    assert cfg.hyperparams["schedule"] == schedules.code("warmup_cosine")
    assert cfg.hyperparams["warmup_fraction"] == 0.05 and cfg.hyperparams["final_fraction"] == 0.0
    assert cfg.as_dict()["schedule"] == "warmup_cosine"


def test_the_constant_step_is_the_default_and_adds_nothing(tmp_path):
    plain = presets.load(config(tmp_path)).configs["x"].hyperparams
    explicit = presets.load(config(tmp_path, schedule="constant")).configs["x"].hyperparams
    assert plain == explicit == {"learning_rate": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    warm = presets.load(config(tmp_path, warmup_fraction=0.1)).configs["x"].hyperparams
    assert warm["schedule"] == schedules.code("constant") and warm["warmup_fraction"] == 0.1


def test_chain_elements_are_absent_unless_set(tmp_path):
    cfg = presets.load(config(tmp_path, clip_norm=1.0, weight_decay=0.01)).configs["x"]
    assert cfg.hyperparams["clip_norm"] == 1.0 and cfg.hyperparams["weight_decay"] == 0.01
    assert "clip_value" not in cfg.hyperparams


@pytest.mark.parametrize("settings, key, fragment", [
    ({"schedule": "step", "final_fraction": 0.1}, "configs.x.final_fraction",
     "does not apply to schedule = 'step'; it is read by cosine, linear, exponential, warmup_cosine"),
    ({"schedule": "exponential", "final_fraction": 0.0}, "configs.x.final_fraction", "must be > 0"),
    ({"schedule": "cosinus"}, "configs.x.schedule", "must be one of 'constant', 'cosine'"),
    ({"warmup_fraction": 1.0}, "configs.x.warmup_fraction", "must be a number in [0, 1)"),
    ({"clip_norm": 0.0}, "configs.x.clip_norm", "must be a number in (0, inf)"),
    ({"weight_decay": -0.1}, "configs.x.weight_decay", "must be a number in [0, inf)"),
    ({"clip_norm": 1e-60}, "configs.x.clip_norm", "does not fit a 32-bit float"),
    ({"learning_rate": 1e39}, "configs.x.learning_rate", "does not fit a 32-bit float"),
])
def test_bad_schedules_and_elements_name_the_key(tmp_path, settings, key, fragment):
    path = config(tmp_path, **settings)
    with pytest.raises(PresetError) as err:
        presets.load(path)
    assert str(err.value).startswith(f"{path}: {key}") and fragment in str(err.value), str(err.value)


def test_an_optimiser_without_a_step_size_refuses_a_schedule(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(tiny_preset_text(configs={"x": {"optimizer": "rprop", "learning_rate": 0.01, "batch_size": 8,
                                                    "schedule": "cosine"}}), encoding="utf-8")
    with pytest.raises(PresetError, match=r"configs.x.schedule: rprop takes no learning-rate schedule"):
        presets.load(path)


def test_a_search_space_tunes_the_warmup_fraction(tmp_path):
    extra = """
[search.warm]
optimizer = "adam"
trials = 4
schedule = "warmup_cosine"
learning_rate = 0.01
warmup_fraction = { low = 0.0, high = 0.3 }
clip_norm = { low = 0.1, high = 10, scale = "log" }
batch_size = 8
"""
    path = tmp_path / "p.toml"
    path.write_text(tiny_preset_text(extra=extra), encoding="utf-8")
    space = presets.load(path).search["warm"]
    trials = space.sample_many(4)
    assert len({t["warmup_fraction"] for t in trials}) == 4
    assert all(t["schedule"] == schedules.code("warmup_cosine") and t["final_fraction"] == 0.0 for t in trials)
    assert all(0.1 <= t["clip_norm"] <= 10 for t in trials)
    assert "schedule=warmup_cosine" in str(space)
    # The best trial written back as a config is a valid preset with the kind by name.
    write_best_config(path, "best", space.optimizer, trials[0], "from the search")
    best = presets.load(path).configs["best"]
    assert best.as_dict()["schedule"] == "warmup_cosine"
    assert best.hyperparams["warmup_fraction"] == trials[0]["warmup_fraction"]
    assert 'schedule = "warmup_cosine"' in path.read_text()


def test_a_search_space_cannot_range_over_the_kind(tmp_path):
    extra = """
[search.s]
optimizer = "sgd"
learning_rate = 0.1
schedule = { low = 0, high = 3 }
batch_size = 8
"""
    path = tmp_path / "p.toml"
    path.write_text(tiny_preset_text(extra=extra), encoding="utf-8")
    with pytest.raises(PresetError, match=r"search.s.schedule is a choice"):
        presets.load(path)
