import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dltheory import data, models, training
from dltheory.training import loop
from dltheory.training import DivergenceWarning, count_compilations, optimizer, sweep, train


def quad(x, h):
    return 0.5 * x @ (h @ x)


def ce(model, batch):
    return models.cross_entropy(model(batch["x"]), batch["y"])


def acc(model, ev):
    return {"acc": models.accuracy(model(ev["x"]), ev["y"]), "norm": models.param_norm(model)}


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def small_mlp(key):
    return models.MLP((64, 16, 10), rngs=nnx.Rngs(key))


# ---------------------------------------------------------------------------- basics


def test_logged_losses_are_the_exact_gd_iterates():
    h = data.quadratic([0.5, 2.0, 3.0], rotate=True)
    x0 = jnp.array([1.0, -1.0, 0.5])
    res = train(quad, x0, optimizer(optax.sgd, learning_rate=0.1), steps=30, batches=h,
                log_every=5)
    np.testing.assert_array_equal(res.steps, np.arange(0, 31, 5))
    hn, x = np.asarray(h, np.float64), np.asarray(x0, np.float64)
    expected = []
    for k in range(31):
        if k % 5 == 0:
            expected.append(0.5 * x @ hn @ x)
        if k < 30:
            x = x - 0.1 * hn @ x
    np.testing.assert_allclose(res["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(res.params, x, rtol=1e-5, atol=1e-7)
    assert res.status == "finished 30 steps" and not res.diverged


def test_vector_metrics_keep_their_shape():
    h = data.quadratic([1.0, 2.0])
    res = train(quad, jnp.ones(2), optimizer(optax.sgd, learning_rate=0.1), steps=10,
                batches=h, metrics=lambda x, _: {"x": x}, log_every=2)
    assert res["x"].shape == (6, 2)
    np.testing.assert_allclose(res["x"][-1], res.params)


def test_same_key_same_result_bit_for_bit(digits):
    mb = data.Minibatches.of(digits.train, 32)
    runs = [train(ce, small_mlp(0), optimizer(optax.adam, learning_rate=1e-2), steps=60,
                  batches=mb, key=7, log_every=10, metrics=acc, eval_data=digits.test)
            for _ in range(2)]
    for k in runs[0].metrics:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
    other = train(ce, small_mlp(0), optimizer(optax.adam, learning_rate=1e-2), steps=60,
                  batches=mb, key=8, log_every=10)
    assert not np.array_equal(other["loss"], runs[0]["loss"])


def test_chunking_does_not_change_the_numbers(digits):
    mb = data.Minibatches.of(digits.train, 64)
    kw = dict(steps=90, batches=mb, key=3, log_every=3)
    one = train(ce, small_mlp(1), optimizer(optax.sgd, learning_rate=0.1), **kw)
    many = train(ce, small_mlp(1), optimizer(optax.sgd, learning_rate=0.1), chunk_steps=21,
                 **kw)
    np.testing.assert_array_equal(one["loss"], many["loss"])


def test_nnx_model_is_trained_and_input_model_untouched(digits):
    model = small_mlp(0)
    before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
    res = train(ce, model, optimizer(optax.adam, learning_rate=1e-2), steps=100,
                batches=digits.train, log_every=50, metrics=acc, eval_data=digits.test)
    after = nnx.state(model, nnx.Param)
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.array, after))
    assert isinstance(res.params, models.MLP)
    assert res["loss"][-1] < 0.5 * res["loss"][0]
    assert res["acc"][-1] > 0.85
    final = ce(res.params, digits.train)
    np.testing.assert_allclose(res["loss"][-1], final, rtol=1e-5)


def test_plain_optax_transformation_is_accepted():
    h = data.quadratic([1.0])
    res = train(quad, jnp.ones(1), optax.sgd(0.5), steps=4, batches=h)
    np.testing.assert_allclose(res["loss"], 0.5 * 0.5 ** (2 * np.arange(5)), rtol=1e-6)


def test_final_is_the_last_finite_logged_value():
    steps = np.arange(5)
    r = training.RunResult(steps, {"loss": np.array([4.0, 3.0, 2.0, np.nan, np.nan]),
                                   "acc": np.full(5, np.nan)}, None, None, 3, 4)
    assert r.final() == 2.0 and r.final("loss") == 2.0
    assert np.isnan(r.final("acc"))
    r = training.RunResult(steps, {"loss": np.array([4.0, 3.0, 2.0, 1.5, 1.0])}, None, None, None, 4)
    assert r.final() == 1.0


def test_member_is_the_sweep_member_and_checks_its_index():
    h = data.quadratic([1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        res = sweep(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=jnp.array([0.5, 1e30])),
                    steps=5, batches=h)
        # non-finite from the start: diverged at step 0, which is not "did not diverge"
        at_start = sweep(quad, jnp.array([jnp.inf]),
                         optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2])),
                         steps=5, batches=h)
    assert list(res.diverged_at) == [-1, 1]
    assert res.member(0).diverged_at is None and res.member(1).diverged_at == 1
    assert res.member(1).status == "diverged at step 1"
    assert at_start.member(0).diverged_at == 0 and at_start.member(1).diverged
    for i, j in ((-2, 0), (-1, 1)):  # negative indices count from the end, as in a list
        np.testing.assert_array_equal(res.member(i)["loss"], res["loss"][j])
    for bad in (2, -3):
        with pytest.raises(ValueError, match="`i`"):
            res.member(bad)


