import dataclasses

import pytest

from dltheory import config


def test_scale_is_quick_on_cpu(monkeypatch):
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    assert config.backend() == "cpu"
    assert config.scale() == "quick"


def test_gpu_backend_means_paper(monkeypatch):
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.setattr(config, "backend", lambda: "gpu")
    assert config.scale() == "paper"
    monkeypatch.setattr(config, "backend", lambda: "tpu")
    assert config.scale() == "paper"


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
