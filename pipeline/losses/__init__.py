"""The math kernels of the losses: tensors with a leading run axis in, tensors out.

:mod:`~pipeline.losses.activations` (one object per activation), :mod:`~pipeline.losses.nets` (the network and the
empirical loss with its gradients), :mod:`~pipeline.losses.population` with :mod:`~pipeline.losses.population_kernels`
and :mod:`~pipeline.losses.population_hessian` (the Gaussian population loss in closed form), and
:mod:`~pipeline.losses.interval_population` (the profiled population loss of scalar inputs on an interval). The
problems of :mod:`pipeline.problems` wrap them for the dynamics and the classifiers.
"""
