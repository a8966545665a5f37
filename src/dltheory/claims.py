"""The claims ledger: every quantitative claim of the book, the test that checks it, and
the bound it must meet.

A :class:`Claim` names one number a chapter measures (for example the normalized margin
of gradient descent as a fraction of the global maximum), the chapter and theorem it
belongs to, the paper it comes from, the ``test_claim_*`` test that checks it, and the
:class:`Bound` that number must satisfy. The same registry serves three readers:

* the tests call :func:`check` with the value they measured, so the tolerance lives in
  one place;
* each chapter records the values it glues (:func:`dltheory.notebook.glue` keeps them)
  and ends with :func:`publish`, which evaluates every claim of the chapter on its own
  numbers and glues one line per theorem (``ledger-<theorem label>``) naming the tests,
  the measured values, the bounds and whether they hold;
* the claims page (``book/claims.md``, written by :func:`claims_page`) lists every claim
  of every chapter with its status as of the build.

A claim whose number only the test suite measures has ``value=None``: its line names the
test and the bound, without a measured value.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import pathlib
import re
from typing import Any, Iterable, Mapping

from . import validation as V

__all__ = ["Bound", "Claim", "CLAIMS", "ClaimFailed", "at_least", "at_most", "between",
           "Ledger", "get", "check", "evaluate", "publish", "ledger_line", "claims_page", "chapters"]


class ClaimFailed(AssertionError):
    """A measured value outside its claim's bound (raised by :func:`check`)."""


@dataclasses.dataclass(frozen=True)
class Bound:
    """``low <= value <= high`` (either side may be open: ``None``)."""

    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        if self.low is None and self.high is None:
            raise ValueError("a Bound needs `low`, `high` or both")
        for name in ("low", "high"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, V.check_finite(name, getattr(self, name)))
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"Bound: `low` ({self.low}) must be below `high` ({self.high})")

    def holds(self, value: float) -> bool:
        """Whether ``value`` is a finite number inside the bound."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(v):
            return False
        return (self.low is None or v >= self.low) and (self.high is None or v <= self.high)

    def text(self) -> str:
        """The bound as a reader reads it: ``≤ 0.9``, ``≥ 3``, ``in [0.7, 1.3]``."""
        if self.low is None:
            return f"≤ {_num(self.high)}"
        if self.high is None:
            return f"≥ {_num(self.low)}"
        return f"in [{_num(self.low)}, {_num(self.high)}]"


def at_most(high: float) -> Bound:
    return Bound(high=high)


def at_least(low: float) -> Bound:
    return Bound(low=low)


def between(low: float, high: float) -> Bound:
    return Bound(low, high)


def _num(x: float, fmt: str = ".3g") -> str:
    s = format(float(x), fmt)
    if "e" in s:                                  # 1e-08 -> 1e-8
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


#: The functions a claim's ``value`` expression may call.
_FUNCTIONS = {"abs": abs, "max": max, "min": min}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One measured claim of the book.

    ``value`` is an expression over the names a chapter glues (``"hm_ratio"``,
    ``"d3_big / d2_big"``) giving the number the bound applies to, or ``None`` when only
    the test suite measures it. ``test`` is ``"tests/<file>.py::test_claim_<name>"``.
    """

    label: str
    chapter: str
    theorem: str | None
    paper: str
    statement: str
    measures: str
    test: str
    bound: Bound
    value: str | None = None
    fmt: str = ".3g"

    def __post_init__(self):
        for name in ("label", "chapter", "paper", "statement", "measures", "test", "fmt"):
            V.check_instance(name, getattr(self, name), str, "string")
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", self.label):
            raise ValueError(f"argument `label` must be lowercase words joined by hyphens; "
                             f"got {self.label!r}")
        if not re.fullmatch(r"[a-z_]+/[a-z_]+", self.chapter):
            raise ValueError(f"argument `chapter` must be a chapter path like "
                             f"'margin/two_layer_leaky_relu'; got {self.chapter!r}")
        if not re.fullmatch(r"tests/test_\w+\.py::test_claim_\w+", self.test):
            raise ValueError(f"argument `test` must look like "
                             f"'tests/test_x.py::test_claim_y'; got {self.test!r}")
        V.check_instance("bound", self.bound, Bound, "Bound")
        if self.theorem is not None:
            V.check_instance("theorem", self.theorem, str, "string or None")
        if self.value is not None:
            V.check_instance("value", self.value, str, "expression string or None")
            try:
                ast.parse(self.value, mode="eval")
            except SyntaxError:
                raise ValueError(f"argument `value` must be a Python expression over glued "
                                 f"names; got {self.value!r}") from None

    @property
    def test_name(self) -> str:
        return self.test.split("::", 1)[1]

    @property
    def test_file(self) -> str:
        return self.test.split("::", 1)[0]

    def names(self) -> set[str]:
        """The glued names ``value`` reads."""
        if self.value is None:
            return set()
        return {n.id for n in ast.walk(ast.parse(self.value, mode="eval"))
                if isinstance(n, ast.Name)} - set(_FUNCTIONS)

    def measure(self, glued: dict[str, Any]) -> float | None:
        """The claim's number from a chapter's glued values (``None`` without ``value``)."""
        if self.value is None:
            return None
        missing = self.names() - set(glued)
        if missing:
            raise KeyError(f"claim {self.label!r} reads {sorted(missing)}, which the chapter "
                           f"{self.chapter} did not glue")
        env = {n: glued[n] for n in self.names()}
        env.update(_FUNCTIONS)
        return float(eval(compile(ast.parse(self.value, mode="eval"), self.label, "eval"),
                          {"__builtins__": {}}, env))


