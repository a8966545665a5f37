"""Part II: margin maximization (homogeneous nets; two-layer Leaky ReLU nets).

References:
  Lyu, Li (2020), arXiv:1906.05890; Lyu, Li, Wang, Arora (2021), arXiv:2110.13905.
"""

from dltheory.margin.core import (
                                  LOSSES,
                                  MaxMarginResult,
                                  kkt_residual,
                                  log_loss,
                                  max_margin_linear,
                                  mirror,
                                  normalized_margin,
                                  smoothed_gap_bound,
                                  smoothed_margin,
                                  symmetric_separable_data,
)
from dltheory.margin.fragility import (
                                  FragilityResult,
                                  fragile_data,
                                  fragility_experiment,
)
from dltheory.margin.global_margin import (
                                  TwoLayerMaxMargin,
                                  line_margin,
                                  max_margin_two_layer,
                                  off_line,
)
from dltheory.margin.leaky import (
                                  TwoLayerLeakyReLU,
                                  alignment_with_mu,
                                  is_linear_on,
                                  leaky_apply,
                                  leaky_init,
                                  linear_part,
                                  max_normalized_margin,
                                  two_layer_leaky_relu,
)
from dltheory.margin.train import (
                                  MarginRun,
                                  Schedule,
                                  binary_margins,
                                  constant_lr,
                                  loss_based_lr,
                                  multiclass_margins,
                                  train_margin,
                                  train_margin_grid,
)

__all__ = [
                                  "FragilityResult",
                                  "LOSSES",
                                  "MarginRun",
                                  "MaxMarginResult",
                                  "Schedule",
                                  "TwoLayerLeakyReLU",
                                  "TwoLayerMaxMargin",
                                  "alignment_with_mu",
                                  "binary_margins",
                                  "constant_lr",
                                  "fragile_data",
                                  "fragility_experiment",
                                  "is_linear_on",
                                  "kkt_residual",
                                  "leaky_apply",
                                  "leaky_init",
                                  "line_margin",
                                  "linear_part",
                                  "log_loss",
                                  "loss_based_lr",
                                  "max_margin_linear",
                                  "max_margin_two_layer",
                                  "max_normalized_margin",
                                  "mirror",
                                  "multiclass_margins",
                                  "normalized_margin",
                                  "off_line",
                                  "smoothed_gap_bound",
                                  "smoothed_margin",
                                  "symmetric_separable_data",
                                  "train_margin",
                                  "train_margin_grid",
                                  "two_layer_leaky_relu",
]
