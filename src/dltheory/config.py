"""Scale presets: ``quick`` everywhere by default, ``paper`` when asked.

Every experiment in the book has a small frozen dataclass of sizes with ``quick()`` and
``paper()`` constructors (subclass :class:`Preset`). :func:`scale` decides which one a
chapter uses: ``quick`` unless the environment variable ``DLTHEORY_SCALE=paper`` asks for
the papers' sizes (``DLTHEORY_SCALE=quick`` states the default). ``quick`` is what every
page of the book shows, on a CPU or a GPU alike, so a reader sees the first figure within
a minute; each chapter's "Paper scale" section runs its ``paper`` preset when asked, with
its time and memory stated before it runs.

``DLTHEORY_MAX_STEPS=N`` caps the number of steps of a ``paper`` preset (see
:meth:`Preset.capped`): every shape stays the paper's, so a short run exercises every code
path of the long one.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import shutil
import subprocess
import sys
from typing import Literal, TypeVar

__all__ = ["SCALES", "ENV_VAR", "MAX_STEPS_VAR", "scale", "backend", "max_steps", "Preset",
           "describe", "accelerator_warning", "progress_bars"]

SCALES = ("quick", "paper")
ENV_VAR = "DLTHEORY_SCALE"
MAX_STEPS_VAR = "DLTHEORY_MAX_STEPS"

Scale = Literal["quick", "paper"]
P = TypeVar("P", bound="Preset")


def backend() -> str:
    """The platform JAX computes on: ``"cpu"``, ``"gpu"`` or ``"tpu"``."""
    import jax

    return jax.default_backend()


def scale() -> Scale:
    """Return ``"quick"`` or ``"paper"``: ``DLTHEORY_SCALE`` if set, else ``"quick"``.

    Raises:
      ValueError: if ``DLTHEORY_SCALE`` is set to anything but ``quick`` or ``paper``.
    """
    value = os.environ.get(ENV_VAR)
    if value is not None and value.strip() != "":
        v = value.strip().lower()
        if v not in SCALES:
            raise ValueError(f"environment variable {ENV_VAR} must be 'quick' or 'paper'; "
                             f"got {value!r}")
        return v  # type: ignore[return-value]
    return "quick"


def max_steps() -> int | None:
    """The step cap ``DLTHEORY_MAX_STEPS`` asks for, or None when it is unset.

    Raises:
      ValueError: if the variable is set to anything but a positive integer.
    """
    value = os.environ.get(MAX_STEPS_VAR, "").strip()
    if not value:
        return None
    try:
        cap = int(value)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"environment variable {MAX_STEPS_VAR} must be a positive integer; "
                         f"got {value!r}")
    return cap


def log_interval(steps: int, points: int, *, prefer: int | None = None) -> int:
    """A logging interval that divides ``steps``: ``prefer`` when it does, else the
    largest divisor of ``steps`` that still logs at least ``points`` times (or every step
    when ``steps < points``). A run keeps a valid interval when its step count is capped.

    Raises:
      ValueError: if ``steps``, ``points`` or ``prefer`` is not a positive integer.
    """
    for name, v in (("steps", steps), ("points", points), ("prefer", prefer)):
        if name == "prefer" and v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"argument `{name}` must be a positive integer; got {v!r}")
    steps, points = int(steps), int(points)
    if prefer is not None and steps % int(prefer) == 0:
        return int(prefer)
    target = max(1, steps // points)
    return max(k for k in range(1, target + 1) if steps % k == 0)


_OFF = ("0", "false", "no", "off")
_ON = ("", "1", "true", "yes", "on")


def progress_bars() -> bool:
    """Whether automatic progress bars are on: yes unless ``DLTHEORY_PROGRESS`` is
    ``0``, ``false``, ``no`` or ``off`` (the book build turns them off).

    Raises:
      ValueError: if the variable is set to anything else than those or ``1``, ``true``,
        ``yes``, ``on``.
    """
    raw = os.environ.get("DLTHEORY_PROGRESS", "1")
    value = raw.strip().lower()
    if value not in _OFF + _ON:
        raise ValueError(f"environment variable DLTHEORY_PROGRESS must be one of "
                         f"{', '.join(_OFF + _ON[1:])}; got {raw!r}")
    return value not in _OFF


def _gpus_listed_by_nvidia_smi() -> list[str]:
    """The GPUs ``nvidia-smi -L`` lists (empty when there is no such tool or no GPU)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("GPU")]