_P = "preliminaries/gradient_descent"
_SGD = "sde/sgd_sde"
_ADA = "sde/adaptive_sde"
_HM = "margin/homogeneous_margin"
_LR = "margin/two_layer_leaky_relu"
_GL = "lowrank/greedy_low_rank"
_MS = "lowrank/incremental_sensing"
_SI = "normalization/scale_invariance"
_IL = "normalization/intrinsic_lr"
_LN = "sharpness/label_noise"
_SAM = "sharpness/sam"
_RT = "normalization/robust_training"
_EOS = "sharpness/edge_of_stability"

#: Every claim of the book, in the order of its chapters.
CLAIMS: tuple[Claim, ...] = (
    # ---------------------------------------------------------------- Preliminaries
    Claim("gd-stability-threshold", _P, "thm-gd-quadratic", "nesterov2018lectures",
          "Gradient descent on a quadratic is stable exactly below the learning rate "
          "$2/\\lambda_{\\max}$.",
          "measured stability threshold / $(2/\\lambda_{\\max})$",
          "tests/test_preliminaries.py::test_claim_stability_threshold_is_two_over_lambda_max",
          between(0.99, 1.01), "(stab_low + stab_high) / (2 * stab_pred)", ".4f"),
    Claim("gd-contraction-rate", _P, "thm-gd-quadratic", "nesterov2018lectures",
          "Below the threshold the loss contracts like $\\rho^{2k}$, "
          "$\\rho = \\max_i \\lvert 1 - \\eta\\lambda_i\\rvert$.",
          "fitted slope of the log-loss / $2\\ln\\rho$",
          "tests/test_preliminaries.py::test_claim_loss_contracts_at_rate_rho_squared",
          between(0.98, 1.02)),
    Claim("gd-divergence-rate", _P, "thm-gd-quadratic", "nesterov2018lectures",
          "Above the threshold the loss grows like "
          "$\\lvert 1 - \\eta\\lambda_{\\max}\\rvert^{2k}$.",
          "fitted slope of the log-loss / $2\\ln\\lvert 1 - \\eta\\lambda_{\\max}\\rvert$",
          "tests/test_preliminaries.py::test_claim_divergence_rate_above_threshold",
          between(0.99, 1.01)),
    Claim("gd-oscillation", _P, "thm-gd-quadratic", "nesterov2018lectures",
          "Between $1/\\lambda_{\\max}$ and $2/\\lambda_{\\max}$ the top coordinate flips "
          "sign at every step.",
          "fraction of steps on which the top coordinate flips sign",
          "tests/test_preliminaries.py::test_claim_oscillation_between_one_and_two_over_lambda_max",
          at_least(1.0)),
    Claim("gd-flow-order", _P, None, "nesterov2018lectures",
          "Gradient descent follows gradient flow to first order in the learning rate.",
          "fitted order in $\\eta$ of the gap between GD and the flow",
          "tests/test_preliminaries.py::test_claim_gd_follows_flow_to_first_order",
          between(0.92, 1.08), "flow_order"),
    Claim("gd-momentum-threshold", _P, None, "nesterov2018lectures",
          "Heavy-ball momentum $\\beta$ is stable on a quadratic iff "
          "$\\eta\\lambda_{\\max} < 2(1 + \\beta)$.",
          "measured threshold / $2(1+\\beta)/\\lambda_{\\max}$, worst of $\\beta = 0, 0.5, 0.9$",
          "tests/test_preliminaries.py::test_claim_momentum_threshold",
          between(0.98, 1.02)),
    Claim("edge-of-stability", _P, None, "cohen2021gradient",
          "Full-batch GD on a real net drives the sharpness to about $2/\\eta$ and keeps it "
          "there without diverging.",
          "late average sharpness / $(2/\\eta)$",
          "tests/test_preliminaries.py::test_claim_edge_of_stability_on_digits",
          between(0.9, 1.2), "eos_ratio_edge"),
    # ---------------------------------------------------------------- Part I: SDEs
    Claim("svag-moments", _SGD, "thm-svag", "li2021validity",
          "SVAG keeps the mean of the stochastic gradient and multiplies its variance by $l$ "
          "($l^2$ for the adaptive variant).",
          "largest relative error of the gradient variance against $l$ (or $l^2$) times "
          "the noise variance",
          "tests/test_sde.py::test_claim_svag_keeps_mean_and_multiplies_noise_variance",
          at_most(0.03)),
    Claim("svag-rate", _SGD, "thm-svag", "li2021validity",
          "SVAG's gap to the SDE shrinks like $1/l$.",
          "fitted log-log slope in $l$ of the gap between consecutive SVAG levels",
          "tests/test_sde.py::test_claim_svag_converges_to_the_sde_like_one_over_l",
          between(-1.6, -0.6), "svag_slope"),
    Claim("svag-limit", _SGD, "thm-svag", "li2021validity",
          "The largest SVAG level matches the Euler-Maruyama simulation of the SDE.",
          "relative gap between SVAG at the largest $l$ and the SDE",
          "tests/test_sde.py::test_claim_svag_converges_to_the_sde_like_one_over_l",
          at_most(0.05), "svag_em_gap / 100"),
    Claim("linear-rule-holds", _SGD, None, "li2021validity",
          "When the gradient noise dominates, the linear scaling rule keeps the loss curve.",
          "largest gap between the loss curves at batch size 4 and the base",
          "tests/test_sde.py::test_claim_linear_rule_holds_when_noise_dominates_and_fails_when_not",
          at_most(0.05), "lsr_gap_4"),
    Claim("linear-rule-fails", _SGD, None, "li2021validity",
          "When the noise does not dominate, the linear rule visibly fails.",
          "gap at batch size 64 / gap at batch size 4",
          "tests/test_sde.py::test_claim_linear_rule_holds_when_noise_dominates_and_fails_when_not",
          at_least(4.0), "lsr_gap_64 / lsr_gap_4"),
    Claim("rmsprop-sde", _ADA, None, "malladi2022sdes",
          "RMSprop run with adaptive SVAG matches the RMSprop SDE.",
          "gap between the expected loss at the largest SVAG level and the SDE's, in "
          "standard errors",
          "tests/test_sde.py::test_claim_rmsprop_sde_matches_adaptive_svag",
          at_most(4.0), "rms_in_se"),
    Claim("adam-sde-weak-error", _ADA, None, "malladi2022sdes",
          "Adam's weak error against the Adam SDE shrinks at least linearly in $\\eta$.",
          "fitted order $p$ of the weak error $\\propto \\eta^p$",
          "tests/test_sde.py::test_claim_adam_sde_weak_error_shrinks_with_eta",
          at_least(0.8), "adam_weak_slope", ".2f"),
    Claim("sqrt-rule-vs-linear", _ADA, "thm-sqrt-rule", "malladi2022sdes",
          "For Adam in the noise-dominated regime the square-root rule keeps the curve "
          "several times better than the linear rule.",
          "gap of the linear rule / gap of the square-root rule",
          "tests/test_sde.py::test_claim_sqrt_rule_beats_no_rescaling_and_the_linear_rule",
          at_least(2.0), "rule_ratio_linear"),
    Claim("sqrt-rule-vs-none", _ADA, "thm-sqrt-rule", "malladi2022sdes",
          "For Adam in the noise-dominated regime the square-root rule keeps the curve "
          "several times better than no rescaling at all.",
          "gap without rescaling / gap of the square-root rule",
          "tests/test_sde.py::test_claim_sqrt_rule_beats_no_rescaling_and_the_linear_rule",
          at_least(4.0), "rule_ratio_none"),
    # ---------------------------------------------------------------- Part II: margins
    Claim("homogeneity", _HM, None, "lyu2020gradient",
          "A bias-free MLP of depth $L$ with (leaky) ReLU is $L$-homogeneous.",
          "largest relative error of $f(c\\theta; x)$ against $c^L f(\\theta; x)$",
          "tests/test_models.py::test_claim_bias_free_mlp_is_L_homogeneous",
          at_most(2e-4)),
    Claim("smoothed-margin-monotone", _HM, "thm-hm-margin", "lyu2020gradient",
          "After the loss falls below $\\ln 2$ the smoothed margin never decreases.",
          "smallest step-to-step change of the smoothed margin, relative to its value",
          "tests/test_margin.py::test_claim_smoothed_margin_monotone_and_close_to_normalized",
          at_least(-1e-12), "hm_mono"),
    Claim("loss-based-margin", _HM, "thm-hm-margin", "lyu2020gradient",
          "A loss-based step size reaches a far larger normalized margin than a constant "
          "step in the same number of steps.",
          "normalized margin, loss-based / constant step",
          "tests/test_margin.py::test_claim_loss_based_schedule_reaches_3x_margin",
          at_least(3.0), "hm_ratio"),
    Claim("kkt-residual", _HM, "thm-hm-margin", "lyu2020gradient",
          "The normalized parameters approach a KKT point of the margin problem.",
          "KKT residual at the end, loss-based step size / constant step",
          "tests/test_margin.py::test_claim_kkt_residual_shrinks",
          at_most(0.5), "hm_kkt_lb1 / hm_kkt_c1"),
    Claim("symmetric-global-max", _LR, "thm-lr-symmetric", "lyu2021gradient",
          "On symmetric data the two-layer Leaky ReLU net ends at the global max margin, "
          "a linear classifier.",
          "final normalized margin / $\\frac{1+\\alpha}{4}\\gamma^*$",
          "tests/test_margin.py::test_claim_symmetric_data_reach_the_linear_max_margin",
          between(0.99, 1.01), "lr_ratio", ".4f"),
    Claim("early-alignment", _LR, "thm-lr-symmetric", "lyu2021gradient",
          "Early in training the neurons align with the direction $\\mu$.",
          "alignment with $\\mu$ before the loss has halved",
          "tests/test_margin.py::test_claim_early_alignment_with_mu",
          at_least(0.95), "lr_align", ".4f"),
    Claim("fragility", _LR, None, "lyu2021gradient",
          "Without symmetry, GD can end at a linear classifier well below the global "
          "two-layer max margin.",
          "GD normalized margin / global max, worst seed",
          "tests/test_margin.py::test_claim_fragility_gd_ends_linear_below_the_global_max",
          at_most(0.9), "lr_frag_ratio", ".3f"),
    # ---------------------------------------------------------------- Part III: low rank
    Claim("glrl-recovers", _GL, "thm-glrl", "li2021towards",
          "GLRL recovers the low-rank target, adding one rank per phase.",
          "relative error of the last GLRL iterate",
          "tests/test_lowrank.py::test_claim_glrl_recovers_the_target_with_increasing_ranks",
          at_most(1e-8), "target_err_glrl"),
    Claim("glrl-distance", _GL, "thm-glrl", "li2021towards",
          "Gradient flow from a small initialization follows GLRL.",
          "largest distance to the GLRL iterates, smallest initialization",
          "tests/test_lowrank.py::test_claim_distance_to_glrl_below_1e2_and_monotone_in_init",
          at_most(1e-2), "dist_max_small"),
    Claim("nuclear-norm-counterexample", _GL, None, "li2021towards",
          "Gradient flow does not minimize the nuclear norm: on the counterexample its "
          "solution has a larger nuclear norm than the convex optimum.",
          "nuclear norm of the flow's solution - the PSD minimum",
          "tests/test_lowrank.py::test_claim_counterexample_nuclear_norm_gap",
          at_least(0.5), "cex_gf - cex_psd"),
    Claim("depth-closer", _GL, None, "li2021towards",
          "Depth 3 follows GLRL more closely than depth 2 from the same initialization.",
          "largest distance to GLRL, depth 3 / depth 2",
          "tests/test_lowrank.py::test_claim_depth_three_is_closer_to_glrl_than_depth_two",
          at_most(0.1), "d3_big / d2_big"),
    Claim("plateau-times", _MS, "thm-incremental", "jin2023understanding",
          "The plateau times grow linearly in $\\ln(1/\\alpha)$ with the predicted slope.",
          "largest $\\lvert$measured slope / predicted slope $- 1\\rvert$",
          "tests/test_lowrank.py::test_claim_plateau_times_linear_in_log_inverse_alpha",
          at_most(0.2), "ratio_dev"),
    Claim("under-parameterized", _MS, "thm-incremental", "jin2023understanding",
          "An under-parameterized model ends at the best rank-$r$ approximation.",
          "largest distance to the best rank-$r$ approximation",
          "tests/test_lowrank.py::test_claim_under_parameterized_ends_at_best_rank_r",
          at_most(0.02), "under_best"),
    # ---------------------------------------------------------------- Part IV: normalization
    Claim("scale-invariance", _SI, "thm-si-gradient", "arora2019theoretical",
          "A normalized net's loss is scale invariant and its gradient is orthogonal to the "
          "weights.",
          "largest relative change of the loss under rescaling (float64)",
          "tests/test_normalization.py::test_claim_scale_invariance_and_orthogonality",
          at_most(1e-10)),
    Claim("norm-identity", _SI, "thm-si-gradient", "arora2019theoretical",
          "Without weight decay GD increases $\\lVert w\\rVert^2$ by exactly "
          "$\\eta^2\\lVert\\nabla L\\rVert^2$ per step.",
          "largest relative residual of the norm identity (float64)",
          "tests/test_normalization.py::test_claim_norm_identity_without_weight_decay",
          at_most(1e-12), "si_relresid"),
    Claim("wd-exponential", _SI, "thm-si-explr", "li2020exponential",
          "GD with weight decay equals GD without it under an exponentially growing "
          "learning rate.",
          "largest output gap between the two runs (float64)",
          "tests/test_normalization.py::test_claim_weight_decay_equals_exponential_schedule",
          at_most(1e-8), "si_exp_gap"),
    Claim("wd-exponential-momentum", _SI, "thm-si-explr", "li2020exponential",
          "With momentum the equivalence holds when the momentum buffer starts as the "
          "theorem says.",
          "largest output gap between the two runs with momentum (float64)",
          "tests/test_normalization.py::test_claim_exponential_schedule_with_momentum_needs_the_buffer_start",
          at_most(1e-8), "si_mom_gap"),
    Claim("si-sgd-rate", _SI, "thm-si-sgd-rate", "arora2019theoretical",
          "SGD at a fixed learning rate, not tuned to the smoothness, drives the smallest "
          "gradient norm of a scale-invariant loss down at least like $T^{-1/4}$.",
          "least steep fitted log-log slope of $\\min_{t \\le T}\\lVert\\nabla L\\rVert$ "
          "in $T$, over the learning rates",
          "tests/test_normalization.py::test_claim_si_sgd_rate",
          at_most(-0.2), "si_sgd_slope_max", ".2f"),
    Claim("equilibrium-from-init", _IL, "thm-ilr-equilibrium", "li2020reconciling",
          "The effective learning rate reaches the same equilibrium from initial norms "
          "$1\\times$ and $10\\times$.",
          "relative gap of the equilibrium effective learning rates",
          "tests/test_normalization.py::test_claim_equilibrium_from_initial_norms_1x_and_10x",
          at_most(0.10), "ilr_eff_c / 100"),
    Claim("same-product", _IL, "thm-ilr-equilibrium", "li2020reconciling",
          "The equilibrium depends on $\\eta$ and $\\lambda$ only through their product.",
          "relative gap of the equilibrium effective learning rates, same product",
          "tests/test_normalization.py::test_claim_same_product_same_equilibrium_different_product_not",
          at_most(0.10), "ilr_eff_b / 100"),
    Claim("angular-update", _IL, "thm-ilr-equilibrium", "li2020reconciling",
          "At equilibrium the angular update per step is $\\sqrt{2\\eta\\lambda}$.",
          "measured angular update / $\\sqrt{2\\eta\\lambda}$",
          "tests/test_normalization.py::test_claim_angular_update_is_sqrt_2_eta_lambda",
          between(0.9, 1.1), "ilr_ang_a / ilr_pred_a"),
    Claim("ilr-momentum", _IL, None, "wan2021spherical",
          "With momentum $\\gamma$ the angular update per step at equilibrium is "
          "$\\sqrt{2\\eta\\lambda/(1+\\gamma)}$.",
          "largest relative error of the formula over the momenta",
          "tests/test_normalization.py::test_claim_ilr_momentum",
          at_most(0.03), "ilr_mom_err_max", ".2g"),
    Claim("fast-equilibrium", _IL, "conj-ilr-fast", "li2020reconciling",
          "The time to equilibrium scales like $1/(\\eta\\lambda)$.",
          "fitted slope of $\\ln$(time) against $\\ln(1/(\\eta\\lambda))$",
          "tests/test_normalization.py::test_claim_fast_equilibrium_slope",
          between(0.7, 1.3), "ilr_slope"),
    Claim("robust-lemma-scalings", _RT, "thm-rt-robust", "li2022robust",
          "The two rescalings of Lemma 2.4 leave the iterates of SGD with weight decay (and "
          "relative clipping) unchanged.",
          "largest relative gap between the iterates of a pair (float64)",
          "tests/test_robust_training.py::test_claim_lemma_scalings_reproduce_the_iterates",
          at_most(1e-10), "rt_lemma_gap", ".1e"),
    Claim("robust-same-accuracy", _RT, "thm-rt-robust", "li2022robust",
          "From initial scales 0.01, 1 and 100, SGD with weight decay reaches the same test "
          "accuracy.",
          "spread of the final test accuracies over the three scales",
          "tests/test_robust_training.py::test_claim_same_accuracy_from_every_initial_scale",
          at_most(0.01), "rt_acc_spread", ".3f"),
    Claim("robust-log-time", _RT, "thm-rt-robust", "li2022robust",
          "It gets there within $\\ln c/(\\eta\\lambda) + O(1/(\\eta\\lambda))$ steps.",
          "largest $\\eta\\lambda T - \\ln\\max(c, 1)$ over the three scales",
          "tests/test_robust_training.py::test_claim_same_accuracy_from_every_initial_scale",
          at_most(3.0), "rt_excess", ".2f"),
    Claim("robust-sgd-stalls", _RT, "thm-rt-robust", "li2022robust",
          "SGD without weight decay from initial scale 100 stalls.",
          "its final test accuracy",
          "tests/test_robust_training.py::test_claim_same_accuracy_from_every_initial_scale",
          at_most(0.3), "rt_acc_sgd_100", ".3f"),
    Claim("robust-loss-scale", _RT, "thm-rt-robust", "li2022robust",
          "With the loss multiplied by $10^4$ or $10^8$, clipped SGD with weight decay "
          "reaches the test accuracy of the unscaled run.",
          "largest gap to the unscaled run's test accuracy",
          "tests/test_robust_training.py::test_claim_loss_scale_clipped_sgd_wd_trains",
          at_most(0.01), "rt_loss_gap", ".3f"),
    Claim("robust-plain-sgd-loss-scale", _RT, "thm-rt-robust", "li2022robust",
          "Plain SGD with the loss multiplied by $10^8$ stalls.",
          "its final test accuracy",
          "tests/test_robust_training.py::test_claim_loss_scale_clipped_sgd_wd_trains",
          at_most(0.3), "rt_acc_plain_1e8", ".3f"),
    Claim("robust-clip-fraction", _RT, None, "li2022robust",
          "Clipping fires on a small fraction of the steps.",
          "fraction of steps clipped, loss $\\times 10^4$",
          "tests/test_robust_training.py::test_claim_loss_scale_clipped_sgd_wd_trains",
          at_most(0.15), "rt_clip_1e4", ".3f"),
    # ---------------------------------------------------------------- Part V: sharpness
    Claim("label-noise-sparse", _LN, "thm-label-noise-sparse", "li2022what",
          "On the sparse-regression toy label-noise SGD finds the sparse solution.",
          "test error of label-noise SGD (mean of the replicas)",
          "tests/test_label_noise.py::test_claim_label_noise_finds_the_sparse_solution",
          at_most(0.05), "toy_ln_test"),
    Claim("label-noise-plain-fails", _LN, "thm-label-noise-sparse", "woodworth2020kernel",
          "From the same initialization, plain SGD and GD interpolate without finding it.",
          "smaller test error of plain SGD and GD",
          "tests/test_label_noise.py::test_claim_label_noise_finds_the_sparse_solution",
          at_least(0.5), "min(toy_sgd_test, toy_gd_test)"),
    Claim("label-noise-trace", _LN, "thm-label-noise-flow", "li2022what",
          "Label-noise SGD ends where the trace of the Hessian is smallest on the manifold of "
          "minimizers, $8\\lVert w^*\\rVert_1$.",
          "final trace of the Hessian / $8\\lVert w^*\\rVert_1$",
          "tests/test_label_noise.py::test_claim_label_noise_finds_the_sparse_solution",
          between(0.85, 1.15), "toy_trace_ratio"),
    Claim("label-noise-time-scale", _LN, "thm-label-noise-flow", "li2022what",
          "The trace falls on the time scale $\\eta^2 \\times$ steps: curves for three "
          "learning rates collapse against $\\eta^2 k$.",
          "spread of the crossing times across learning rates, against $\\eta^2 k$",
          "tests/test_label_noise.py::test_claim_slow_time_scale_eta_squared",
          at_most(0.25), "ts_spread_tau"),
    Claim("label-noise-sample-complexity", _LN, "thm-label-noise-sparse", "li2022what",
          "Label-noise SGD needs a number of samples that grows far slower than $d$.",
          "fitted exponent $p$ of the samples needed $\\propto d^p$, label-noise SGD",
          "tests/test_label_noise.py::test_claim_sample_complexity_log_d_vs_d",
          at_most(0.5), "sc_exp_ln", ".2f"),
    Claim("gd-sample-complexity", _LN, "thm-label-noise-sparse", "woodworth2020kernel",
          "GD from the same initialization needs a number of samples proportional to $d$.",
          "fitted exponent $p$ of the samples needed $\\propto d^p$, GD",
          "tests/test_label_noise.py::test_claim_sample_complexity_log_d_vs_d",
          between(0.8, 1.2), "sc_exp_gd", ".2f"),
    Claim("sam-toy-trace", _SAM, "thm-sam-flows", "wen2023sharpness",
          "On the toy, 1-SAM ends at the minimizer of the trace of the Hessian "
          "($x_1 = 1/3$) as $\\eta \\to 0$.",
          "distance of 1-SAM's $x_1$, extrapolated to $\\eta \\to 0$, from 1/3",
          "tests/test_sam.py::test_claim_sam_toy_minimizers",
          at_most(1e-2), "sam_eta0_err", ".2e"),
    Claim("sam-toy-top-eigenvalue", _SAM, "thm-sam-flows", "wen2023sharpness",
          "On the toy, full-batch SAM ends at the minimizer of the top eigenvalue ($x_1 = 1$).",
          "distance of full-batch SAM's final $x_1$ from 1",
          "tests/test_sam.py::test_claim_sam_toy_minimizers",
          at_most(1e-2), "abs(sam_x1_full - 1)", ".2e"),
    Claim("sam-two-cycle", _SAM, "thm-sam-flows", "wen2023sharpness",
          "Full-batch SAM's iterate oscillates with the predicted residual "
          "$\\eta\\rho\\lambda_1/(2 - \\eta\\lambda_1)$.",
          "relative error of the residual against the prediction",
          "tests/test_sam.py::test_claim_sam_toy_minimizers",
          at_most(0.05), "sam_res_rel", ".2e"),
    Claim("sam-digits-top-eigenvalue", _SAM, None, "wen2023sharpness",
          "On a digits MLP, full-batch SAM ends with a smaller top eigenvalue than 1-SAM.",
          "top eigenvalue, full-batch SAM / 1-SAM",
          "tests/test_sam.py::test_claim_sam_on_digits",
          at_most(0.9), "sam_d_ratio_lam"),
    Claim("sam-digits-trace", _SAM, None, "wen2023sharpness",
          "On a digits MLP, 1-SAM ends with a smaller trace of the Hessian than full-batch SAM.",
          "trace of the Hessian, 1-SAM / full-batch SAM",
          "tests/test_sam.py::test_claim_sam_on_digits",
          at_most(0.95), "sam_d_ratio_tr"),
    # ---------------------------------------------------------------- the edge of stability
    Claim("eos-digits-band-low", _EOS, "obs-eos-edge", "cohen2021gradient",
          "After the sharpness first reaches $2/\\eta$ it stays at or above about $1.8/\\eta$.",
          "smallest $\\eta\\lambda_{\\max}$ after the first crossing, both step sizes",
          "tests/test_edge_of_stability.py::test_claim_edge_of_stability_on_digits",
          at_least(1.8), "min(eos_low_a, eos_low_b)"),
    Claim("eos-digits-band-high", _EOS, "obs-eos-edge", "cohen2021gradient",
          "After the sharpness first reaches $2/\\eta$ it stays below about $2.4/\\eta$.",
          "largest $\\eta\\lambda_{\\max}$ after the first crossing, both step sizes",
          "tests/test_edge_of_stability.py::test_claim_edge_of_stability_on_digits",
          at_most(2.4), "max(eos_high_a, eos_high_b)"),
    Claim("eos-digits-loss-falls", _EOS, "obs-eos-edge", "cohen2021gradient",
          "At the edge the loss still falls over long windows.",
          "largest ratio of the mean loss over a window to the window before, both step sizes",
          "tests/test_edge_of_stability.py::test_claim_edge_of_stability_on_digits",
          at_most(0.98), "max(eos_win_a, eos_win_b)"),
    Claim("eos-digits-non-monotone", _EOS, "obs-eos-edge", "cohen2021gradient",
          "At the edge the loss does not fall monotonically.",
          "logged steps at which the loss went up, fewer of the two step sizes",
          "tests/test_edge_of_stability.py::test_claim_edge_of_stability_on_digits",
          at_least(1), "min(eos_rises_a, eos_rises_b)", ".0f"),
    Claim("eos-digits-sharpening", _EOS, "obs-eos-edge", "cohen2021gradient",
          "With a small step size the sharpness rises (progressive sharpening).",
          "final sharpness / smallest sharpness along the run, small step size",
          "tests/test_edge_of_stability.py::test_claim_edge_of_stability_on_digits",
          at_least(1.1), "eos_small_rise"),
    Claim("eos-digits-below-edge", _EOS, "obs-eos-edge", "cohen2021gradient",
          "With a small step size the sharpness stays below $2/\\eta$.",
          "largest $\\eta\\lambda_{\\max}$ along the run, small step size",
          "tests/test_edge_of_stability.py::test_claim_edge_of_stability_on_digits",
          at_most(1.8), "eos_small_peak"),
    Claim("eos-toy-band-low", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "On the toy, after entering the edge, $\\eta\\lambda_{\\max}$ stays above 1.6.",
          "smallest $\\eta\\lambda_{\\max}$ after entry, three $(\\eta, \\lambda)$",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_the_toy",
          at_least(1.6), "eos_t_low"),
    Claim("eos-toy-band-high", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "On the toy, after entering the edge, $\\eta\\lambda_{\\max}$ stays below 2.4.",
          "largest $\\eta\\lambda_{\\max}$ after entry, three $(\\eta, \\lambda)$",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_the_toy",
          at_most(2.4), "eos_t_high"),
    Claim("eos-toy-spherical-falls", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "On the toy the spherical sharpness falls along the minimizers.",
          "final / initial spherical sharpness of the minimizer below the iterate, worst pair",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_the_toy",
          at_most(0.5), "eos_t_fall"),
    Claim("eos-toy-time-scale", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "The time to reduce the spherical sharpness is proportional to $1/(\\eta\\lambda)$.",
          "largest / smallest of $\\eta\\lambda$ times the steps to reduce it, three pairs",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_the_toy",
          at_most(1.15), "eos_t_spread"),
    Claim("eos-toy-drift-predicted", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "The balance of weight decay and oscillation predicts the time of the drift.",
          "relative error of the mean reduction time against the predicted drift",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_the_toy",
          at_most(0.05), "eos_t_pred_err", ".2e"),
    Claim("eos-normalized-reduction", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "On a normalized digits net with weight decay, GD at the edge lowers the spherical "
          "sharpness.",
          "spherical sharpness at the end / at entry to the edge, with weight decay",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_normalized_digits",
          at_most(0.7), "eos_n_ratio"),
    Claim("eos-normalized-no-decay", _EOS, "thm-eos-reduction", "lyu2022understanding",
          "Without weight decay the same run does not lower it.",
          "spherical sharpness at the end / at the same step, without weight decay",
          "tests/test_edge_of_stability.py::test_claim_sharpness_reduction_on_normalized_digits",
          at_least(1.0), "eos_n_ratio_nowd"),
)