def test_results_are_immutable_and_sweeps_print_without_their_graph(digits):
    r = train(quad, jnp.ones(1), optax.sgd(0.5), steps=2, batches=data.quadratic([1.0]))
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        r.params = None
    grid = sweep(ce, small_mlp(jax.random.key(0)),
                 optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2])), steps=2,
                 batches=digits.train)
    assert grid._graphdef is not None
    with pytest.raises(AttributeError):
        grid.params = None
    spec = optimizer(optax.sgd, learning_rate=0.1)
    with pytest.raises(AttributeError):  # a spec in a cache key cannot change under it
        spec.hyperparams = {"learning_rate": 0.2}
    text = repr(grid)
    assert "_graphdef" not in text and "_aux" not in text and "GraphDef" not in text


def test_optimizer_static_arguments_are_ordered_by_name():
    """Static arguments in any order (of any types) make the same spec and one program."""
    a = optimizer(optax.sgd, learning_rate=0.1, momentum=0.9, nesterov=True,
                  accumulator_dtype=None)
    b = optimizer(optax.sgd, accumulator_dtype=None, nesterov=True, learning_rate=0.1,
                  momentum=0.9)
    assert a.static == b.static == (("accumulator_dtype", None), ("nesterov", True))
    assert a.update_fn is b.update_fn


def test_optimizer_accepts_a_factory_without_a_readable_signature():
    """A factory Python cannot read a signature from (a builtin, some C extensions) is
    taken with its arguments unchecked instead of failing in ``inspect``."""
    import inspect

    class Opaque:
        __signature__ = "not a signature"

        def __call__(self, **kwargs):
            return optax.sgd(**kwargs)

    # Python 3.11 raises TypeError for the bad __signature__, 3.13 ValueError
    for factory in (max, Opaque()):
        with pytest.raises((TypeError, ValueError)):
            inspect.signature(factory)
        spec = optimizer(factory, learning_rate=0.1)
        assert spec.hyperparams == {"learning_rate": 0.1} and spec.factory is factory


def test_optimizer_specs_compare_and_hash_by_identity():
    """Specs hold arrays (a swept learning rate), so they are equal only to themselves:
    comparing two never asks an array for its truth value, and any spec is hashable."""
    a = optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2]))
    b = optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2]))
    assert a == a and a != b and len({a, b, a}) == 2


# ------------------------------------------------------------------------ divergence


def _first_overflow(lr, lam, x0, steps):
    """Reference: the first step whose float32 loss is not finite, by numpy."""
    x = np.float32(x0)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps):
            loss = np.float32(0.5) * x * (np.float32(lam) * x)
            if not np.isfinite(loss):
                return k
            x = x - np.float32(lr) * (np.float32(lam) * x)
    return None


def test_divergence_is_detected_at_the_right_step_and_reported():
    h = data.quadratic([4.0])
    with pytest.warns(DivergenceWarning, match=r"diverged at step \d+"):
        res = train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=1.2), steps=400,
                    batches=h, log_every=1, chunk_steps=50)
    expected = _first_overflow(1.2, 4.0, 1.0, 400)
    assert expected is not None
    assert res.diverged_at == expected
    assert res.status == f"diverged at step {expected}"
    assert np.all(np.isfinite(res["loss"][:expected]))
    assert np.all(np.isnan(res["loss"][expected:]))
    # the run stopped early: the parameters are the last finite ones
    assert np.all(np.isfinite(np.asarray(res.params)))


def test_divergence_in_a_sweep_is_per_member():
    h = data.quadratic([4.0])
    lrs = jnp.array([0.1, 0.45, 0.9, 1.5])
    res = sweep(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=lrs), steps=300,
                batches=h)
    for i, lr in enumerate(np.asarray(lrs)):
        expected = _first_overflow(lr, 4.0, 1.0, 300)
        assert res.diverged_at[i] == (-1 if expected is None else expected)
    assert list(res.diverged) == [False, False, True, True]
    assert res.member(3).status.startswith("diverged at step")


def test_warning_can_be_silenced():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=2.0), steps=200,
                    batches=data.quadratic([4.0]), warn=False)
    assert res.diverged


# --------------------------------------------------------------------------- sweeps


def test_sweep_over_learning_rates_equals_single_runs():
    h = data.quadratic([0.5, 1.5, 4.0], rotate=True)
    lrs = [0.05, 0.2, 0.4]
    sw = sweep(quad, jnp.ones(3), optimizer(optax.sgd, learning_rate=jnp.array(lrs)),
               steps=50, batches=h, log_every=5)
    for i, lr in enumerate(lrs):
        one = train(quad, jnp.ones(3), optimizer(optax.sgd, learning_rate=lr), steps=50,
                    batches=h, log_every=5)
        # two compiled programs (one vmapped) of the same float32 arithmetic: after 50
        # contracting steps the loss (down to 1e-11) may differ in its last few bits
        np.testing.assert_allclose(sw["loss"][i], one["loss"], rtol=1e-5)


def test_sweep_over_seeds_equals_a_loop_of_single_runs(digits):
    mb = data.Minibatches.of(digits.train, 32)
    seeds = [0, 1, 2]
    kw = dict(steps=40, batches=mb, log_every=10, metrics=acc, eval_data=digits.test)
    opt = optimizer(optax.adam, learning_rate=3e-3)
    sw = sweep(ce, small_mlp, opt, seeds=seeds, **kw)
    assert sw["loss"].shape == (3, 5) and sw["acc"].shape == (3, 5)
    again = sweep(ce, small_mlp, opt, seeds=seeds, **kw)  # same keys, same bits
    np.testing.assert_array_equal(sw["loss"], again["loss"])
    assert not np.array_equal(sw["loss"][0], sw["loss"][1])  # seeds do differ
    for i, s in enumerate(seeds):
        key = jax.random.key(s)
        one = train(ce, small_mlp(key), opt, key=key, **kw)
        np.testing.assert_allclose(sw["loss"][i], one["loss"], rtol=2e-5)
        np.testing.assert_allclose(sw["acc"][i], one["acc"], atol=1e-6)
        member = sw.member(i)
        assert isinstance(member.params, models.MLP)
        np.testing.assert_allclose(ce(member.params, digits.train),
                                   ce(one.params, digits.train), rtol=2e-5)


