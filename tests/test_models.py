import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from dltheory import claims, models
from dltheory.compat import enable_x64


def scaled(model, c):
    """A copy of ``model`` with every parameter multiplied by ``c``."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return nnx.merge(graphdef, jax.tree.map(lambda p: c * p, params), rest)


def test_mlp_shapes_and_options():
    m = models.MLP((5, 7, 3), rngs=nnx.Rngs(0))
    assert m(jnp.ones((4, 5))).shape == (4, 3)
    nb = models.MLP((5, 7, 3), rngs=nnx.Rngs(0), bias=False)
    assert len(jax.tree.leaves(nnx.state(nb, nnx.Param))) == 2
    big = models.MLP((5, 7, 3), rngs=nnx.Rngs(0), init_scale=3.0)
    np.testing.assert_allclose(big.layers[0].kernel[...], 3 * m.layers[0].kernel[...],
                               rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(c=st.floats(0.1, 10.0), seed=st.integers(0, 1000),
       activation=st.sampled_from(["relu", "leaky_relu", "linear"]),
       depth=st.integers(1, 3))
def test_claim_bias_free_mlp_is_L_homogeneous(c, seed, activation, depth):
    sizes = (4,) + (6,) * (depth - 1) + (2,)
    m = models.MLP(sizes, rngs=nnx.Rngs(seed), bias=False, activation=activation, alpha=0.2)
    L = models.homogeneity_order(m)
    assert L == depth
    x = jax.random.normal(jax.random.key(seed + 1), (8, 4))
    got, want = np.asarray(scaled(m, c)(x)), np.asarray(c**L * m(x))
    claims.check("homogeneity", np.abs(got - want).max() / np.abs(want).max())


@settings(max_examples=15, deadline=None)
@given(c=st.floats(0.2, 5.0), seed=st.integers(0, 1000),
       kind=st.sampled_from(["layer", "batch"]))
def test_normalized_hidden_layer_is_scale_invariant(c, seed, kind):
    kw = dict(bias=False, normalization=kind, norm_eps=1e-12)
    m = models.MLP((4, 8, 3), rngs=nnx.Rngs(seed), **kw)
    x = jax.random.normal(jax.random.key(seed + 1), (16, 4))
    m2 = models.MLP((4, 8, 3), rngs=nnx.Rngs(seed), **kw)
    m2.layers[0].kernel[...] = c * m2.layers[0].kernel[...]
    np.testing.assert_allclose(m2(x), m(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, words", [
    (dict(bias=True), "it has biases"),
    (dict(bias=False, activation="tanh"), "activation 'tanh' is not positively homogeneous"),
    (dict(bias=False, normalization="layer"), "it has layer normalization"),
])
def test_non_homogeneous_models_are_refused(kwargs, words):
    m = models.MLP((3, 4, 2), rngs=nnx.Rngs(0), **kwargs)
    with pytest.raises(ValueError, match="not homogeneous") as err:
        models.homogeneity_order(m)
    assert words in str(err.value)


@pytest.mark.parametrize("kwargs, words", [
    (dict(sizes=(3,)), "`sizes` needs at least an input and an output width"),
    (dict(sizes=(3, 0, 2)), "`sizes[i]` must be an integer >= 1"),
    (dict(activation="gelu"), "`activation` must be one of"),
    (dict(alpha=1.0), "`alpha` must lie in [0.0, 1.0)"),
    (dict(init_scale=0.0), "`init_scale` must be a finite number > 0"),
    (dict(normalization="group"), "`normalization` must be one of"),
])
def test_mlp_rejects_bad_arguments(kwargs, words):
    args = dict(sizes=(3, 4, 2))
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        models.MLP(args.pop("sizes"), rngs=nnx.Rngs(0), **args)
    assert words in str(err.value)


def test_losses_and_norm():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    labels = jnp.array([0, 0])
    expected = -(jax.nn.log_softmax(logits)[0, 0] + jax.nn.log_softmax(logits)[1, 0]) / 2
    np.testing.assert_allclose(models.cross_entropy(logits, labels), expected, rtol=1e-6)
    assert float(models.accuracy(logits, labels)) == 0.5
    m = models.MLP((2, 2), rngs=nnx.Rngs(0), bias=False)
    np.testing.assert_allclose(models.param_norm(m), jnp.linalg.norm(m.layers[0].kernel[...]),
                               rtol=1e-6)


# --------------------------------------------------------------------------------------
# Convolutional models
# --------------------------------------------------------------------------------------


def _images(n=4, key=0):
    return jax.random.normal(jax.random.key(key), (n, 32, 32, 3))


def test_convnet_is_homogeneous_of_its_order():
    model = models.ConvNet(rngs=nnx.Rngs(0), channels=(4, 8), num_classes=3)
    order = models.homogeneity_order(model)
    assert order == 3
    x = _images()
    graphdef, params = nnx.split(model)
    scaled = nnx.merge(graphdef, jax.tree.map(lambda p: 1.7 * p, params))
    np.testing.assert_allclose(scaled(x), 1.7 ** order * model(x), rtol=1e-4, atol=1e-5)


def test_convnet_with_bias_is_not_homogeneous():
    with pytest.raises(ValueError, match="biases"):
        models.homogeneity_order(models.ConvNet(rngs=nnx.Rngs(0), channels=(4,), bias=True))


@pytest.mark.parametrize("normalization", ["batch", "layer"])
def test_resnet_convolutions_are_scale_invariant(normalization):
    model = models.ResNet(rngs=nnx.Rngs(0), stage_sizes=(1, 1), width=4, num_classes=5,
                          normalization=normalization, norm_eps=0.0)
    x = _images(6)
    out = model(x)
    assert out.shape == (6, 5)
    # Scale one block's convolutions (and the stem) by different factors: nothing changes.
    model.stem.kernel[...] = 3.0 * model.stem.kernel[...]
    model.blocks[1].conv2.kernel[...] = 0.2 * model.blocks[1].conv2.kernel[...]
    np.testing.assert_allclose(model(x), out, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="skip connections"):
        models.homogeneity_order(model)


def test_resnet_without_normalization_is_not_scale_invariant():
    model = models.ResNet(rngs=nnx.Rngs(0), stage_sizes=(1,), width=4, normalization=None)
    x = _images()
    out = model(x)
    model.stem.kernel[...] = 3.0 * model.stem.kernel[...]
    assert not np.allclose(model(x), out, rtol=1e-3)


def test_resnet_frozen_head_is_not_trained():
    model = models.ResNet(rngs=nnx.Rngs(0), stage_sizes=(1,), width=4, train_last_layer=False)
    params = nnx.state(model, nnx.Param)
    names = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(params)}
    assert not any(n.startswith("head") for n in names)
    assert isinstance(model.head.kernel, models.Frozen)
    with pytest.raises(ValueError, match="stage_sizes"):
        models.ResNet(rngs=nnx.Rngs(0), stage_sizes=())


_CONV_CASES = [((2, 8, 8, 3), (3, 3, 3, 4), (1, 1), "SAME"),
               ((2, 8, 8, 3), (3, 3, 3, 4), (2, 2), "SAME"),
               ((2, 7, 9, 3), (3, 3, 3, 4), (2, 2), "SAME"),
               ((2, 8, 8, 3), (1, 1, 3, 4), (2, 2), "SAME"),
               ((2, 9, 9, 3), (3, 3, 3, 4), (1, 1), "VALID"),
               ((2, 10, 10, 3), (3, 2, 3, 4), (2, 1), ((2, 0), (1, 1)))]


def _lax_conv(x, k, strides, padding):
    return jax.lax.conv_general_dilated(x, k, strides, padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("xs, ks, strides, padding, dtype",
                         [(*case, "float32") for case in _CONV_CASES]
                         + [(*_CONV_CASES[2], "float64")])
def test_model_convolution_has_jaxs_values_and_gradients(xs, ks, strides, padding, dtype):
    """The models' convolution (its own gradient on the CPU, see
    ``models._conv_general_dilated``) against ``lax.conv_general_dilated`` with JAX's
    gradient: values and both gradients; for the strided cases also inside ``lax.scan``
    (where its layout matters), under ``vmap`` and the Hessian-vector product (``jax.jvp``
    of ``jax.grad``, as ``dltheory.curvature``)."""
    from dltheory.compat import enable_x64

    rng = np.random.default_rng(0)
    with enable_x64(dtype == "float64"):
        x = jnp.asarray(rng.standard_normal(xs), dtype)
        k = jnp.asarray(rng.standard_normal(ks), dtype)
        v = jnp.asarray(rng.standard_normal(ks), dtype)

        def losses(conv):
            loss = lambda x, k: jnp.sum(jnp.tanh(conv(x, k, strides, padding)) ** 2)
            grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, k)
            if strides != (2, 2) or padding != "SAME":
                return (conv(x, k, strides, padding), *grads)
            scanned = jax.jit(lambda k: jax.lax.scan(
                lambda c, _: (c - 0.1 * jax.grad(loss, argnums=1)(x, c), None), k, None,
                length=3)[0])(k)
            hvp = jax.jit(lambda k: jax.jvp(lambda k: jax.grad(loss, argnums=1)(x, k),
                                            (k,), (v,))[1])(k)
            swept = jax.jit(jax.vmap(jax.grad(loss, argnums=1), in_axes=(None, 0)))(
                x, jnp.stack([k, v]))   # a sweep's members, as the engine vmaps them
            return (conv(x, k, strides, padding), *grads, scanned, hvp, swept)

        tol = 1e-5 if dtype == "float32" else 1e-12
        ours_conv = lambda x, k, s, p: models._conv_general_dilated(
            x, k, s, p, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        for ours, ref in zip(losses(ours_conv), losses(_lax_conv)):
            assert ours.shape == ref.shape and ours.dtype == ref.dtype
            np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol)


def test_model_convolution_passes_other_convolutions_to_lax():
    """Grouped and dilated convolutions, other layouts and lax's extra arguments are
    lax's own."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 4)), jnp.float32)
    cases = [(dict(feature_group_count=2), (3, 3, 2, 4), "SAME"),
             (dict(rhs_dilation=(2, 2)), (3, 3, 4, 4), "SAME"),
             (dict(lhs_dilation=(2, 2)), (3, 3, 4, 4), ((1, 1), (1, 1)))]
    for kwargs, ks, padding in cases:
        k = jnp.asarray(rng.standard_normal(ks), jnp.float32)
        f = lambda conv: jax.grad(lambda k: jnp.sum(conv(
            x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), **kwargs) ** 2))(k)
        np.testing.assert_array_equal(f(models._conv_general_dilated),
                                      f(jax.lax.conv_general_dilated))
    # an extra argument of lax's (here the output type) is passed on, not dropped
    k = jnp.asarray(rng.standard_normal((3, 3, 4, 4)), jnp.float16)
    out = models._conv_general_dilated(x.astype(jnp.float16), k, (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       preferred_element_type=jnp.float32)
    assert out.dtype == jnp.float32
    xc = jnp.transpose(x, (0, 3, 1, 2))
    k = jnp.asarray(rng.standard_normal((4, 4, 3, 3)), jnp.float32)
    np.testing.assert_array_equal(
        models._conv_general_dilated(xc, k, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")),
        jax.lax.conv_general_dilated(xc, k, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")))


def test_convnet_and_resnet_use_the_model_convolution():
    convs = [m for model in (models.ConvNet(rngs=nnx.Rngs(0)),
                             models.ResNet(rngs=nnx.Rngs(0), stage_sizes=(1, 1), width=4))
             for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv)]
    assert len(convs) == 2 + 6
    assert all(c.conv_general_dilated is models._conv_general_dilated for c in convs)
    # and nnx.Conv's arguments take its own gradient (the custom rule), not the fallback
    model = models.ConvNet(rngs=nnx.Rngs(0))
    jaxpr = str(jax.make_jaxpr(model)(jnp.zeros((1, 8, 8, 3))))
    assert jaxpr.count("custom_vjp_call") == 2, jaxpr


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the layout is the CPU's branch")
def test_on_the_cpu_every_convolution_of_the_gradient_is_nhwc():
    """The CPU takes the models' own gradient (``lax.platform_dependent``): every
    convolution in the lowered gradient is ``NHWC``/``HWIO``, where JAX's own gradient has
    the kernel's with batch and features swapped (the form XLA's CPU backend runs slowly
    inside loops)."""
    import re

    x, k = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))

    def layouts(conv):
        loss = lambda x, k: jnp.sum(conv(x, k, (2, 2), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2)
        text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, k).as_text()
        return set(re.findall(r"dim_numbers = (\[[^\]]*\]x\[[^\]]*\]->\[[^\]]*\])", text))

    canonical = {"[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]"}
    assert layouts(models._conv_general_dilated) == canonical
    assert layouts(jax.lax.conv_general_dilated) - canonical   # what it replaces


# --------------------------------------------------------------------------------------
# Initializers: flax's numbers, with the draws compiled by the package's jit
# --------------------------------------------------------------------------------------


def test_variance_scaling_draws_flaxs_weights_bit_for_bit():
    from dltheory.compat import variance_scaling

    key = jax.random.key(7)
    shapes = [(64, 32), (3, 3, 16, 32), (5, 1, 7)]
    for scale, mode in [(1.0, "fan_in"), (2.0, "fan_in"), (2.0 * 0.3 ** 2, "fan_in"),
                        (0.09, "fan_out"), (2.0, "fan_avg")]:
        ours = variance_scaling(scale, mode, "normal")
        theirs = nnx.initializers.variance_scaling(scale, mode, "normal")
        assert variance_scaling(scale, mode, "normal") is ours   # one object: equal graphdefs
        for shape in shapes:
            a, b = ours(key, shape, jnp.float32), theirs(key, shape, jnp.float32)
            assert a.dtype == b.dtype and a.shape == b.shape == shape
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ours = variance_scaling(2.0, "fan_in", "normal")
    theirs = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")
    keys = jax.random.split(key, 3)   # inside a vmapped, jitted program
    a = jax.jit(jax.vmap(lambda k: ours(k, (3, 3, 16, 32), jnp.float32)))(keys)
    b = jax.jit(jax.vmap(lambda k: theirs(k, (3, 3, 16, 32), jnp.float32)))(keys)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with enable_x64():
        a, b = ours(key, (6, 4), jnp.float64), theirs(key, (6, 4), jnp.float64)
        assert a.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_random_normal_is_jaxs():
    from dltheory._jit import random_normal

    key = jax.random.key(3)
    for shape, dtype in [((4, 5), jnp.float32), ((7,), jnp.float32), ((2, 3, 4), jnp.bfloat16)]:
        a, b = random_normal(key, shape, dtype), jax.random.normal(key, shape, dtype)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    np.testing.assert_array_equal(
        np.asarray(jax.jit(lambda k: random_normal(k, (3, 3)))(key)),
        np.asarray(jax.random.normal(key, (3, 3))))
    for x64 in (False, True):   # jax's default dtype: float32, or float64 with x64 on
        with enable_x64(x64):
            a, b = random_normal(key, (2, 2)), jax.random.normal(key, (2, 2))
            assert a.dtype == b.dtype == (jnp.float64 if x64 else jnp.float32)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_model_weights_are_drawn_through_the_package_jit(monkeypatch):
    """The models' normal initializers and ScaleInvariantMLP draw through
    ``dltheory._jit.random_normal`` (compiled with the package's options when a model is
    built eagerly), one draw per weight matrix."""
    from dltheory import _jit
    from dltheory.normalization import ScaleInvariantMLP

    shapes = []
    real = _jit._normal

    def spy(key, shape, dtype):
        shapes.append(shape)
        return real(key, shape, dtype)

    monkeypatch.setattr(_jit, "_normal", spy)
    models.MLP((6, 5, 3), rngs=nnx.Rngs(0))
    assert shapes == [(6, 5), (5, 3)]
    shapes.clear()
    models.ConvNet(channels=(4,), rngs=nnx.Rngs(0))
    assert (3, 3, 3, 4) in shapes
    shapes.clear()
    ScaleInvariantMLP((6, 5, 5, 3), rngs=nnx.Rngs(0))
    assert shapes == [(6, 5), (5, 5), (5, 3)]