_BY_LABEL = {c.label: c for c in CLAIMS}


def get(label: str) -> Claim:
    """The claim registered under ``label``."""
    try:
        return _BY_LABEL[label]
    except (KeyError, TypeError):
        raise ValueError(f"argument `label` must be one of the registered claims "
                         f"({', '.join(sorted(_BY_LABEL))}); got {label!r}") from None


def chapters() -> list[str]:
    """The chapters that have claims, in the book's order."""
    seen: list[str] = []
    for c in CLAIMS:
        if c.chapter not in seen:
            seen.append(c.chapter)
    return seen


def check(label: str, value: Any) -> float:
    """Assert that ``value`` meets the bound of the claim ``label``; return it as a float.

    Used by the ``test_claim_*`` tests, so the tolerance the book shows is the one tested.
    """
    claim = get(label)
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"argument `value` must be a real number (the measured value of "
                        f"{label!r}); got {value!r} of type {type(value).__name__}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"argument `value` must be a real number (the measured value of "
                        f"{label!r}); got {value!r} of type {type(value).__name__}") from None
    if not claim.bound.holds(value):
        raise ClaimFailed(f"claim {label!r} ({claim.measures}): measured {value!r}, needs "
                          f"{claim.bound.text()}")
    return float(value)


def evaluate(chapter: str, glued: dict[str, Any] | None = None) -> list[tuple[Claim, float | None, bool | None]]:
    """``(claim, measured value, holds)`` for every claim of ``chapter`` from its glued
    values (by default those :func:`dltheory.notebook.glue` stored in this process)."""
    if chapter not in chapters():
        raise ValueError(f"argument `chapter` must be one of {chapters()}; got {chapter!r}")
    if glued is None:
        from . import notebook
        glued = notebook.glued()
    V.check_instance("glued", glued, Mapping, "mapping of glued names to values")
    out = []
    for c in CLAIMS:
        if c.chapter != chapter:
            continue
        v = c.measure(glued)
        out.append((c, v, None if v is None else c.bound.holds(v)))
    return out


