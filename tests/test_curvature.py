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
