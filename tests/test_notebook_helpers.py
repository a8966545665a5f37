import pytest

from dltheory.notebook import glue


def test_glue_outside_a_book_build_is_quiet(capsys):
    assert glue("x", 1.5) is None
    assert capsys.readouterr().out == ""


def test_glue_name_is_checked():
    with pytest.raises(ValueError, match="`name` must be a non-empty string"):
        glue("", 1)


def test_elapsed_counts_from_the_setup_cell():
    import time

    import dltheory
    from dltheory import notebook

    dltheory.describe()
    time.sleep(0.05)
    first = notebook.elapsed()
    assert 0.05 <= first < 5
    dltheory.describe()  # a new setup cell restarts the clock
    assert notebook.elapsed() < first


def test_glue_stores_numpy_and_jax_scalars_as_python_numbers(monkeypatch):
    import jax.numpy as jnp
    import numpy as np

    from dltheory import notebook

    stored = {}
    myst_nb = pytest.importorskip("myst_nb")  # installed with the book, not on Colab

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: stored.update({name: value}))
    notebook.glue("a", np.float32(0.25))
    notebook.glue("b", jnp.asarray(3, jnp.int32))
    notebook.glue("c", [1, 2])
    assert type(stored["a"]) is float and stored["a"] == 0.25
    assert type(stored["b"]) is int and stored["b"] == 3
    assert stored["c"] == [1, 2]