def _check_root(root: Any) -> None:
    if root is not None:
        V.check_instance("root", root, pathlib.PurePath, "path to the repository, or None")


def _repo_root(start: pathlib.Path | None = None) -> pathlib.Path | None:
    here = (start or pathlib.Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "_config.yml").exists() and (p / "tests").is_dir():
            return p
    return None


def _source_url(claim: Claim, root: pathlib.Path | None, line: bool = True) -> str | None:
    """A link to the test's source in the repository named in ``_config.yml`` (to its
    line, with ``line``)."""
    if root is None:
        return None
    import yaml

    repo = (yaml.safe_load((root / "_config.yml").read_text()) or {}).get("repository", {})
    url, branch = repo.get("url"), repo.get("branch", "main")
    if not url:
        return None
    anchor = ""
    path = root / claim.test_file
    if line and path.exists():
        for i, text in enumerate(path.read_text().splitlines(), 1):
            if re.match(rf"def {re.escape(claim.test_name)}\b", text):
                anchor = f"#L{i}"
                break
    return f"{url.rstrip('/')}/blob/{branch}/{claim.test_file}{anchor}"


def ledger_line(claims: Iterable[tuple[Claim, float | None, bool | None]],
                root: pathlib.Path | None = None) -> str:
    """One Markdown line for a theorem: each claim's test, measured value, bound, status."""
    _check_root(root)
    if not isinstance(claims, Iterable) or isinstance(claims, (str, bytes)):
        raise TypeError(f"argument `claims` must be an iterable of (Claim, value, holds) "
                        f"triples; got {claims!r}")
    claims = list(claims)
    if not all(isinstance(t, tuple) and len(t) == 3 and isinstance(t[0], Claim) for t in claims):
        raise TypeError(f"argument `claims` must hold (Claim, value, holds) triples; got "
                        f"{claims!r}")
    parts = []
    for c, v, ok in claims:
        url = _source_url(c, root)
        test = f"[`{c.test_name}`]({url})" if url else f"`{c.test_name}`"
        if v is None:
            parts.append(f"{test} checks {c.measures} {c.bound.text()}")
        else:
            verdict = "holds" if ok else "**does not hold**"
            parts.append(f"{test}: {c.measures} = {_num(v, c.fmt)} (needs {c.bound.text()}, "
                         f"{verdict})")
    return "Checked by " + "; ".join(parts) + "."


