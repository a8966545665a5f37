"""The edge of stability: full-batch gradient descent keeps the sharpness at ``2 / eta``,
and with normalization and weight decay it then lowers the *spherical* sharpness.

Cohen et al. (2021) observed that full-batch GD on a network raises the sharpness
``lambda_max`` of the training loss (progressive sharpening) until ``lambda_max`` reaches
``2 / eta``, and then keeps it there while the loss still falls, non-monotonically
(:func:`digits_experiment`). Lyu, Li, Arora (2022) explained what GD does there for a
scale-invariant loss with weight decay: weight decay shrinks ``|w|``, which raises
``lambda_max(w) = lambda_max(w / |w|) / |w|^2`` until GD is at the edge; from then on
GD drifts along the minimizers toward a smaller *spherical* sharpness
``lambda_max(w / |w|) = |w|^2 lambda_max(w)`` on the time scale ``1 / (eta lambda)``.
On a three-parameter toy the drift is measured and predicted (:func:`toy_experiment`,
:func:`toy_prediction`); on a normalized digits net it is measured
(:func:`normalized_experiment`).

``toy`` holds the toy, its prediction and the chapter's widget; ``nets`` the digits runs.

References:
  Cohen, Kaur, Li, Kolter, Talwalkar (2021), Gradient Descent on Neural Networks
  Typically Occurs at the Edge of Stability, ICLR, arXiv:2103.00065;
  Lyu, Li, Arora (2022), Understanding the Generalization Benefit of Normalization
  Layers: Sharpness Reduction, NeurIPS, arXiv:2206.07085.
"""

from dltheory.sharpness.edge_of_stability import nets, toy
from dltheory.sharpness.edge_of_stability.nets import *
from dltheory.sharpness.edge_of_stability.toy import *

__all__ = toy.__all__ + nets.__all__