def accelerator_warning(*, on_colab: bool | None = None, gpus: list[str] | None = None,
                        jax_backend: str | None = None) -> str | None:
    """A warning when a Colab runtime has a GPU that JAX does not use, else None.

    That happens when jax, jaxlib and the CUDA plugin are of different versions (for
    example after upgrading jax inside Colab): JAX then falls back to the CPU without an
    error, and every run is many times slower than it should be.

    Args:
      on_colab: whether this is a Colab runtime (default: ``google.colab`` is importable).
      gpus: the GPUs the driver lists (default: ``nvidia-smi -L``).
      jax_backend: the platform JAX computes on (default: :func:`backend`).
    """
    if on_colab is not None and not isinstance(on_colab, bool):
        raise TypeError(f"argument `on_colab` must be a bool or None; got {on_colab!r}")
    if gpus is not None and (isinstance(gpus, (str, bytes)) or not isinstance(gpus, (list, tuple))
                             or not all(isinstance(g, str) for g in gpus)):
        raise TypeError(f"argument `gpus` must be a list of GPU names (str) or None; got "
                        f"{gpus!r}")
    if jax_backend is not None and (not isinstance(jax_backend, str) or not jax_backend):
        raise TypeError(f"argument `jax_backend` must be a platform name such as 'cpu' or "
                        f"'gpu', or None; got {jax_backend!r}")
    if on_colab is None:
        on_colab = "google.colab" in sys.modules or _importable("google.colab")
    if not on_colab:
        return None
    gpus = _gpus_listed_by_nvidia_smi() if gpus is None else list(gpus)
    if not gpus:
        return None
    jax_backend = backend() if jax_backend is None else jax_backend
    if jax_backend != "cpu":
        return None
    import jax

    return ("WARNING: this runtime has a GPU (" + gpus[0] + ") but JAX computes on the CPU. "
            "The CUDA plugin does not match jax and jaxlib (jax " + jax.__version__ + "), "
            "which happens when jax was upgraded in this runtime. Run "
            "`!pip list | grep -i jax` to see the versions, then Runtime > Disconnect and "
            "delete runtime to get Colab's own set back.")


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def describe() -> str:
    """A line for a notebook's setup cell: package version, backend, devices, scale.

    On a Colab runtime whose GPU JAX does not see, a second line warns about it (see
    :func:`accelerator_warning`).
    """
    import jax

    from dltheory import __version__
    from dltheory.notebook import start_clock

    start_clock()  # the chapter's compute budget is measured from its setup cell

    devices = jax.devices()
    kind = devices[0].device_kind if devices else "none"
    if os.environ.get(ENV_VAR, "").strip():
        source = f"from {ENV_VAR}"
    else:
        source = f"the default; {ENV_VAR}=paper runs the papers' sizes"
    cap = max_steps()
    capped = f" | paper presets capped at {cap} steps" if cap is not None else ""
    line = (f"dltheory {__version__} | JAX {jax.__version__} on {backend()} "
            f"({len(devices)} x {kind}) | scale: {scale()} ({source}){capped}")
    warning = accelerator_warning()
    return line if warning is None else line + "\n" + warning


