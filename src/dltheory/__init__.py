"""dltheory: the package behind the course book on the training dynamics of deep learning.

Modules:
  config      scale presets (quick by default, paper with DLTHEORY_SCALE=paper)
  training    the engine: jit + lax.scan chunks, sweeps sharded over devices, divergence
  data        small real data (scikit-learn digits), synthetic problems, batch sources
  models      flax.nnx models shared by chapters
  widgets     declarative explorers: live ipywidgets and a static figure without a kernel
  plotting    the book's figure style and recurring plots
  curvature   Hessian-vector products and the sharpness (top Hessian eigenvalue)
  validation  argument checks that raise clear errors
  notebook    helpers for the chapter notebooks (glue)
  preliminaries  the experiments of the Preliminaries chapter
"""

__version__ = "0.1.0"

from dltheory.config import describe, scale  # noqa: E402,F401
