import math

import numpy as np
import pytest

from dltheory import validation as V


@pytest.mark.parametrize("fn, value, words", [
    (V.check_finite, math.inf, "finite"),
    (V.check_finite, math.nan, "finite"),
    (V.check_positive, 0.0, "> 0"),
    (V.check_positive, -1.5, "> 0"),
    (V.check_positive, math.inf, "> 0"),
    (V.check_nonnegative, -1e-9, ">= 0"),
    (V.check_probability, 1.5, "[0.0, 1.0]"),
])
def test_numeric_checks_name_argument_value_and_rule(fn, value, words):
    with pytest.raises(ValueError) as err:
        fn("lr", value)
    msg = str(err.value)
    assert "`lr`" in msg and repr(value) in msg and words in msg


def test_checks_return_floats_and_accept_numpy_scalars():
    assert V.check_positive("lr", np.float32(0.5)) == 0.5
    assert V.check_finite("x", np.array(2.0)) == 2.0
    assert V.check_nonnegative("x", 0) == 0.0


def test_non_numbers_are_type_errors():
    with pytest.raises(TypeError, match="`lr` must be a real number"):
        V.check_positive("lr", "0.1")
    with pytest.raises(TypeError, match="`lr` must be a real number"):
        V.check_positive("lr", True)


def test_check_int():
    assert V.check_int("steps", 5, minimum=1) == 5
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1; got 0"):
        V.check_int("steps", 0, minimum=1)
    with pytest.raises(ValueError, match=r"`k` must be an integer <= 3; got 4"):
        V.check_int("k", 4, maximum=3)
    with pytest.raises(TypeError, match="`steps` must be an integer"):
        V.check_int("steps", 2.0)


def test_check_in_range_states_the_interval():
    with pytest.raises(ValueError, match=r"`beta` must lie in \[0.0, 1.0\); got 1.0"):
        V.check_in_range("beta", 1.0, 0.0, 1.0, high_inclusive=False)
    assert V.check_in_range("beta", 0.9, 0.0, 1.0, high_inclusive=False) == 0.9


def test_check_choice_lists_the_options():
    with pytest.raises(ValueError, match=r"`activation` must be one of 'relu', 'tanh'; got 'gelu'"):
        V.check_choice("activation", "gelu", ["relu", "tanh"])


def test_check_shape():
    V.check_shape("x", np.zeros((3, 2)), (None, 2))
    with pytest.raises(ValueError, match=r"`x` must have shape \(\*, 3\); got \(3, 2\)"):
        V.check_shape("x", np.zeros((3, 2)), (None, 3))


def test_check_steps():
    from dltheory import validation as V

    assert V.check_steps(100, 10) == (100, 10)
    with pytest.raises(ValueError, match=r"`steps` \(95\) must be a multiple of `log_every` \(10\)"):
        V.check_steps(95, 10)
    with pytest.raises(ValueError, match="log_every"):
        V.check_steps(10, 0)


def test_check_seed_and_check_key():
    import jax

    assert V.check_seed("seed", 3) == 3
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0; got -1"):
        V.check_seed("seed", -1)
    with pytest.raises(ValueError, match=r"`seed` must be an integer <= 4294967295"):
        V.check_seed("seed", 2**32)
    k = V.check_key("key", 5)
    assert jax.numpy.array_equal(jax.random.key_data(k), jax.random.key_data(jax.random.key(5)))
    typed = jax.random.key(1)
    assert V.check_key("key", typed) is typed
    raw = jax.random.PRNGKey(1)
    assert jax.numpy.array_equal(jax.random.key_data(V.check_key("key", raw)), raw)
    # a traced seed (a vmapped grid of seeds) becomes a key without a range check
    keys = jax.vmap(lambda s: jax.random.key_data(V.check_key("key", s)))(jax.numpy.arange(2))
    assert keys.shape == (2, 2)
    with pytest.raises(ValueError, match="`key` must be an integer >= 0; got -1"):
        V.check_key("key", -1)
    with pytest.raises(TypeError, match="`key` must be an int seed or a jax PRNG key.*got 1.5"):
        V.check_key("key", 1.5)


def test_check_array_says_which_rule_failed():
    np.testing.assert_array_equal(V.check_array("x", [1, 2]), np.array([1.0, 2.0]))
    assert V.check_array("x", 2.0).shape == ()
    with pytest.raises(ValueError, match=r"`x` must be a non-empty 1-D sequence of finite "
                                         r"numbers > 0; got \[\] \(shape \(0,\)\)"):
        V.check_array("x", [], ndim=1, positive=True)
    with pytest.raises(ValueError, match=r"`x` must be finite \(a non-empty 2-D array"):
        V.check_array("x", [[1.0, np.nan]], ndim=2)
    with pytest.raises(ValueError, match=r"`x` must be >= 0"):
        V.check_array("x", [-1.0], nonnegative=True)
    with pytest.raises(TypeError, match=r"`x` must be an array of real numbers; got 'abc'"):
        V.check_array("x", "abc")
    with pytest.raises(TypeError, match="`x` must be an array of real numbers"):
        V.check_array("x", [1.0, "a"])
    big = V.check_array("x", np.zeros((3, 4)), ndim=(1, 2))
    assert big.shape == (3, 4)
    with pytest.raises(ValueError, match=r"array of shape \(3, 4, 1\)"):
        V.check_array("x", np.zeros((3, 4, 1)), ndim=(1, 2))


def test_check_instance_and_check_callable():
    assert V.check_instance("n", 3, int) == 3
    with pytest.raises(TypeError, match="`n` must be an int; got True of type bool"):
        V.check_instance("n", True, int)
    with pytest.raises(TypeError, match="`sizes` must be a GreedySizes preset; got 3 of type int"):
        V.check_instance("sizes", 3, dict, "GreedySizes preset")
    assert V.check_callable("fn", len) is len
    with pytest.raises(TypeError, match="`fn` must be callable; got 3 of type int"):
        V.check_callable("fn", 3)
