"""The model: the Keras MMOCGAN, its networks, losses, priors and reference densities."""
