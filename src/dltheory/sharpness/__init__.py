"""Part V: what training does after it fits. Label-noise SGD and the trace of the Hessian
(:mod:`dltheory.sharpness.label_noise`), and what sharpness-aware minimization minimizes
(:mod:`dltheory.sharpness.sam`)."""
