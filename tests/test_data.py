import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dltheory import data


def test_digits_split_and_standardization():
    ds = data.digits(test_fraction=0.25, seed=1)
    n = ds.x_train.shape[0] + ds.x_test.shape[0]
    assert n == 1797 and ds.x_train.shape[1] == 64
    assert abs(ds.x_test.shape[0] - 0.25 * n) <= 1
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
    assert ds.num_classes == 10
    np.testing.assert_allclose(np.asarray(ds.x_train).mean(0), 0, atol=1e-5)
    std = np.asarray(ds.x_train).std(0)
    assert np.all((np.abs(std - 1) < 1e-4) | (std == 0))  # constant border pixels stay 0
    # stratified: every class in both splits in nearly equal proportion
    tr, te = np.bincount(ds.y_train) / len(ds.y_train), np.bincount(ds.y_test) / len(ds.y_test)
    assert np.abs(tr - te).max() < 0.01


def test_digits_is_deterministic_and_keeps_classes():
    a, b = data.digits(seed=3), data.digits(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    two = data.digits(classes=(3, 8))
    assert set(np.unique(two.y_train)) == {0, 1}
    raw = data.digits(standardize=False)
    assert float(raw.x_train.max()) == 16.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(test_fraction=1.0), "`test_fraction` must lie in (0.0, 1.0)"),
    (dict(test_fraction=0.0), "`test_fraction` must lie in (0.0, 1.0)"),
    (dict(classes=(1,)), "`classes` must name at least two distinct classes"),
    (dict(classes=(1, 1)), "`classes` must name at least two distinct classes"),
    (dict(classes=(1, 12)), "`classes[i]` must be an integer <= 9"),
])
def test_digits_rejects_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        data.digits(**kwargs)
    assert words in str(err.value)


def test_minibatches_visit_every_example_once_per_epoch():
    x = jnp.arange(10.0)[:, None]
    mb = data.Minibatches.of({"x": x, "y": jnp.arange(10)}, 3)
    assert mb.steps_per_epoch == 3
    key = jax.random.key(0)
    sample = jax.jit(mb.sample)
    epoch0 = np.concatenate([np.asarray(sample(key, k)["y"]) for k in range(3)])
    epoch1 = np.concatenate([np.asarray(sample(key, k)["y"]) for k in range(3, 6)])
    assert len(set(epoch0)) == 9 and len(set(epoch1)) == 9  # one example left over each epoch
    assert not np.array_equal(epoch0, epoch1)  # a new permutation per epoch
    b = sample(key, 4)
    np.testing.assert_array_equal(np.asarray(b["x"][:, 0]), np.asarray(b["y"]))  # rows stay paired


@pytest.mark.parametrize("start,length,limit", [(0, 7, None), (5, 11, None), (4, 9, 1)])
def test_minibatches_plan_takes_the_batches_sample_takes(start, length, limit, monkeypatch):
    """The engine's chunk plan (each epoch's permutation drawn once) gives exactly the
    batches of ``sample`` step by step, across epoch boundaries and in the fallback that
    draws the permutations one step at a time."""
    if limit is not None:
        monkeypatch.setattr(data, "_PLAN_MAX_INDICES", limit)
    mb = data.Minibatches.of({"x": jnp.arange(10.0)[:, None] * 2, "y": jnp.arange(10)}, 3)
    key = jax.random.key(3)
    plan = jax.jit(data.plan_batches, static_argnums=3)(mb, key, jnp.asarray(start), length)
    assert plan.shape == (length, 3)
    for j in range(length):
        got = data.take_batch(mb, key, plan[j])
        want = mb.sample(key, jnp.asarray(start + j))
        for name in ("x", "y"):
            np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]))


def test_plan_of_a_source_without_one_is_its_steps():
    full = data.FullBatch({"x": jnp.ones(2)})
    np.testing.assert_array_equal(np.asarray(data.plan_batches(full, jax.random.key(0),
                                                               jnp.asarray(4), 3)), [4, 5, 6])


def test_minibatches_validation():
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer <= 10; got 11"):
        data.Minibatches.of({"x": jnp.zeros((10, 2))}, 11)
    with pytest.raises(ValueError, match="one common leading size"):
        data.Minibatches.of({"x": jnp.zeros((10, 2)), "y": jnp.zeros(9)}, 2)


def test_quadratic_has_the_requested_spectrum():
    lam = [0.5, 1.5, 4.0]
    h = data.quadratic(lam, rotate=True, key=3)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h).T, atol=1e-7)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.asarray(h, np.float64)), lam, rtol=1e-5)
    assert not np.allclose(np.asarray(h), np.diag(lam))  # really rotated
    np.testing.assert_array_equal(data.quadratic([1.0, 2.0]), np.diag([1.0, 2.0]))
    with pytest.raises(ValueError, match="`eigenvalues` must be a non-empty 1-D sequence"):
        data.quadratic([])
    with pytest.raises(ValueError, match="`eigenvalues` must be finite"):
        data.quadratic([1.0, np.inf])


def test_linear_regression_teacher():
    d = data.linear_regression(200, 5, noise=0.0, key=1)
    np.testing.assert_allclose(d["x"] @ d["w_star"], d["y"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`noise` must be a finite number >= 0"):
        data.linear_regression(10, 2, noise=-1.0)


# --------------------------------------------------------------------------------------
# CIFAR-10 reader, tested offline on a stand-in in the same on-disk format
# --------------------------------------------------------------------------------------


def test_cifar10_reads_the_on_disk_format(tmp_path):
    import pickle

    folder = data.write_cifar10_standin(tmp_path, n_train=7, n_test=5, seed=3)
    ds = data.cifar10(tmp_path, standardize=False)
    assert ds.x_train.shape == (35, 32, 32, 3) and ds.x_test.shape == (5, 32, 32, 3)
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
    # Pixel (row 4, column 9) of channel 1 of the first image sits at 1024 + 4*32 + 9.
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert float(ds.x_train[0, 4, 9, 1]) == pytest.approx(raw[b"data"][0, 1024 + 4 * 32 + 9] / 255)
    assert ds.y_train[:7].tolist() == raw[b"labels"]
    std = data.cifar10(tmp_path)
    np.testing.assert_allclose(np.asarray(std.x_train).mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(std.x_train).std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_cifar10_limit_and_classes(tmp_path):
    data.write_cifar10_standin(tmp_path, n_train=20, n_test=30)
    ds = data.cifar10(tmp_path, limit=8)
    assert ds.x_train.shape[0] == 8 and ds.x_test.shape[0] == 8
    two = data.cifar10(tmp_path, classes=(3, 5))
    assert set(np.unique(np.asarray(two.y_train)).tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="classes"):
        data.cifar10(tmp_path, classes=(3,))


def test_cifar10_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTHEORY_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.cifar10()
