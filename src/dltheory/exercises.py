"""Exercise checkers that keep the solutions private.

``check(label, answer)`` tells a reader whether the answer to the exercise ``label`` is
right, with a hint when it is not, and never shows the solution:

* a **numeric** answer (a number, or a tuple of numbers) is compared through salted
  hashes: the reference value is stored only as the SHA-256 digests of its position on a
  logarithmic grid (relative spacing ``rel``) and of the two neighbouring positions, so an
  answer within about 1.5 ``rel`` of the reference is accepted and the reference itself
  appears nowhere in the package;
* a **code** answer (a function) is run on fixed inputs and compared with the package's
  own implementation of the same quantity (the subject of the chapter, not the solution's
  text).

Instructors add a numeric exercise with the digests printed by
``python -m dltheory.exercises LABEL VALUE [VALUE ...] [--rel R]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
from typing import Any, Callable, Sequence

from . import validation as V

__all__ = ["Verdict", "NumericAnswer", "CodeAnswer", "EXERCISES", "check", "digests"]

_SALT = "dltheory-exercises-v1"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`: ``correct`` and the message shown to the reader."""

    label: str
    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        return f"**{self.message.split(':', 1)[0]}**" + (
            ":" + self.message.split(":", 1)[1] if ":" in self.message else "")


def _check_label(label: Any) -> str:
    V.check_instance("label", label, str, "string")
    if not label.strip():
        raise ValueError("argument `label` must be a non-empty string (the exercise's label)")
    return label


def _check_rel(rel: Any) -> float:
    rel = V.check_positive("rel", rel)
    if rel >= 1:
        raise ValueError(f"argument `rel` must be a relative spacing in (0, 1); got {rel!r}")
    return rel


def _position(x: float, rel: float) -> str:
    """The grid cell of ``x``: its sign and its index on a log grid of spacing ``rel``."""
    if x == 0:
        return "0"
    return f"{'-' if x < 0 else '+'}{round(math.log(abs(x)) / math.log1p(rel))}"


def _digest(label: str, index: int, cell: str) -> str:
    return hashlib.sha256(f"{_SALT}:{label}:{index}:{cell}".encode()).hexdigest()[:24]


def digests(label: str, values: Sequence[float], rel: float = 0.01) -> tuple[frozenset[str], ...]:
    """The digests :class:`NumericAnswer` stores for the reference ``values``: for each,
    its own grid cell and both neighbours (so the acceptance window does not depend on
    where the value falls in its cell)."""
    _check_label(label)
    rel = _check_rel(rel)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"argument `values` must be a non-empty sequence of numbers; got "
                        f"{values!r}")
    values = [V.check_finite(f"values[{i}]", v) for i, v in enumerate(values)]
    out = []
    for i, v in enumerate(values):
        if v == 0:
            out.append(frozenset({_digest(label, i, "0")}))
            continue
        k = round(math.log(abs(v)) / math.log1p(rel))
        sign = "-" if v < 0 else "+"
        out.append(frozenset(_digest(label, i, f"{sign}{k + d}") for d in (-1, 0, 1)))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class NumericAnswer:
    """A number or a tuple of numbers, stored as digests (see :func:`digests`)."""

    label: str
    what: str                         # what to enter, e.g. "the number of steps"
    digests: tuple[tuple[str, ...], ...]
    hint: str
    rel: float = 0.01

    def __post_init__(self):
        _check_label(self.label)
        object.__setattr__(self, "rel", _check_rel(self.rel))
        ok = isinstance(self.digests, tuple) and self.digests and all(
            isinstance(d, tuple) and d and all(isinstance(h, str) for h in d)
            for d in self.digests)
        if not ok:
            raise TypeError(f"argument `digests` must be a non-empty tuple of tuples of digest "
                            f"strings (see dltheory.exercises.digests); got {self.digests!r}")

    def check(self, answer: Any) -> Verdict:
        values = answer if isinstance(answer, (tuple, list)) else (answer,)
        if len(values) != len(self.digests):
            return Verdict(self.label, False,
                           f"Not the right form: enter {self.what} "
                           f"({len(self.digests)} number{'s' * (len(self.digests) > 1)})")
        wrong = []
        for i, (v, ds) in enumerate(zip(values, self.digests)):
            try:
                x = float(v)
            except (TypeError, ValueError):
                return Verdict(self.label, False, f"Not the right form: enter {self.what} "
                               f"as numbers; got {v!r}")
            if not math.isfinite(x) or _digest(self.label, i, _position(x, self.rel)) not in ds:
                wrong.append(i)
        if not wrong:
            return Verdict(self.label, True, "Correct")
        which = "" if len(self.digests) == 1 else \
            f" (number {', '.join(str(i + 1) for i in wrong)} of {len(self.digests)})"
        return Verdict(self.label, False, f"Not yet{which}: {self.hint}")