@dataclasses.dataclass(frozen=True)
class Preset:
    """Base class of an experiment's sizes; subclasses define ``quick`` and ``paper``.

    Example::

        @dataclasses.dataclass(frozen=True)
        class Sizes(Preset):
            steps: int
            seeds: int

            @classmethod
            def quick(cls): return cls(steps=200, seeds=16)

            @classmethod
            def paper(cls): return cls(steps=20_000, seeds=256)

        sizes = Sizes.current()   # quick unless DLTHEORY_SCALE=paper
    """

    def __post_init__(self) -> None:
        """Check every field by its annotation: an ``int`` is an integer >= 1, a ``float``
        a finite number > 0, a ``tuple[...]`` a non-empty tuple of those, and only an
        annotation with ``| None`` allows ``None`` (sizes, counts and rates are positive).
        A subclass with other rules overrides this (and calls it for the other fields)."""
        for f in dataclasses.fields(self):
            _check_field(f.name, f.type, getattr(self, f.name))

    @classmethod
    def quick(cls: type[P]) -> P:  # pragma: no cover - subclasses override
        raise NotImplementedError(f"{cls.__name__} does not define a quick() preset")

    @classmethod
    def paper(cls: type[P]) -> P:  # pragma: no cover - subclasses override
        raise NotImplementedError(f"{cls.__name__} does not define a paper() preset")

    @classmethod
    def for_scale(cls: type[P], which: str | None = None) -> P:
        """The preset for ``which`` (``"quick"`` or ``"paper"``), or for :func:`scale`.

        The ``paper`` preset is :meth:`capped` at :func:`max_steps` when
        ``DLTHEORY_MAX_STEPS`` is set.
        """
        if which is None:
            which = scale()
        if which not in SCALES:
            raise ValueError(f"argument `which` must be 'quick' or 'paper'; got {which!r}")
        preset = getattr(cls, which)()
        cap = max_steps() if which == "paper" else None
        return preset if cap is None else preset.capped(cap)

    @staticmethod
    def is_count(name: str) -> bool:
        """Whether field ``name`` counts steps or epochs (``steps``, ``*_steps``,
        ``*_substeps``, ``epochs``, ``*_epochs``)."""
        return name in ("steps", "epochs") or name.endswith(("_steps", "_substeps",
                                                             "_epochs"))

    @staticmethod
    def is_interval(name: str) -> bool:
        """Whether field ``name`` is a logging interval (``log_every``, ``*_log_every``)."""
        return name == "log_every" or name.endswith("_log_every")

    def capped(self: P, cap: int) -> P:
        """This preset with every step and epoch count at most ``cap``, shapes unchanged.

        Every integer field that :meth:`is_count` is replaced by ``min(value, cap)``; every
        other field (widths, batch sizes, seeds, data sizes) is kept. A logging interval
        (:meth:`is_interval`) becomes the greatest common divisor of itself and the capped
        counts it divided before, so each of those counts stays a multiple of it (the
        engines need ``steps % log_every == 0``). A preset whose fields are related in
        another way overrides this method.

        Args:
          cap: the largest step or epoch count, a positive integer.

        Returns:
          A preset of the same class.

        Raises:
          TypeError: if ``cap`` is not an integer.
          ValueError: if ``cap < 1``.
        """
        if isinstance(cap, bool) or not isinstance(cap, int):
            raise TypeError(f"argument `cap` must be a positive int; got {cap!r}")
        if cap < 1:
            raise ValueError(f"argument `cap` must be a positive int; got {cap!r}")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        counts = {k: v for k, v in fields.items()
                  if self.is_count(k) and isinstance(v, int) and not isinstance(v, bool)}
        new = {k: min(v, cap) for k, v in counts.items()}
        for k, every in fields.items():
            if not (self.is_interval(k) and isinstance(every, int) and every > 0):
                continue
            served = [new[c] for c, v in counts.items() if v % every == 0]
            new[k] = math.gcd(every, *served) if served else every
        return dataclasses.replace(self, **new)

    @classmethod
    def current(cls: type[P]) -> P:
        """The preset for the current scale: ``quick`` or ``paper`` (see :func:`scale`)."""
        return cls.for_scale(None)


def _check_field(name: str, annotation: object, value: object) -> None:
    """One field of a :class:`Preset` (see :meth:`Preset.__post_init__`)."""
    from dltheory import validation as V

    ann = (annotation if isinstance(annotation, str) else
           getattr(annotation, "__name__", str(annotation))).replace(" ", "")
    parts = [a for a in ann.split("|") if a not in ("None", "NoneType")]
    optional = len(parts) < len(ann.split("|"))
    if value is None:
        if not optional:
            raise ValueError(f"argument `{name}` must not be None (a {ann})")
        return
    base = parts[0] if len(parts) == 1 else ""

    def one(label: str, kind: str, v: object) -> None:
        if kind == "int":
            V.check_int(label, v, minimum=1)
        elif kind == "float":
            V.check_positive(label, v)

    if base in ("int", "float"):
        one(name, base, value)
    elif base.startswith(("tuple[", "Tuple[")):
        kind = base[base.index("[") + 1:].split(",")[0].rstrip("]")
        if not isinstance(value, tuple):
            raise TypeError(f"argument `{name}` must be a tuple of {kind}; got {value!r}")
        if not value:
            raise ValueError(f"argument `{name}` must be a non-empty tuple of {kind}; got ()")
        for i, v in enumerate(value):
            one(f"{name}[{i}]", kind, v)
