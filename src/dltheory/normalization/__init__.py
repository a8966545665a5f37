"""Part IV: normalization, scale invariance and the intrinsic learning rate.

``core`` holds the model and the quantities of the theory (effective, angular,
intrinsic and exponential learning rates, the equilibrium prediction); ``experiments``
the runs of the two chapters; ``rate`` the convergence rate of SGD at a fixed learning
rate (auto rate-tuning); ``momentum`` the angular update with momentum; ``robust`` SGD
with weight decay and relative clipping from any initial or loss scale; ``figures``
their plots and widgets; ``paper`` the normalized ResNet on CIFAR-10 of the ``paper``
preset.

References:
  Arora, Li, Lyu (2019), Theoretical Analysis of Auto Rate-Tuning by Batch
  Normalization, ICLR, arXiv:1812.03981.
  Li, Arora (2020), An Exponential Learning Rate Schedule for Deep Learning, ICLR,
  arXiv:1910.07454.
  Li, Lyu, Arora (2020), Reconciling Modern Deep Learning with Traditional Optimization
  Analyses: The Intrinsic Learning Rate, NeurIPS, arXiv:2010.02916.
  Li, Bhojanapalli, Zaheer, Reddi, Kumar (2022), Robust Training of Neural Networks
  using Scale Invariant Architectures, ICML, arXiv:2202.00980.
  Wan, Zhu, Zhang, Sun (2021), Spherical Motion Dynamics: Learning Dynamics of
  Normalized Neural Network using SGD and Weight Decay, NeurIPS, arXiv:2006.08419.
"""

from dltheory.normalization import core, experiments, figures, momentum, paper, rate, robust
from dltheory.normalization.core import *
from dltheory.normalization.experiments import *
from dltheory.normalization.figures import *
from dltheory.normalization.momentum import *
from dltheory.normalization.paper import *
from dltheory.normalization.rate import *
from dltheory.normalization.robust import *

__all__ = (core.__all__ + experiments.__all__ + rate.__all__ + momentum.__all__
           + figures.__all__ + paper.__all__ + robust.__all__)