@dataclasses.dataclass(frozen=True)
class CodeAnswer:
    """A function compared with the package's ``reference`` (``"module:function"``) on
    fixed ``cases`` (tuples of positional arguments)."""

    label: str
    what: str
    reference: str
    cases: tuple[tuple[Any, ...], ...]
    hint: str
    rtol: float = 1e-6
    #: keyword arguments passed to the reference only (the reader's function takes the
    #: positional arguments of ``cases``), as ``(name, value)`` pairs
    reference_kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        _check_label(self.label)
        object.__setattr__(self, "rtol", V.check_nonnegative("rtol", self.rtol))
        if not (isinstance(self.reference_kwargs, tuple) and all(
                isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[0], str)
                for kv in self.reference_kwargs)):
            raise TypeError(f"argument `reference_kwargs` must be a tuple of (name, value) "
                            f"pairs; got {self.reference_kwargs!r}")
        V.check_instance("reference", self.reference, str, "string 'module:function'")
        module, sep, name = self.reference.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"argument `reference` must be 'module:function'; got "
                             f"{self.reference!r}")
        try:
            ref = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            raise ValueError(f"argument `reference` must name a function of the package; "
                             f"{self.reference!r} does not exist") from None
        V.check_callable("reference", ref)
        if not (isinstance(self.cases, tuple) and self.cases
                and all(isinstance(c, tuple) for c in self.cases)):
            raise TypeError(f"argument `cases` must be a non-empty tuple of argument tuples; "
                            f"got {self.cases!r}")

    def check(self, answer: Any) -> Verdict:
        import numpy as np

        if not callable(answer):
            return Verdict(self.label, False, f"Not the right form: pass {self.what} "
                           "(a function), not its value")
        module, name = self.reference.split(":")
        ref: Callable = getattr(importlib.import_module(module), name)
        for args in self.cases:
            want = np.asarray(ref(*args, **dict(self.reference_kwargs)), dtype=float)
            try:
                got = np.asarray(answer(*args), dtype=float)
            except Exception as exc:  # the reader's code failed: say so, with the input
                return Verdict(self.label, False,
                               f"Not yet: your function raised {type(exc).__name__}: {exc} "
                               f"for the input {args}")
            if got.shape != want.shape or not np.allclose(got, want, rtol=self.rtol, atol=1e-12):
                return Verdict(self.label, False,
                               f"Not yet: wrong value for the input {args}. {self.hint}")
        return Verdict(self.label, True, f"Correct on {len(self.cases)} inputs")


def _numeric(label, what, hashed, hint, rel=0.01) -> NumericAnswer:
    return NumericAnswer(label, what, tuple(tuple(sorted(h)) for h in hashed), hint, rel)


