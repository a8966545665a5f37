"""Part I: SGD as a stochastic differential equation, SVAG, and batch-size scaling rules.

- ``svag``: the SVAG and adaptive SVAG loss wrappers and their batch source;
- ``rules``: optimizer configurations, the linear and square-root scaling
  rules, SVAG's hyperparameters, and the noise-to-signal measurement;
- ``simulate``: Euler-Maruyama paths and the SGD, RMSprop and Adam SDEs;
- ``moments``: the exact second moments of the RMSprop and Adam SDEs on the quadratic;
- ``problems``: the noisy quadratic and the digits MLP;
- ``quadratic``, ``adam`` and ``digits``: the chapters' experiments,
  gathered with their presets in ``experiments``;
- ``figures``: figures and widgets; ``cifar``: the paper preset.

References:
  Li, Tai, E (2017), Stochastic Modified Equations and Adaptive Stochastic Gradient
  Algorithms, arXiv:1511.06251 (the SDE of SGD); Krizhevsky (2014), arXiv:1404.5997, and
  Goyal et al. (2017), arXiv:1706.02677 (the linear scaling rule);
  Li, Malladi, Arora (2021), On the Validity of Modeling SGD with Stochastic Differential
  Equations, arXiv:2102.12470; Malladi, Lyu, Panigrahi, Arora (2022), On the SDEs and
  Scaling Rules for Adaptive Gradient Algorithms, arXiv:2205.10287.
"""

from dltheory.sde.problems import (DigitsProblem, GaussianNoise, NoisyQuadratic,
                                   digits_metrics, digits_problem, quadratic_loss, xent_loss)
from dltheory.sde.moments import adam_sde_second_moment, rmsprop_sde_second_moment
from dltheory.sde.rules import (NoiseToSignal, OptimizerConfig, adam_config,
                                adaptive_svag_config, linear_scaling_rule, noise_terms,
                                noise_to_signal, rmsprop_config, sgd_config, sqrt_scaling_rule,
                                svag_config)
from dltheory.sde.simulate import SDEPaths, adam_sde, rmsprop_sde, sde_simulate, sgd_sde
from dltheory.sde.svag import SVAGLoss, TwoBatches, adaptive_svag, svag, svag_coefficients

__all__ = [
    "svag", "adaptive_svag", "svag_coefficients", "SVAGLoss", "TwoBatches",
    "OptimizerConfig", "sgd_config", "rmsprop_config", "adam_config",
    "linear_scaling_rule", "sqrt_scaling_rule", "svag_config", "adaptive_svag_config",
    "NoiseToSignal", "noise_to_signal", "noise_terms",
    "SDEPaths", "sde_simulate", "sgd_sde", "rmsprop_sde", "adam_sde",
    "rmsprop_sde_second_moment", "adam_sde_second_moment",
    "NoisyQuadratic", "GaussianNoise", "quadratic_loss",
    "DigitsProblem", "digits_problem", "xent_loss", "digits_metrics",
]
