import dataclasses

import pytest

from dltheory import config


@pytest.mark.parametrize("platform", ["cpu", "gpu", "tpu"])
def test_scale_is_quick_by_default_on_every_backend(monkeypatch, platform):
    """A reader sees the quick scale everywhere; the papers' sizes only when asked."""
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.setattr(config, "backend", lambda: platform)
    assert config.scale() == "quick"


@pytest.mark.parametrize("value, expected", [("paper", "paper"), ("quick", "quick"),
                                             (" Paper ", "paper")])
def test_env_override(monkeypatch, value, expected):
    monkeypatch.setenv(config.ENV_VAR, value)
    assert config.scale() == expected


def test_invalid_env_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, "huge")
    with pytest.raises(ValueError, match=r"DLTHEORY_SCALE must be 'quick' or 'paper'; got 'huge'"):
        config.scale()


@dataclasses.dataclass(frozen=True)
class Sizes(config.Preset):
    steps: int

    @classmethod
    def quick(cls):
        return cls(steps=10)

    @classmethod
    def paper(cls):
        return cls(steps=1000)


def test_presets_follow_the_scale(monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, "paper")
    assert Sizes.current().steps == 1000
    monkeypatch.setenv(config.ENV_VAR, "quick")
    assert Sizes.current().steps == 10
    assert Sizes.for_scale("paper").steps == 1000
    with pytest.raises(ValueError, match="`which` must be 'quick' or 'paper'"):
        Sizes.for_scale("medium")


def test_describe_names_backend_and_scale(monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, "quick")
    line = config.describe()
    assert "on cpu" in line and "scale: quick (from DLTHEORY_SCALE)" in line


def test_describe_says_quick_is_the_default(monkeypatch):
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.delenv(config.MAX_STEPS_VAR, raising=False)
    line = config.describe()
    assert "scale: quick (the default; DLTHEORY_SCALE=paper runs the papers' sizes)" in line
    assert "WARNING" not in line  # not a Colab runtime


@pytest.mark.parametrize("value, expected", [("", None), ("12", 12), (" 3 ", 3)])
def test_max_steps_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(config.MAX_STEPS_VAR, value)
    assert config.max_steps() == expected


@pytest.mark.parametrize("value", ["0", "-4", "ten", "2.5"])
def test_max_steps_rejects_what_is_not_a_positive_integer(monkeypatch, value):
    monkeypatch.setenv(config.MAX_STEPS_VAR, value)
    with pytest.raises(ValueError, match="DLTHEORY_MAX_STEPS must be a positive integer"):
        config.max_steps()


def test_accelerator_warning_on_a_colab_gpu_that_jax_does_not_use():
    gpu = ["GPU 0: Tesla T4 (UUID: GPU-0)"]
    warning = config.accelerator_warning(on_colab=True, gpus=gpu, jax_backend="cpu")
    assert warning is not None and "Tesla T4" in warning and "CPU" in warning
    assert "pip list" in warning  # says how to see the versions
    # no warning when JAX uses the GPU, when there is no GPU, or outside Colab
    assert config.accelerator_warning(on_colab=True, gpus=gpu, jax_backend="gpu") is None
    assert config.accelerator_warning(on_colab=True, gpus=[], jax_backend="cpu") is None
    assert config.accelerator_warning(on_colab=False, gpus=gpu, jax_backend="cpu") is None


def test_describe_carries_the_warning(monkeypatch):
    monkeypatch.setattr(config, "accelerator_warning", lambda: "WARNING: plugin mismatch")
    lines = config.describe().splitlines()
    assert len(lines) == 2 and lines[1] == "WARNING: plugin mismatch"