def test_sweep_over_stacked_problems():
    hs = jnp.stack([data.quadratic([1.0, c]) for c in (2.0, 3.0)])
    sw = sweep(quad, jnp.ones(2), optimizer(optax.sgd, learning_rate=0.1), steps=20,
               batches=hs, batch_axis=0)
    for i, c in enumerate((2.0, 3.0)):
        one = train(quad, jnp.ones(2), optimizer(optax.sgd, learning_rate=0.1), steps=20,
                    batches=data.quadratic([1.0, c]))
        np.testing.assert_allclose(sw["loss"][i], one["loss"], rtol=1e-6)


def test_sweep_grid_errors():
    h = data.quadratic([1.0])
    opt = optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"grid sizes disagree \(seeds: 3, optimizer "
                                         r"hyperparameters: 2\)"):
        sweep(quad, jnp.ones(1), opt, steps=5, batches=h, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="a sweep needs a grid"):
        sweep(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), steps=5, batches=h)
    with pytest.raises(ValueError, match="`batch_axis` must be None or 0"):
        sweep(quad, jnp.ones(1), opt, steps=5, batches=h, batch_axis=1)
    with pytest.raises(ValueError, match="`seeds` must not be empty"):
        sweep(quad, jnp.ones(1), opt, steps=5, batches=h, seeds=[])


SHARDED = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np, optax
    from flax import nnx
    from dltheory import data, models
    from dltheory.training import optimizer, sweep
    assert len(jax.devices()) == 2, jax.devices()
    ds = data.digits()
    def ce(model, b):
        return models.cross_entropy(model(b["x"]), b["y"])
    def init(k):
        return models.MLP((64, 16, 10), rngs=nnx.Rngs(k))
    mb = data.Minibatches.of(ds.train, 32)
    out = {}
    for name, devs in (("sharded", jax.devices()), ("single", jax.devices()[:1])):
        # 5 seeds: not a multiple of 2 devices, so the grid is padded
        res = sweep(ce, init, optimizer(optax.sgd, learning_rate=0.1), seeds=[0, 1, 2, 3, 4],
                    steps=30, batches=mb, log_every=10, devices=devs)
        out[name] = res["loss"].tolist()
        # where the members' parameters were trained: on both devices, or on one
        out[name + "_devices"] = len(jax.tree.leaves(res.params)[0].sharding.device_set)
    h = data.quadratic([0.5, 4.0], rotate=True)
    for name, devs in (("q_sharded", jax.devices()), ("q_single", jax.devices()[:1])):
        res = sweep(lambda x, h: 0.5 * x @ h @ x, jnp.ones(2),
                    optimizer(optax.sgd, learning_rate=jnp.linspace(0.1, 0.6, 8)),
                    steps=100, batches=h, log_every=10, devices=devs)
        out[name] = res["loss"].tolist()
        out[name + "_div"] = res.diverged_at.tolist()
    # stacked problems (batch_axis=0), 3 of them on 2 devices: the batches are padded too
    hs = jnp.stack([data.quadratic([1.0, c]) for c in (2.0, 3.0, 5.0)])
    for name, devs in (("s_sharded", jax.devices()), ("s_single", jax.devices()[:1])):
        res = sweep(lambda x, h: 0.5 * x @ h @ x, jnp.ones(2),
                    optimizer(optax.sgd, learning_rate=0.1), steps=20, batches=hs,
                    batch_axis=0, devices=devs)
        out[name] = res["loss"].tolist()
    # one device that is not the default: the run happens there
    res = sweep(lambda x, h: 0.5 * x @ h @ x, jnp.ones(2), optimizer(optax.sgd, learning_rate=0.1),
                steps=4, batches=hs, batch_axis=0, devices=[jax.devices()[1]])
    out["second_only"] = [d.id for d in jax.tree.leaves(res.params)[0].sharding.device_set]
    print(json.dumps(out))
