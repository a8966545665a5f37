"""Part V: what training does after it fits. Label-noise SGD and the trace of the Hessian
(:mod:`dltheory.sharpness.label_noise`), what sharpness-aware minimization minimizes
(:mod:`dltheory.sharpness.sam`), and the edge of stability with the sharpness reduction
of normalization and weight decay (:mod:`dltheory.sharpness.edge_of_stability`)."""