class Ledger(list):
    """The ``(claim, value, holds)`` triples of a chapter; a notebook shows them as a table."""

    root: pathlib.Path | None = None

    def _repr_markdown_(self) -> str:
        rows = ["| Claim | Measured quantity | Value | Bound | Status | Test |",
                "|---|---|---|---|---|---|"]
        for c, v, ok in self:
            url = _source_url(c, self.root)
            test = f"[`{c.test_name}`]({url})" if url else f"`{c.test_name}`"
            value = "—" if v is None else _num(v, c.fmt)
            rows.append(f"| {c.statement} | {c.measures} | {value} | {c.bound.text()} | "
                        f"{_status(v, ok)} | {test} |")
        return "\n".join(rows)


def publish(chapter: str, glued: dict[str, Any] | None = None) -> Ledger:
    """Evaluate the claims of ``chapter`` and glue, for the book's pages:
    ``claim-<label>`` (the measured value), ``claim-<label>-status`` and one
    ``ledger-<theorem>`` Markdown line per theorem. Returns the :class:`Ledger` of the
    chapter, which a notebook shows as a table."""
    from . import notebook

    from .config import scale

    results = Ledger(evaluate(chapter, glued))
    root = results.root = _repo_root()
    notebook.glue("claims-scale", scale())     # the drift guard compares like with like
    for c, v, ok in results:
        if v is not None:
            notebook.glue(f"claim-{c.label}", v)
        notebook.glue(f"claim-{c.label}-status", _status(v, ok))
    theorems: dict[str, list] = {}
    for r in results:
        if r[0].theorem:
            theorems.setdefault(r[0].theorem, []).append(r)
    for thm, rs in theorems.items():
        notebook.glue_markdown(f"ledger-{thm}", ledger_line(rs, root))
    notebook.dump_glued(chapter)
    return results


