"""The environments readers run the book in: Colab's package set and the declared floors.

The jobs themselves (`make test-colab`, `make test-min`, tools/env_jobs.py) run in .ci/run;
these tests check what they rest on: the constraints made from Colab's freeze, floors that
Colab satisfies, and the compat layer that lets one code base run on both jax lines.
"""

import importlib.util
import pathlib
import re
import sys
import tomllib

import jax
import jax.numpy as jnp
import pytest

from dltheory import compat

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONSTRAINTS = sorted((ROOT / "tools" / "colab").glob("constraints.*.txt"))[-1]


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


colab_constraints = _load("colab_constraints", ROOT / "tools" / "colab_constraints.py")
env_jobs = _load("env_jobs", ROOT / "tools" / "env_jobs.py")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_versions() -> dict[str, str]:
    return {canonical(ln.split("==")[0]): ln.split("==")[1].strip()
            for ln in CONSTRAINTS.read_text().splitlines() if "==" in ln and not ln.startswith("#")}


def test_constraints_drop_what_pypi_cannot_serve():
    kept, dropped = colab_constraints.convert([
        "# a comment", "jax==0.7.2", "jaxlib==0.7.2", "jax-cuda12-plugin==0.7.2",
        "jax-cuda12-pjrt==0.7.2", "nvidia-cublas-cu12==12.8.4.1", "cupy-cuda12x==14.0.1",
        "torch==2.11.0+cu128", "google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz",
        "cudf-cu12==26.2.1", "dask==2026.1.1", "ipython==7.34.0", "flax==0.11.2"])
    assert kept == ["jax==0.7.2", "jaxlib==0.7.2", "ipython==7.34.0", "flax==0.11.2"]
    reasons = dict(dropped)
    assert reasons["google-colab"].startswith("a direct reference")
    assert reasons["torch==2.11.0+cu128"].startswith("a local (CUDA) build")
    assert reasons["jax-cuda12-plugin==0.7.2"] == "CUDA only"
    assert reasons["nvidia-cublas-cu12==12.8.4.1"] == "CUDA only"
    assert reasons["dask==2026.1.1"] == "pinned by the RAPIDS stack"


def test_committed_constraints_are_colabs_runtime():
    """The file `make test-colab` installs from: Colab's pins, nothing PyPI cannot serve."""
    text = CONSTRAINTS.read_text()
    assert re.search(r"constraints\.\d{4}-\d{2}-\d{2}\.txt$", CONSTRAINTS.name)  # dated
    pins = colab_versions()
    for name, version in [("jax", "0.7.2"), ("jaxlib", "0.7.2"), ("flax", "0.11.2"),
                          ("optax", "0.2.8"), ("ipython", "7.34.0"), ("ipywidgets", "7.7.1"),
                          ("numpy", "2.1.3")]:
        assert pins[name] == version, name
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert not [ln for ln in body if " @ " in ln or "+" in ln or ln.startswith("nvidia-")]


def test_the_constraints_file_is_what_the_tool_makes():
    freeze = ROOT.parent / "shared" / "colab" / f"pip-freeze.gpu.{CONSTRAINTS.name[12:22]}.txt"
    if not freeze.exists():
        pytest.skip(f"Colab's published freeze is not beside the repository ({freeze})")
    kept, _ = colab_constraints.convert(freeze.read_text().splitlines())
    body = [ln for ln in CONSTRAINTS.read_text().splitlines() if not ln.startswith("#")]
    assert body == kept


def test_every_floor_is_at_or_below_colabs_version():
    """Installing dltheory on Colab must upgrade nothing: each lower bound that
    pyproject.toml declares is satisfied by the version Colab ships."""
    from packaging.version import Version

    pins = colab_versions()
    floors = env_jobs.floors()
    assert floors, "pyproject.toml declares no runtime dependency"
    above = []
    for pin in floors:
        name, floor = pin.split("==")
        colab = pins.get(canonical(name))
        assert colab is not None, f"{name} is not in Colab's runtime; is it needed?"
        if Version(floor) > Version(colab):
            above.append(f"{name}>={floor} (Colab has {colab})")
    assert not above, above


def test_floors_are_plain_lower_bounds():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {canonical(re.split(r"[<>=!~ ]", d)[0]) for d in deps}
    # imported by the package, so declared
    assert {"jax", "flax", "optax", "numpy", "scipy", "pillow", "matplotlib", "ipywidgets",
            "ipython", "scikit-learn", "tqdm"} <= names


def test_the_setup_cell_never_upgrades():
    cell = env_jobs.setup_cell()
    code = "\n".join(ln.split("#")[0] for ln in cell.splitlines())  # comments aside
    assert "--upgrade" not in code and '"-U"' not in code
    assert "DLTHEORY_INSTALL_URL" in cell and "pip could not install dltheory" in cell


# ----------------------------------------------------------------------------- compat


def test_enable_x64_is_scoped():
    assert not compat.x64_enabled()
    assert jnp.ones(2).dtype == jnp.float32
    with compat.enable_x64():
        assert compat.x64_enabled()
        assert jnp.ones(2).dtype == jnp.float64
        with compat.enable_x64(False):
            assert jnp.ones(2).dtype == jnp.float32
        assert jnp.ones(2).dtype == jnp.float64
    assert not compat.x64_enabled() and jnp.ones(2).dtype == jnp.float32


def test_enable_x64_traces_in_float64():
    f = jax.jit(lambda x: x * 2)
    with compat.enable_x64():
        y = f(jnp.asarray(1.0, jnp.float64))
        assert y.dtype == jnp.float64 and float(y) == 2.0


def test_enable_x64_rejects_what_is_not_a_bool():
    with pytest.raises(TypeError, match="argument `on` must be a bool"):
        with compat.enable_x64("yes"):
            pass


def test_jax_version_is_parsed():
    assert compat.JAX_VERSION[:2] == tuple(int(p) for p in jax.__version__.split(".")[:2])


def test_variance_scaling_is_one_object_per_arguments():
    """Equal models must have equal graph definitions (flax 0.11 keeps initializers in
    them), so the initializer for the same arguments is the same object."""
    assert compat.variance_scaling(2.0, "fan_in", "normal") is compat.variance_scaling(2, "fan_in", "normal")
    assert compat.variance_scaling(1.0) is not compat.variance_scaling(2.0)


def test_two_equal_models_share_one_compiled_program():
    from flax import nnx

    from dltheory import models
    from dltheory.training import count_compilations

    @jax.jit
    def forward(graphdef, state, x):
        return nnx.merge(graphdef, state)(x)

    x = jnp.ones((3, 8))

    def run(seed):
        g, s = nnx.split(models.MLP((8, 16, 2), rngs=nnx.Rngs(seed), init_scale=0.5))
        return forward(g, s, x)

    run(0)  # compiles the forward pass (and the eager initialization ops) once
    with count_compilations() as compiled:
        run(1), run(2)
    assert compiled() == 0
