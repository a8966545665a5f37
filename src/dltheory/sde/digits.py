"""Part I on digits: SVAG against effective steps, the linear scaling rule with its
noise-to-signal ratio, and Adam under three batch-size rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from dltheory import validation as V
from dltheory.sde import _checks as C
from dltheory.sde import rules as R
from dltheory.sde.problems import digits_metrics, digits_problem, xent_loss
from dltheory.sde.quadratic import _check_levels
from dltheory.sde.svag import TwoBatches, svag
from dltheory.training import sweep

__all__ = ["DigitsCurves", "svag_digits", "LSRResult", "lsr_digits", "RULES", "RuleResult",
           "scaling_rules_digits"]


# --------------------------------------------------------------------------------------
# Digits: SVAG against effective steps, the linear rule, the square-root rule
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DigitsCurves:
    """Digits runs at several settings, averaged over seeds.

    Attributes:
      labels: one label per setting.
      x: the curves' common x axis (effective steps, or epochs), shape ``(n_log,)``.
      train_loss: full training loss, shape ``(settings, n_log)`` (mean over seeds).
      test_acc: test accuracy, same shape.
      diverged: per setting, whether any seed diverged.
    """

    labels: tuple[str, ...]
    x: np.ndarray
    train_loss: np.ndarray
    test_acc: np.ndarray
    diverged: np.ndarray

    def max_log_gap(self, reference: int = 0, setting: int | None = None) -> float:
        """The largest gap between two settings' log training-loss curves.

        ``max_x |log L_i(x) - log L_ref(x)|`` over the logged points (NaN points, e.g.
        after a divergence, are skipped), for the one setting ``i = setting``, or the
        largest over all settings when ``setting`` is ``None``.

        Args:
          reference: index of the reference setting (a row of :attr:`train_loss`).
          setting: index of the setting compared with it, or ``None`` for all.
        """
        n = len(self.train_loss)
        reference = V.check_int("reference", reference, minimum=0, maximum=n - 1)
        lg = np.log(self.train_loss)
        if setting is None:
            return float(np.nanmax(np.abs(lg - lg[reference])))
        setting = V.check_int("setting", setting, minimum=0, maximum=n - 1)
        return float(np.nanmax(np.abs(lg[setting] - lg[reference])))


def _check_kappas(kappas: Sequence[int]) -> np.ndarray:
    kappas = _check_levels(kappas, "kappas")
    if kappas[0] != 1:
        raise ValueError(f"argument `kappas` must start with 1 (the reference); "
                         f"got {kappas.tolist()!r}")
    return kappas


def _digits_run(problem, loss, cfg: R.OptimizerConfig, steps: int, log_every: int,
                seeds: int, batches) -> Any:
    return sweep(loss, problem.init, cfg.spec(), steps=steps, seeds=list(range(seeds)),
                 batches=batches, log_every=log_every, metrics=digits_metrics,
                 eval_data=problem.eval_data)


def svag_digits(ls: Sequence[int] = (1, 2, 4), *, lr: float = 0.1, batch_size: int = 32,
                steps: int = 400, log_points: int = 8, seeds: int = 4,
                width: int = 64) -> DigitsCurves:
    """SVAG on digits: training loss and test accuracy against effective steps ``k / l``.

    Level ``l`` runs ``l * steps`` steps of the SVAG loss (two independent minibatches of
    ``batch_size``) at learning rate ``lr / l``; ``l = 1`` is plain SGD. As ``l`` grows the
    curves converge (to the SDE's), which is the paper's test that SGD at ``lr`` is close to
    its SDE: if the ``l = 1`` curve already sits on the limit, the SDE describes SGD.

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470 (SVAG experiments, "effective
      steps" = steps / l).
    """
    ls = _check_levels(ls)
    V.check_positive("lr", lr)
    batch_size = V.check_int("batch_size", batch_size, minimum=1)
    steps = V.check_int("steps", steps, minimum=1)
    log_points = V.check_int("log_points", log_points, minimum=1)
    seeds = V.check_int("seeds", seeds, minimum=1)
    width = V.check_int("width", width, minimum=1)
    if steps % log_points:
        raise ValueError(f"argument `steps` ({steps}) must be a multiple of `log_points` "
                         f"({log_points})")
    problem = digits_problem(width)
    batches = TwoBatches(problem.minibatches(batch_size))
    loss_curves, acc_curves, div = [], [], []
    for l in ls:
        cfg = R.svag_config(R.sgd_config(lr, batch_size), float(l))
        res = _digits_run(problem, svag(xent_loss, float(l)), cfg, int(l) * steps,
                          int(l) * steps // log_points, seeds, batches)
        loss_curves.append(res["train_loss"].mean(0))
        acc_curves.append(res["test_acc"].mean(0))
        div.append(bool(res.diverged.any()))
    x = np.arange(log_points + 1) * steps / log_points
    return DigitsCurves(tuple(f"l = {l}" for l in ls), x, np.asarray(loss_curves),
                        np.asarray(acc_curves), np.asarray(div))


def _epoch_curves(problem, cfgs: Sequence[R.OptimizerConfig], epochs: int, seeds: int,
                  labels: Sequence[str]) -> DigitsCurves:
    loss_curves, acc_curves, div = [], [], []
    for cfg in cfgs:
        mb = problem.minibatches(cfg.batch_size)
        per = mb.steps_per_epoch
        res = _digits_run(problem, xent_loss, cfg, epochs * per, per, seeds, mb)
        loss_curves.append(res["train_loss"].mean(0))
        acc_curves.append(res["test_acc"].mean(0))
        div.append(bool(res.diverged.any()))
    return DigitsCurves(tuple(labels), np.arange(epochs + 1, dtype=float),
                        np.asarray(loss_curves), np.asarray(acc_curves), np.asarray(div))


def _noise_metric(model, data):
    G, N1 = R.noise_terms(xent_loss, model, data)
    return {"G": G, "N1": N1}


@dataclasses.dataclass(frozen=True)
class LSRResult:
    """The linear scaling rule with SGD on digits, and the noise-to-signal ratio behind it.

    Attributes:
      base_batch: the batch size ``B`` of the reference run.
      kappas: the batch-size factors.
      curves: train loss / test accuracy per factor against epochs.
      G: ``|grad L|^2`` per epoch along the reference run, shape ``(n_log,)``.
      N1: per-example gradient variance per epoch along the reference run.
      n_train: training-set size.
    """

    base_batch: int
    kappas: np.ndarray
    curves: DigitsCurves
    G: np.ndarray
    N1: np.ndarray
    n_train: int

    def ratio(self, kappa: float) -> np.ndarray:
        """``N_t / G_t`` at batch ``kappa B`` along the run (without replacement)."""
        b = self.base_batch * kappa
        n = self.n_train
        return self.N1 / b * (n - b) / (n - 1) / self.G

    def median_ratio(self, kappa: float) -> float:
        """The median over epochs ``>= 1`` of :meth:`ratio`."""
        return float(np.median(self.ratio(kappa)[1:]))

    @property
    def gaps(self) -> np.ndarray:
        """``max_t |log L_kappa(t) - log L_1(t)|`` per factor (0 for ``kappa = 1``)."""
        lg = np.log(self.curves.train_loss)
        return np.nanmax(np.abs(lg - lg[0]), axis=1)


def lsr_digits(kappas: Sequence[int] = (1, 4, 16, 64), *, base_batch: int = 4,
               base_lr: float = 0.02, epochs: int = 8, seeds: int = 4,
               width: int = 64) -> LSRResult:
    """The linear scaling rule on digits: batch ``kappa B`` at ``kappa eta`` for ``epochs``.

    Along the reference run (``kappa = 1``) the squared gradient norm ``G_t`` and the
    per-example noise ``N_t`` are measured every epoch (exact per-example gradients), so
    the noise-to-signal ratio ``N_t / G_t`` at every batch size ``kappa B`` is known.

    References:
      Li, Malladi, Arora (2021), arXiv:2102.12470 (the LSR needs the noise to
      dominate, ``N_t / G_t`` large at the larger batch).
    """
    kappas = _check_kappas(kappas)
    base_batch = V.check_int("base_batch", base_batch, minimum=1)
    base_lr = V.check_positive("base_lr", base_lr)
    epochs = V.check_int("epochs", epochs, minimum=1)
    seeds = V.check_int("seeds", seeds, minimum=1)
    width = V.check_int("width", width, minimum=1)
    problem = digits_problem(width)
    base = R.sgd_config(base_lr, base_batch)
    cfgs = [R.linear_scaling_rule(base, float(k)) for k in kappas]
    curves = _epoch_curves(problem, cfgs, epochs, seeds,
                           [f"B = {c.batch_size}, lr = {c.lr:g}" for c in cfgs])
    mb = problem.minibatches(base_batch)
    per = mb.steps_per_epoch
    ref = sweep(xent_loss, problem.init, base.spec(), steps=epochs * per, seeds=[0],
                batches=mb, log_every=per, metrics=_noise_metric,
                eval_data=problem.dataset.train)
    return LSRResult(int(base_batch), kappas, curves, ref["G"][0], ref["N1"][0],
                     problem.n_train)


@dataclasses.dataclass(frozen=True)
class RuleResult:
    """Adam on digits across batch sizes under three rules.

    Attributes:
      kappas: the batch-size factors (the first is 1).
      configs: ``{rule: [config per kappa]}`` for rules ``"none"``, ``"linear"``, ``"sqrt"``.
      curves: ``{rule: DigitsCurves}`` against epochs (row ``i`` is ``kappas[i]``).
    """

    kappas: np.ndarray
    configs: dict[str, list[R.OptimizerConfig]]
    curves: dict[str, DigitsCurves]

    def gap(self, rule: str) -> float:
        """``max_{kappa, epoch} |log L_kappa - log L_1|`` under ``rule``."""
        V.check_choice("rule", rule, tuple(self.curves))
        return self.curves[rule].max_log_gap(0)

    @property
    def best_rule(self) -> str:
        """The rule with the smallest :meth:`gap`."""
        return min(self.curves, key=self.gap)

    def early_log_gap(self, rule: str) -> float:
        """The mean of ``log L_kappa - log L_1`` for the largest ``kappa`` under ``rule``
        over the first half of the logged epochs (after the first log point): positive
        when the large-batch run falls behind the reference early in training."""
        V.check_choice("rule", rule, tuple(self.curves))
        c = self.curves[rule]
        lg = np.log(np.asarray(c.train_loss, dtype=np.float64))
        half = slice(1, max(2, len(c.x) // 2))
        return float(np.nanmean(lg[-1, half] - lg[0, half]))


RULES = ("none", "linear", "sqrt")


def scaling_rules_digits(kappas: Sequence[int] = (1, 4, 16), *,
                         base: R.OptimizerConfig | None = None, epochs: int = 8,
                         seeds: int = 4, width: int = 64,
                         label_noise: float = 0.0) -> RuleResult:
    """Adam on digits at batch ``kappa B`` under no rescaling, the linear rule, and the
    square-root rule, each for ``epochs`` epochs. The ``kappa = 1`` run is shared.

    Args:
      base: the Adam (or RMSprop) configuration at ``kappa = 1``; default Adam with
        ``lr = 1e-3``, ``b1 = 0.99``, ``b2 = 0.999``, ``eps = 1e-8`` at batch 8 (``b1``
        close to one so that ``16 (1 - b1)`` is still below one).

    References:
      Malladi, Lyu, Panigrahi, Arora (2022), arXiv:2205.10287 (the square-root
      scaling rule) and its experiments.
    """
    kappas = _check_kappas(kappas)
    if base is None:
        base = R.adam_config(1e-3, 8, b1=0.99, b2=0.999, eps=1e-8)
    C.instance("base", base, R.OptimizerConfig, "an OptimizerConfig (see adam_config)")
    if base.algorithm == "sgd":
        raise ValueError("argument `base` must be an RMSprop or Adam configuration (the "
                         "square-root rule is for adaptive methods); got an SGD one")
    epochs = V.check_int("epochs", epochs, minimum=1)
    seeds = V.check_int("seeds", seeds, minimum=1)
    width = V.check_int("width", width, minimum=1)
    label_noise = V.check_probability("label_noise", label_noise)
    problem = digits_problem(width, label_noise)
    rule_fns = {"none": lambda c, k: c.replace(batch_size=c.batch_size * int(k)),
                "linear": R.linear_scaling_rule, "sqrt": R.sqrt_scaling_rule}
    configs = {r: [base] + [rule_fns[r](base, float(k)) for k in kappas[1:]] for r in RULES}
    ref = _epoch_curves(problem, [base], epochs, seeds, ["reference"])
    curves = {}
    for r in RULES:
        rest = _epoch_curves(problem, configs[r][1:], epochs, seeds,
                             [f"kappa = {k}" for k in kappas[1:]])
        curves[r] = DigitsCurves(("kappa = 1",) + rest.labels, ref.x,
                                 np.concatenate([ref.train_loss, rest.train_loss]),
                                 np.concatenate([ref.test_acc, rest.test_acc]),
                                 np.concatenate([ref.diverged, rest.diverged]))
    return RuleResult(kappas, configs, curves)


