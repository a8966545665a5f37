import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from dltheory import curvature, data, models


def test_sharpness_of_a_quadratic_is_its_top_eigenvalue():
    h = data.quadratic([0.3, 1.0, 2.5, 7.0], rotate=True)
    lam = curvature.sharpness(lambda x, h: 0.5 * x @ h @ x, jnp.ones(4), h, iters=60)
    assert float(lam) == pytest.approx(7.0, rel=1e-4)


def test_hvp_matches_the_dense_hessian():
    h = data.quadratic([1.0, 2.0, 3.0], rotate=True)
    v = jnp.array([1.0, -2.0, 0.5])
    out = curvature.hvp(lambda x, h: 0.5 * x @ h @ x + jnp.sum(x**4), jnp.ones(3), h, v)
    dense = np.asarray(h) + np.diag(12 * np.ones(3))
    np.testing.assert_allclose(out, dense @ np.asarray(v), rtol=1e-5)


def test_sharpness_of_an_nnx_model_matches_the_dense_hessian():
    ds = data.digits()
    batch = {"x": ds.x_train[:64], "y": ds.y_train[:64]}
    model = models.MLP((64, 6, 10), rngs=nnx.Rngs(0), activation="tanh")

    def loss(m, b):
        return models.cross_entropy(m(b["x"]), b["y"])

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat, unravel = ravel_pytree(params)
    dense = jax.hessian(lambda f: loss(nnx.merge(graphdef, unravel(f), rest), batch))(flat)
    eig = np.linalg.eigvalsh(np.asarray(dense, np.float64))
    top = eig[np.argmax(np.abs(eig))]
    est = curvature.sharpness(loss, model, batch, iters=300)
    assert float(est) == pytest.approx(top, rel=1e-3)


def test_iters_is_validated():
    with pytest.raises(ValueError, match="`iters` must be an integer >= 1"):
        curvature.sharpness(lambda x, b: jnp.sum(x**2), jnp.ones(2), None, iters=0)


# --------------------------------------------------------------------------------------
# Hutchinson's trace estimator
# --------------------------------------------------------------------------------------


def _quartic(x, h):
    return 0.5 * x @ h @ x + jnp.sum(x ** 4)


def test_hutchinson_is_exact_in_expectation_over_all_sign_vectors():
    # the mean of z^T H z over all 2^D Rademacher vectors is tr(H) exactly
    import itertools

    h = data.quadratic([0.3, 1.0, 2.5, 7.0], rotate=True)
    x = jnp.array([0.1, -0.2, 0.3, 0.4])
    every = jnp.array(list(itertools.product([-1.0, 1.0], repeat=4)))
    est = curvature.hessian_trace(_quartic, x, h, probes=every)
    dense = np.trace(np.asarray(jax.hessian(_quartic)(x, h)))
    assert float(est.estimate) == pytest.approx(dense, rel=1e-6)


def test_hutchinson_matches_the_dense_trace_of_a_net_within_its_standard_error():
    ds = data.digits()
    batch = {"x": ds.x_train[:64], "y": ds.y_train[:64]}
    model = models.MLP((64, 6, 10), rngs=nnx.Rngs(0), activation="tanh")

    def loss(m, b):
        return models.cross_entropy(m(b["x"]), b["y"])

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat, unravel = ravel_pytree(params)
    dense = jax.hessian(lambda f: loss(nnx.merge(graphdef, unravel(f), rest), batch))(flat)
    exact = float(np.trace(np.asarray(dense, np.float64)))
    est = curvature.hessian_trace(loss, model, batch, probes=512, key=3)
    assert 0 < float(est.stderr) < 0.05 * abs(exact)
    assert abs(float(est.estimate) - exact) < 4 * float(est.stderr)


def test_hutchinson_standard_error_follows_the_rademacher_variance():
    # Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher probes
    h = data.quadratic([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], rotate=True, key=1)
    x = jnp.zeros(6)
    est = curvature.hessian_trace(lambda x, h: 0.5 * x @ h @ x, x, h, probes=4000, key=5)
    hn = np.asarray(h, np.float64)
    var = 2 * (np.sum(hn ** 2) - np.sum(np.diag(hn) ** 2))
    assert float(est.stderr) ** 2 * 4000 == pytest.approx(var, rel=0.1)
    assert float(est.estimate) == pytest.approx(21.0, abs=4 * float(est.stderr))


def test_hutchinson_vmaps_over_a_grid_of_parameters():
    h = data.quadratic([0.5, 1.5, 3.0], rotate=True)
    xs = jnp.array([[0.0, 0.0, 0.0], [0.1, 0.2, -0.3], [1.0, -1.0, 0.5]])
    fn = jax.jit(jax.vmap(lambda x: curvature.hessian_trace(_quartic, x, h, probes=32, key=2)))
    batched = fn(xs)
    assert batched.estimate.shape == (3,) and batched.stderr.shape == (3,)
    for i, x in enumerate(xs):
        one = curvature.hessian_trace(_quartic, x, h, probes=32, key=2)
        np.testing.assert_allclose(batched.estimate[i], one.estimate, rtol=1e-5)
        np.testing.assert_allclose(batched.stderr[i], one.stderr, rtol=1e-4)
    # the same probes for every member: the differences are exact (tr of 12 diag(x^2))
    diff = np.asarray(batched.estimate - batched.estimate[0])
    np.testing.assert_allclose(diff, 12 * np.sum(np.asarray(xs) ** 2, axis=1), rtol=1e-4)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"probes": 1}, ValueError, "`probes` must be an integer >= 2"),
    ({"probes": jnp.ones((4, 3))}, ValueError, r"`probes` must be an integer >= 2 or an array "
                                               r"of shape \(P >= 2, 2\)"),
    ({"probes": "many"}, ValueError, "`probes`"),
    ({"key": "seed"}, TypeError, "`key`"),
])
def test_hutchinson_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        curvature.hessian_trace(lambda x, b: jnp.sum(x ** 2), jnp.ones(2), None, **kwargs)


def test_hutchinson_needs_a_callable_loss_and_parameters():
    with pytest.raises(TypeError, match="`loss_fn` must be callable"):
        curvature.hessian_trace("loss", jnp.ones(2), None)
    with pytest.raises(ValueError, match="`params` must hold at least one parameter"):
        curvature.hessian_trace(lambda x, b: 0.0, {}, None)
