"""The numpy network: activations, the MLP, optimizers and learning-rate schedules."""