""")


def test_sharded_sweep_equals_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # Same numbers up to float32 rounding: each device runs a different local grid size
    # (3 of 6 padded members instead of 5), which XLA may vectorize differently.
    np.testing.assert_allclose(np.array(out["sharded"]), np.array(out["single"]), rtol=1e-5)
    # and the grid really was split: a sweep that ignored `devices` would pass the line above
    assert (out["sharded_devices"], out["single_devices"]) == (2, 1)
    np.testing.assert_allclose(np.array(out["q_sharded"]), np.array(out["q_single"]),
                               rtol=1e-5)
    assert out["q_sharded_div"] == out["q_single_div"]
    np.testing.assert_allclose(np.array(out["s_sharded"]), np.array(out["s_single"]),
                               rtol=1e-5)
    assert out["second_only"] == [1]


def test_padding_repeats_the_last_member():
    from dltheory.training import run

    tree = {"w": jnp.arange(12.0).reshape(3, 2, 2), "b": jnp.arange(3.0)}
    out = run._pad(tree, 6)
    assert out["w"].shape == (6, 2, 2) and out["b"].shape == (6,)
    np.testing.assert_array_equal(out["w"][3:], np.broadcast_to(tree["w"][2], (3, 2, 2)))
    np.testing.assert_array_equal(out["b"], [0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert run._pad(tree, 3)["w"] is tree["w"]  # nothing to pad


def test_sweep_returns_each_members_optimizer_state():
    h = data.quadratic([0.5, 2.0])
    lrs = [0.01, 0.05]
    sw = sweep(quad, jnp.ones(2), optimizer(optax.adam, learning_rate=jnp.array(lrs)),
               steps=10, batches=h)
    for i, lr in enumerate(lrs):
        one = train(quad, jnp.ones(2), optimizer(optax.adam, learning_rate=lr), steps=10,
                    batches=h)
        assert jax.tree.structure(sw.member(i).opt_state) == jax.tree.structure(one.opt_state)
        for a, b in zip(jax.tree.leaves(sw.member(i).opt_state), jax.tree.leaves(one.opt_state)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_params_that_are_not_arrays_are_refused():
    with pytest.raises(TypeError, match="pytree of floating arrays"):
        train(quad, {"w": object()}, optax.sgd(0.1), steps=1, batches=data.quadratic([1.0]))


def test_integer_and_boolean_params_are_refused():
    for bad in (jnp.array([1, 2]), {"w": True}):
        with pytest.raises(TypeError, match="pytree of floating arrays"):
            train(quad, bad, optax.sgd(0.1), steps=1, batches=data.quadratic([1.0]))


def test_train_returns_the_optimizer_state_of_its_last_step():
    h = data.quadratic([0.5, 2.0])
    res = train(quad, jnp.ones(2), optax.adam(0.1), steps=3, batches=h)
    opt, x = optax.adam(0.1), jnp.ones(2)
    state = opt.init(x)
    for _ in range(3):
        upd, state = opt.update(jax.grad(quad)(x, h), state, x)
        x = optax.apply_updates(x, upd)
    assert jax.tree.structure(res.opt_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(res.opt_state), jax.tree.leaves(state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # a run that is non-finite from the start diverged at step 0
    with pytest.warns(DivergenceWarning):
        bad = train(quad, jnp.array([jnp.inf]), optax.sgd(0.1), steps=3, batches=h[:1, :1])
    assert bad.diverged_at == 0 and bad.status == "diverged at step 0"


def test_the_default_key_is_zero(digits):
    mb = data.Minibatches.of(digits.train, 16)
    kw = dict(steps=5, batches=mb)
    opt = optimizer(optax.sgd, learning_rate=0.1)
    x0 = small_mlp(jax.random.key(0))
    default, zero, one = (train(ce, x0, opt, **kw, **k)["loss"] for k in ({}, {"key": 0}, {"key": 1}))
    np.testing.assert_array_equal(default, zero)
    assert not np.array_equal(default, one)
    grid = dict(steps=5, batches=mb)
    lrs = optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2]))
    default, zero, one = (sweep(ce, x0, lrs, **grid, **k)["loss"] for k in ({}, {"key": 0}, {"key": 1}))
    np.testing.assert_array_equal(default, zero)
    assert not np.array_equal(default, one)


def test_stacked_problems_set_the_grid_size_by_their_leading_axis():
    """Three 2x2 problems: a grid of 3 (the last axis is 2); a batch source cannot be
    stacked."""
    hs = jnp.stack([data.quadratic([1.0, c]) for c in (2.0, 3.0, 5.0)])
    sw = sweep(quad, jnp.ones(2), optimizer(optax.sgd, learning_rate=0.1), steps=4,
               batches=hs, batch_axis=0)
    assert sw["loss"].shape == (3, 5)
    with pytest.raises(ValueError, match="stacks full batches"):
        sweep(quad, jnp.ones(2), optimizer(optax.sgd, learning_rate=jnp.array([0.1, 0.2])),
              steps=4, batches=data.Minibatches.of({"x": jnp.ones((4, 2))}, 2), batch_axis=0)


def test_a_repeated_sweep_from_an_init_function_compiles_nothing_new(digits):
    kw = dict(steps=4, batches=digits.train, seeds=[0, 1])
    opt = optimizer(optax.sgd, learning_rate=0.1)
    sweep(ce, small_mlp, opt, **kw)
    with count_compilations() as compiled:
        sweep(ce, small_mlp, opt, **kw)
    assert compiled() == 0


def test_the_divergence_warning_points_at_the_caller():
    with pytest.warns(DivergenceWarning) as record:
        train(quad, jnp.ones(1), optax.sgd(1e30), steps=5, batches=data.quadratic([1.0]))
    assert record[0].filename == __file__


# --------------------------------------------------------------- compilation reuse


def test_new_hyperparameters_do_not_recompile(digits):
    kw = dict(steps=20, batches=digits.train, log_every=10, metrics=acc, eval_data=digits.test)
    train(ce, small_mlp(0), optimizer(optax.adam, learning_rate=1e-3, b1=0.9), **kw)
    with count_compilations() as compiled:
        train(ce, small_mlp(1), optimizer(optax.adam, learning_rate=3e-3, b1=0.8), **kw)
        train(ce, small_mlp(2), optimizer(optax.adam, learning_rate=1e-2, b1=0.95), **kw)
    assert compiled() == 0
    # injecting a different set of hyperparameters is a different program
    with count_compilations() as compiled:
        train(ce, small_mlp(2), optimizer(optax.adam, learning_rate=1e-2), **kw)
    assert compiled() >= 1


def test_count_compilations_sees_a_new_program():
    with count_compilations() as compiled:
        train(quad, jnp.ones(7), optimizer(optax.sgd, learning_rate=0.1), steps=13,
              batches=data.quadratic(np.arange(1.0, 8.0)), log_every=13)
    assert compiled() >= 1


# ------------------------------------------------------------------------ progress


@pytest.fixture(autouse=True)
def _automatic_progress(monkeypatch):
    monkeypatch.delenv(training.PROGRESS_ENV_VAR, raising=False)


def test_short_runs_print_no_progress(capfd):
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), steps=100,
          batches=data.quadratic([1.0]), chunk_steps=10)
    assert capfd.readouterr().err == ""


def test_long_runs_show_a_progress_bar(capfd, monkeypatch):
    monkeypatch.setattr(loop, "PROGRESS_AFTER_SECONDS", 0.0)
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), steps=100,
          batches=data.quadratic([1.0]), chunk_steps=10)
    err = capfd.readouterr().err
    assert "train" in err and "100/100" in err


def test_progress_env_switch_turns_automatic_bars_off(capfd, monkeypatch):
    monkeypatch.setattr(loop, "PROGRESS_AFTER_SECONDS", 0.0)
    monkeypatch.setenv(training.PROGRESS_ENV_VAR, "0")
    kw = dict(steps=100, batches=data.quadratic([1.0]), chunk_steps=10)
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), **kw)
    assert capfd.readouterr().err == ""
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), progress=True, **kw)
    assert "100/100" in capfd.readouterr().err


def test_progress_can_be_forced_on_and_off(capfd):
    kw = dict(steps=100, batches=data.quadratic([1.0]), chunk_steps=10)
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), progress=True, **kw)
    assert "100/100" in capfd.readouterr().err


def _bar_updates(monkeypatch) -> list[int]:
    """The step counts each chunk reports to the progress bar."""
    seen: list[int] = []
    real = loop._Progress.update

    def update(self, n):
        seen.append(n)
        real(self, n)

    monkeypatch.setattr(loop._Progress, "update", update)
    return seen


def test_progress_counts_every_step_once_and_stops_with_the_run(monkeypatch):
    seen = _bar_updates(monkeypatch)
    h = data.quadratic([1.0])
    # 10 intervals of 10 steps in chunks of 3 intervals: 30 + 30 + 30 + the last 10
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), steps=100, batches=h,
          log_every=10, chunk_steps=30)
    assert seen == [30, 30, 30, 10]
    # every member diverged in the first chunk (at step 1, or at step 0 from inf): no more
    for x0, lrs in ((jnp.ones(1), [10.0, 1e30]), (jnp.array([jnp.inf]), [0.1, 0.2])):
        seen.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            res = sweep(quad, x0, optimizer(optax.sgd, learning_rate=jnp.array(lrs)), steps=100,
                        batches=h, log_every=10, chunk_steps=30)
        assert res.diverged.all() and seen == [30], (lrs, seen)
        assert np.isnan(res["loss"][:, -1]).all()


def test_a_finished_run_opens_no_progress_bar(capfd):
    """Even forced on, a bar appears only while steps remain (one chunk: none)."""
    train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), progress=True,
          steps=10, batches=data.quadratic([1.0]))
    assert capfd.readouterr().err == ""


def test_count_compilations_counts_each_program_once_however_often_it_is_used():
    x = jnp.ones(3)
    counts = []
    for i in range(4):
        with count_compilations() as compiled:
            jax.jit(lambda v, i=i: v * (2.0 + i))(x)
        counts.append(compiled())
    assert counts[1:] == [1, 1, 1], counts


@pytest.mark.parametrize("log_every", [1, 2, 5])
def test_log_every_and_chunks_do_not_change_the_run(log_every):
    """20 steps of GD on a quadratic logged every 1, 2 or 5 steps, in chunks shorter than
    a logging interval too: the exact iterates x_k = (1 - lr h)^k x_0 at the logged steps."""
    hs, lr = np.array([0.3, 1.0, 2.5]), 0.3
    h = data.quadratic(hs)
    opt = optimizer(optax.sgd, learning_rate=lr)
    k = np.arange(0, 21, log_every)
    x = (1 - lr * hs)[None, :] ** k[:, None]
    want = 0.5 * np.sum(hs * x**2, axis=1)
    for chunk_steps in (None, 1, 3):
        res = train(quad, jnp.ones(3), opt, steps=20, batches=h, log_every=log_every,
                    chunk_steps=chunk_steps)
        np.testing.assert_array_equal(res.steps, k)
        np.testing.assert_allclose(res["loss"], want, rtol=1e-5)
        np.testing.assert_allclose(res.params, x[-1], rtol=1e-5)


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(steps=0), ValueError, "`steps` must be an integer >= 1; got 0"),
    (dict(steps=10, log_every=3), ValueError, "`steps` (10) must be a multiple of `log_every` (3)"),
    (dict(steps=10, log_every=0), ValueError, "`log_every` must be an integer >= 1"),
    (dict(steps=10, chunk_steps=0), ValueError, "`chunk_steps` must be an integer >= 1"),
    (dict(steps=2.5), TypeError, "`steps` must be an integer"),
    (dict(steps=10, key="seed"), TypeError, "`key` must be an int seed or a jax PRNG key"),
])
def test_train_rejects_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as err:
        train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1),
              batches=data.quadratic([1.0]), **kwargs)
    assert words in str(err.value)


def test_optimizer_validation():
    with pytest.raises(TypeError, match="`optimizer` must be an optax GradientTransformation"):
        train(quad, jnp.ones(1), "sgd", steps=1)
    with pytest.raises(TypeError, match="`factory` must be an optax optimizer factory"):
        optimizer("adam", learning_rate=0.1)
    with pytest.raises(ValueError, match="hyperparameter `learning_rate` must be finite"):
        optimizer(optax.sgd, learning_rate=float("nan"))
    with pytest.raises(ValueError, match="swept hyperparameters of different lengths"):
        optimizer(optax.adam, learning_rate=jnp.ones(3), b1=jnp.ones(2) * 0.9)
    with pytest.raises(ValueError, match="must be a scalar or a 1-D sweep"):
        optimizer(optax.sgd, learning_rate=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="use dltheory.training.sweep for a grid"):
        train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=jnp.ones(2)), steps=1)
    with pytest.raises(TypeError, match="`loss_fn` must be callable"):
        train(None, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), steps=1)


def test_static_hyperparameters_stay_static():
    spec = optimizer(optax.sgd, learning_rate=0.1, nesterov=True, momentum=0.9)
    assert dict(spec.static) == {"nesterov": True}
    h = data.quadratic([1.0, 2.0])
    res = train(quad, jnp.ones(2), spec, steps=20, batches=h)
    ref = train(quad, jnp.ones(2), optax.sgd(0.1, momentum=0.9, nesterov=True), steps=20,
                batches=h)
    plain = train(quad, jnp.ones(2), optimizer(optax.sgd, learning_rate=0.1, momentum=0.9,
                                               nesterov=False), steps=20, batches=h)
    np.testing.assert_allclose(res["loss"], ref["loss"], rtol=1e-6)
    assert not np.allclose(res["loss"], plain["loss"])  # the static flag took effect


def test_spec_transformation_is_the_optax_optimizer():
    spec = optimizer(optax.adam, learning_rate=1e-2, b1=0.8)
    x = {"w": jnp.arange(3.0)}
    g = {"w": jnp.array([0.3, -1.0, 2.0])}
    for values, ref in (({}, optax.adam(1e-2, b1=0.8)),
                        ({"learning_rate": 0.5}, optax.adam(0.5, b1=0.8))):
        t = spec.transformation(**values)
        s_ours, s_ref = t.init(x), ref.init(x)
        for k in range(3):  # several steps with changing gradients, so b1 matters
            gk = {"w": g["w"] * (1.0 - 0.7 * k)}
            ours, s_ours = t.update(gk, s_ours, x)
            theirs, s_ref = ref.update(gk, s_ref, x)
            # float32-injected hyperparameters round slightly differently from Python floats
            np.testing.assert_allclose(ours["w"], theirs["w"], rtol=1e-5)


def test_numpy_scalar_hyperparameters_are_injected():
    import numpy as np

    spec = optimizer(optax.adam, learning_rate=np.float32(0.01))
    plain = optimizer(optax.adam, learning_rate=0.01)
    a = train(_quad_loss_for_np_scalar, jnp.ones(3), spec, steps=5)
    b = train(_quad_loss_for_np_scalar, jnp.ones(3), plain, steps=5)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6)


def _quad_loss_for_np_scalar(x, batch=None):
    return 0.5 * jnp.sum(x ** 2)


@pytest.mark.parametrize("log_every,chunk_steps", [(1, None), (4, 8), (3, 24)])
def test_minibatch_run_equals_a_plain_loop_over_sample(log_every, chunk_steps):
    """The engine takes each chunk's batches from a plan (one permutation per epoch); the
    run must be the plain loop that asks ``Minibatches.sample`` for every step's batch."""
    x = jax.random.normal(jax.random.key(0), (10, 3))
    ds = {"x": x, "y": x @ jnp.array([1.0, -2.0, 0.5])}
    mb = data.Minibatches.of(ds, 3)  # 3 steps an epoch, one example left over
    steps, lr, key = 24, 0.05, 7

    def lsq(w, batch):
        return jnp.mean((batch["x"] @ w - batch["y"]) ** 2)

    res = train(lsq, jnp.zeros(3), optimizer(optax.sgd, learning_rate=lr), steps=steps,
                batches=mb, key=key, log_every=log_every, chunk_steps=chunk_steps)
    w, losses, k_ = jnp.zeros(3), [], jax.random.key(key)
    for k in range(steps):
        batch = mb.sample(k_, jnp.asarray(k))
        if k % log_every == 0:
            losses.append(float(lsq(w, batch)))
        w = w - lr * jax.grad(lsq)(w, batch)
    np.testing.assert_allclose(res["loss"][:-1], losses, rtol=1e-5)
    np.testing.assert_allclose(res.params, w, rtol=1e-5, atol=1e-6)
    # the final record (the interval past the end, which takes no step): the loss of the
    # final parameters on the batch the next step would take
    final = float(lsq(w, mb.sample(k_, jnp.asarray(steps))))
    assert res["loss"][-1] == pytest.approx(final, rel=1e-5)
    assert final != pytest.approx(float(lsq(w, mb.sample(k_, jnp.asarray(steps - 1)))),
                                  rel=1e-3)


