"""babysit: tune a neural network's hyperparameters by hand (panda) and at scale (caviar)."""

__version__ = "0.1.0"