#: The checkable exercises of the book, by label.
EXERCISES: dict[str, NumericAnswer | CodeAnswer] = {a.label: a for a in (
    _numeric("gd-ex-best-lr", "the number of steps (an integer)",
             [('2bcefd12ca509147948c86f0', '3607acfb66ae5d4ac613b8b2', 'a769942bf047139b00293116')],
             "the loss contracts by rho squared per step, with rho = (kappa - 1)/(kappa + 1); "
             "solve rho^(2k) <= 1e-6 for the smallest integer k.", rel=2e-3),
    _numeric("glrl-ex-linear", "the two traces (gradient flow's completion, then the PSD one)",
             [('125fd6d38d9f784a0dae494f', 'c5d77870c02d643f78e94e28', 'ef7f27d7a9901aba4cb1afab'),
              ('04e516c2af1d085a7b24a656', 'af2d024ae1b9e7cbf36e84a1', 'd46a251b5dba8a8009177e7e')],
             "the trace of a PSD completion is the sum of its diagonal entries; fill the "
             "unobserved entries as in the text and add the diagonals."),
    _numeric("ilr-ex-relax", "the number of steps (a real number)",
             [('0994b5be853c4dcea9021476', '1720f5875556a5c9b2e65801', '9fd41592b98ff81f3c6db3e9')],
             "linearize the recursion around its fixed point: the error is multiplied by "
             "the derivative there at every step; count the steps until the product is 1/e.",
             rel=0.02),
    CodeAnswer("sde-ex-weights", "a function l -> (c1, c2) with c1 >= c2",
               "dltheory.sde.svag:svag_coefficients", tuple((l,) for l in (1, 2, 3, 8, 16)),
               "check c1 + c2 = 1 and c1^2 + c2^2 = l, and order the pair as c1 >= c2."),
    _numeric("asde-ex-derive", "the four numbers (eta, 1 - beta1, 1 - beta2, epsilon) at batch 256",
             [('499cf8665b6bce3020c26f8b', '84f13085d8fbadbf12860a53', 'bc4884459495069413774763'),
              ('a2ceaab22fc6b19548b8fcbd', 'e1bb99c534e416ea6e837dd0', 'f26308f1aba7003aa8e56b4d'),
              ('16273e7bca54e43a1ce3bcd0', '204392eec8a66f7ad00ca3de', 'b3698084de24948e3244a382'),
              ('03db6d3c36070671b7d44812', '84b1453561caa908f6869d0d', 'e9a9e39266b1172c4e28e442')],
             "kappa = 256/64; the rule multiplies eta by sqrt(kappa) and each 1 - beta by kappa, "
             "and divides epsilon by sqrt(kappa).", rel=0.005),
    CodeAnswer("hm-ex-exp", "a function (n, norm, order) -> the bound on the gap between the "
               "normalized and the smoothed margin", "dltheory.margin.core:smoothed_gap_bound",
               ((2, 1.0, 1), (10, 3.0, 2), (500, 40.0, 2), (7, 2.5, 3)),
               "bound log(sum_n exp(-q_n)) between -q_min and log N - q_min, then divide "
               "by |theta|^L.", reference_kwargs=(("loss", "exponential"),)),
    CodeAnswer("lr-ex-odd", "a function (svm_margin, alpha) -> the largest normalized margin "
               "of a two-layer Leaky ReLU net on symmetric data",
               "dltheory.margin.leaky:max_normalized_margin",
               ((1.0, 0.2), (0.3, 0.5), (2.0, 0.01), (0.05, 0.9)),
               "the margin is that of the odd part, (1 + alpha)/2 (sum_k a_k w_k)^T x, and "
               "|sum_k a_k w_k| <= |theta|^2 / 2."),
    _numeric("ms-ex-derive", "the number of steps T_s (a real number)",
             [('7f298fd141a1599c5008f5d5', '89c7a595b26a8b3281b10af4', 'e2da3d358784753d6cd4fdbf')],
             "put the numbers into the formula of (b); the logarithm in the denominator is "
             "ln(1 + 2 eta lambda_s), not 2 eta lambda_s.", rel=0.005),
    _numeric("si-ex-wd-norm", "the two numbers (|w_{t+1}|, theta_t in radians), to five digits",
             [('02acf70572a74bb0226c0e8b', '944882b8bb7c385142648617', 'ab8ca80e63c91ce0eca06f30'),
              ('3df4cc13a2e538a61435f941', '47e66a0a2e5c55682f2a87aa', '8cea0fc2c593fac975a638a7')],
             "the weight decay factor is 1 - eta lambda, and the gradient is orthogonal to "
             "w_t, so the two parts of the step add in squares.", rel=5e-4),
    CodeAnswer("lnsgd-ex-trace", "a function (params, x) -> the trace of the Hessian of the "
               "training loss", "dltheory.sharpness.label_noise:hessian_trace",
               tuple(({"u": u, "v": v}, x) for u, v, x in (
                   ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), ((1.0, -1.0, 1.0), (-1.0, -1.0, 1.0))),
                   ((0.5, 2.0, 0.0), (1.5, 0.1, 0.3), ((1.0, 1.0, -1.0),)),
                   ((0.2, -1.0, 0.7), (0.0, 0.45, -2.0),
                    ((0.5, -2.0, 1.0), (3.0, 0.1, -0.2), (-1.0, 1.0, 0.0))))),
               "the gradient of one prediction is (2 x_n u, -2 x_n v) entrywise, and at a "
               "minimizer only the Gauss-Newton term is left; away from it the other term "
               "still has zero trace.", rtol=1e-5),
    CodeAnswer("sam-ex-cycle", "a function (eta, rho, lam) -> the amplitude a of SAM's two-cycle",
               "dltheory.sharpness.sam:sam_residual",
               ((0.1, 0.05, 1.0), (0.02, 0.1, 8.0), (0.5, 0.01, 3.9), (1e-3, 1.0, 10.0)),
               "write the update for x > 0 and ask that it map a to -a.", rtol=1e-6),
    CodeAnswer("rt-ex-recovery", "a function (c, eta, wd) -> the number of steps (a real "
               "number) for weight decay alone to shrink a norm c times too large back",
               "dltheory.normalization.robust:recovery_steps",
               ((100.0, 0.1, 0.05), (1e4, 0.5, 0.3), (3.0, 0.2, 1.0), (0.5, 0.1, 0.05)),
               "each step multiplies the norm by 1 - eta lambda; solve (1 - eta lambda)^T = 1/c "
               "exactly, and a norm that is too small needs no shrinking.", rtol=1e-6),
    CodeAnswer("eos-ex-entry", "a function (start, eta, wd) -> the number of steps (a real "
               "number) before GD with weight decay reaches the edge on the toy",
               "dltheory.sharpness.edge_of_stability:entry_steps",
               ((0.27, 0.1, 0.01), (1.0, 0.05, 0.02), (0.01, 0.3, 0.001), (1.9, 0.1, 0.1)),
               "on the minimizers only weight decay acts: the sharpness grows by "
               "(1 - eta lambda)^-2 a step; solve for the step where eta lambda_max = 2.",
               rtol=1e-6),
)}


def check(label: str, answer: Any) -> Verdict:
    """Check ``answer`` to the exercise ``label``: right, or wrong with a hint.

    Write your answer in place of ``...`` in the chapter's checker cell and run it.
    """
    if not isinstance(label, str) or label not in EXERCISES:
        raise ValueError(f"argument `label` must be one of the checkable exercises "
                         f"({', '.join(sorted(EXERCISES))}); got {label!r}")
    entry = EXERCISES[label]
    if answer is Ellipsis:
        return Verdict(label, False, f"Waiting for your answer: replace ... by {entry.what} "
                       "and run the cell again")
    return entry.check(answer)


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dltheory.exercises",
                                 description="Print the digests of a numeric answer.")
    ap.add_argument("label")
    ap.add_argument("values", type=float, nargs="+")
    ap.add_argument("--rel", type=float, default=0.01)
    args = ap.parse_args(argv)
    for ds in digests(args.label, args.values, args.rel):
        print(tuple(sorted(ds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