# ----------------------------------------------- branches a single-chunk test never runs


def test_a_sweep_runs_on_past_a_member_that_diverged_in_an_earlier_chunk():
    """The loop between chunks stops only when *every* member has diverged: with one
    member diverging in the first of several chunks, the healthy member trains to the
    end and equals its own single run (logging NaN from the next chunk on would mean the
    sweep stopped at the first divergence)."""
    h = data.quadratic([4.0])
    lrs = (0.1, 1.5)
    res = sweep(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=jnp.array(lrs)),
                steps=200, batches=h, log_every=5, chunk_steps=50)
    expected = _first_overflow(1.5, 4.0, 1.0, 200)
    assert expected is not None and expected < 50  # diverges inside the first chunk
    assert list(res.diverged_at) == [-1, expected]
    healthy = res["loss"][0]
    assert np.all(np.isfinite(healthy)), healthy
    one = train(quad, jnp.ones(1), optimizer(optax.sgd, learning_rate=0.1), steps=200,
                batches=h, log_every=5, chunk_steps=50)
    np.testing.assert_allclose(healthy, one["loss"], rtol=1e-6)
    assert np.all(np.isnan(res["loss"][1][expected // 5 + 1:]))


def test_a_sweep_without_seeds_shares_its_key(digits):
    """Without ``seeds`` every member draws the batches of the one ``key`` (documented):
    a learning-rate sweep on minibatches equals single runs with that key."""
    mb = data.Minibatches.of(digits.train, 16)
    lrs = (0.05, 0.2)
    model = small_mlp(jax.random.key(3))
    sw = sweep(ce, model, optimizer(optax.sgd, learning_rate=jnp.array(lrs)), steps=30,
               batches=mb, key=7, log_every=10)
    for i, lr in enumerate(lrs):
        one = train(ce, small_mlp(jax.random.key(3)), optimizer(optax.sgd, learning_rate=lr),
                    steps=30, batches=mb, key=7, log_every=10)
        np.testing.assert_allclose(sw["loss"][i], one["loss"], rtol=2e-5)
    other = train(ce, small_mlp(jax.random.key(3)), optimizer(optax.sgd, learning_rate=lrs[0]),
                  steps=30, batches=mb, key=8, log_every=10)
    assert not np.allclose(sw["loss"][0], other["loss"], rtol=1e-3)  # the key does matter


@pytest.mark.parametrize("steps, log_every, chunk_steps", [
    (100, 10, None), (100, 10, 50), (100, 10, 110), (90, 3, 21), (7, 1, 7), (7, 1, 1)])
def test_the_last_record_is_taken_at_the_final_parameters(steps, log_every, chunk_steps):
    """The record at the last logged step (``steps``) comes from the chunk itself, from the
    first interval past the end: the chunks always hold one interval more than the run,
    whatever the chunk boundaries, and that interval takes no step."""
    n_int, per_chunk, n_chunks = loop._check_sizes(steps, log_every, chunk_steps)
    assert per_chunk * n_chunks >= n_int + 1 > per_chunk * (n_chunks - 1)
    h = data.quadratic([0.5, 2.0, 3.0])
    x0 = jnp.array([1.0, -2.0, 0.5])
    metric = lambda x, ev: {"sq": jnp.sum(x * x)}
    lrs = jnp.array([0.05, 0.2])
    one = train(quad, x0, optimizer(optax.sgd, learning_rate=0.2), steps=steps,
                batches=h, log_every=log_every, chunk_steps=chunk_steps, metrics=metric)
    grid = sweep(quad, x0, optimizer(optax.sgd, learning_rate=lrs), steps=steps,
                 batches=h, log_every=log_every, chunk_steps=chunk_steps, metrics=metric)
    # gradient descent on a diagonal quadratic: x_k = (1 - lr h)^k x_0, exactly known
    for res, lr in ((one, 0.2), (grid.member(0), 0.05), (grid.member(1), 0.2)):
        x = np.asarray(x0, np.float64) * (1 - lr * np.array([0.5, 2.0, 3.0])) ** steps
        np.testing.assert_allclose(np.asarray(res.params), x, rtol=1e-4, atol=1e-7)
        assert res.steps[-1] == steps and len(res.steps) == n_int + 1
        assert res["sq"][-1] == pytest.approx(float(np.sum(x * x)), rel=1e-4, abs=1e-9)
        assert res["loss"][-1] == pytest.approx(0.5 * float(x @ (np.diag([0.5, 2.0, 3.0]) @ x)),
                                                rel=1e-4, abs=1e-9)


def test_a_run_compiles_one_program_for_its_steps_and_records():
    """The engine compiles one program per run (its chunk): no second program for the
    final record."""
    h = data.quadratic([1.0, 2.0])
    loss = lambda x, h: 0.25 * x @ (h @ x) + 0.0 * jnp.sum(x)   # a new function: new program
    opt = optimizer(optax.sgd, learning_rate=0.1)
    train(loss, jnp.ones(2), opt, steps=20, batches=h, log_every=5)     # eager helpers warm
    loss2 = lambda x, h: 0.25 * x @ (h @ x) + 0.0 * jnp.sum(x * x)
    with count_compilations() as compiled:
        train(loss2, jnp.ones(2), opt, steps=20, batches=h, log_every=5)
    assert compiled() == 1


# --------------------------------------------------------------------------------------
# dltheory._jit: the package's jit and its CPU compiler options
# --------------------------------------------------------------------------------------


def test_package_jit_passes_its_cpu_options_to_xla(monkeypatch):
    """The options reach XLA's compiler: an option XLA does not know makes the compile
    fail, so a jit that dropped them would pass this call."""
    from dltheory import _jit

    f = _jit.jit(lambda x: x * 2.0 + 1.0)
    assert float(f(jnp.float32(3.0))) == 7.0
    monkeypatch.setattr(_jit, "CPU_COMPILER_OPTIONS", {"xla_no_such_option_dltheory": 1})
    g = _jit.jit(lambda x: x * 3.0 - 1.0)
    with pytest.raises(Exception, match="xla_no_such_option_dltheory"):
        g(jnp.float32(3.0))


def test_package_jit_keeps_other_backends_as_jax_has_them(monkeypatch):
    from dltheory import _jit

    seen = []
    real = jax.jit

    def spy(fn, **kwargs):
        seen.append(kwargs)
        return real(fn, **kwargs)

    monkeypatch.setattr(_jit.jax, "jit", spy)
    monkeypatch.setattr(_jit.jax, "default_backend", lambda: "gpu")
    assert float(_jit.jit(lambda x: x + 1.0)(jnp.float32(1.0))) == 2.0
    monkeypatch.setattr(_jit.jax, "default_backend", lambda: "cpu")
    h = _jit.jit(lambda x, n: x * n, static_argnames=("n",))
    assert float(h(jnp.float32(2.0), n=3)) == 6.0
    assert seen == [{}, {"static_argnames": ("n",),
                         "compiler_options": _jit.CPU_COMPILER_OPTIONS}]


def test_package_jit_is_made_at_first_use_and_acts_as_jax_jit(monkeypatch):
    """Importing a module whose functions are decorated starts no backend: the jit is made
    at the first call. The result keeps the function's name, signature, ``lower`` and
    static arguments, as a decorator bare or with arguments."""
    import inspect

    from dltheory import _jit

    def boom():
        raise AssertionError("the backend was asked for before the first call")

    monkeypatch.setattr(_jit.jax, "default_backend", boom)

    @_jit.jit
    def double(x):
        """Twice x."""
        return 2 * x

    @_jit.jit(static_argnames=("k",))
    def power(x, k=2):
        return x ** k

    assert double.__name__ == "double" and double.__doc__ == "Twice x."
    assert list(inspect.signature(power).parameters) == ["x", "k"]
    monkeypatch.undo()
    assert float(double(jnp.float32(2.5))) == 5.0
    assert float(power(jnp.float32(2.0), k=3)) == 8.0
    assert "mul" in double.lower(jnp.float32(1.0)).as_text()
    with pytest.raises(TypeError, match="argument `fn` must be callable"):
        _jit.jit(3)


@pytest.mark.parametrize("build", ["mlp", "layer_norm_mlp", "convnet", "scale_invariant"])
def test_initializations_under_the_package_jit_are_jaxs_bit_for_bit(build):
    """The engine builds every sweep's models in one program of the package's jit; the
    weights are those of ``jax.jit`` with XLA's default options, bit for bit."""
    from dltheory import _jit
    from dltheory.normalization import ScaleInvariantMLP

    inits = {
        "mlp": lambda k: models.MLP((64, 48, 48, 10), rngs=nnx.Rngs(params=k)),
        "layer_norm_mlp": lambda k: models.MLP((64, 32, 10), rngs=nnx.Rngs(params=k),
                                               normalization="layer", bias=False),
        "convnet": lambda k: models.ConvNet(rngs=nnx.Rngs(params=k)),
        "scale_invariant": lambda k: ScaleInvariantMLP((64, 40, 40, 10),
                                                       rngs=nnx.Rngs(params=k)),
    }
    init = inits[build]

    def make(keys):
        return jax.vmap(lambda k: nnx.split(init(k), nnx.Param, ...)[1:])(keys)

    keys = jax.vmap(jax.random.key)(jnp.arange(3, dtype=jnp.uint32))
    ours, theirs = jax.tree.leaves(_jit.jit(make)(keys)), jax.tree.leaves(jax.jit(make)(keys))
    assert len(ours) == len(theirs) >= 2
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_package_jit_inside_other_traced_functions():
    """jax takes compiler options only on the outermost jit: inside ``jax.jit``,
    ``jax.eval_shape`` or a scan, with or without traced arguments, the package's jit is
    the plain one, and the values are the same as at the top level."""
    from dltheory import _jit

    @_jit.jit
    def f(x):
        return jnp.sin(x) * 2.0

    x = jnp.linspace(0.0, 1.0, 5)
    top = np.asarray(f(x))
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda y: f(y))(x)), top)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda: f(x))()), top)   # no tracer
    assert jax.eval_shape(f, x).shape == (5,)
    carry, ys = jax.lax.scan(lambda c, y: (c + f(y), f(y)), 0.0, x)
    np.testing.assert_allclose(np.asarray(ys), top)
    np.testing.assert_allclose(np.asarray(jax.vmap(f)(x)), top)
    np.testing.assert_allclose(np.asarray(jax.grad(lambda y: f(y).sum())(x)),
                               2.0 * np.cos(np.asarray(x)), rtol=1e-6)
    with pytest.raises(ValueError, match="boom"):   # its own errors are not swallowed
        _jit.jit(lambda y: (_ for _ in ()).throw(ValueError("boom")))(x)


def test_every_compiled_program_of_the_package_goes_through_its_jit():
    """No module but ``dltheory._jit`` calls ``jax.jit`` (or ``nnx.jit``): a new program
    written with ``jax.jit`` would compile without the package's CPU options."""
    import pathlib
    import re

    import dltheory

    root = pathlib.Path(dltheory.__file__).parent
    found = [f"{path.relative_to(root)}:{i}: {line.strip()}"
             for path in sorted(root.rglob("*.py")) if path.name != "_jit.py"
             for i, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\b(jax|nnx)\.jit\b", line.split("#")[0])
             and not line.lstrip().startswith(("#", '"', "'"))]
    assert not found, found