def _status(v: float | None, ok: bool | None) -> str:
    if v is None:
        return "tested"
    return "holds" if ok else "does not hold"


def claims_page(root: pathlib.Path | None = None, title: str = "The claims ledger") -> str:
    """The Markdown of ``book/claims.md``: every claim, by chapter, with glued values
    (tests linked to the repository named in ``root/_config.yml``)."""
    _check_root(root)
    V.check_instance("title", title, str, "string")
    if not title.strip():
        raise ValueError("argument `title` must be a non-empty string")
    lines = [
        f"# {title}", "",
        "Every number this book claims to reproduce: the paper it comes from, the test in "
        "the repository that checks it, the bound it must meet, and the value the chapter "
        "measures with its own code. A claim that only the test suite measures is marked "
        "*tested*; its chapter states the result without a number of its own.", "",
    ]
    for chapter in chapters():
        doc = f"/book/{chapter}.ipynb"
        lines += [f"## {{doc}}`{doc.removesuffix('.ipynb')}`", "",
                  "| Claim | Paper | Measured quantity | Test | Bound | Value | Status |",
                  "|---|---|---|---|---|---|---|"]
        for c in CLAIMS:
            if c.chapter != chapter:
                continue
            value = (f"{{glue:text}}`{doc}::claim-{c.label}:{c.fmt}`" if c.value is not None
                     else "—")
            status = f"{{glue:text}}`{doc}::claim-{c.label}-status:s`"
            thm = f" ({{prf:ref}}`{c.theorem}`)" if c.theorem else ""
            url = _source_url(c, root, line=False)   # the page stays valid as tests move
            test = f"[`{c.test_name}`]({url})" if url else f"`{c.test_name}`"
            lines.append(f"| {c.statement}{thm} | {{cite:t}}`{c.paper}` | {c.measures} | "
                         f"{test} | {c.bound.text()} | {value} | {status} |")
        lines.append("")
    return "\n".join(lines)
