"""Hidden-layer activations, applied in place, and their derivatives written from the output.

Each derivative is expressed through the activation's output ``a`` (not its input ``z``), so the
backward pass needs no copy of the pre-activations: relu' = [a > 0], tanh' = 1 - a², sigmoid' =
a (1 - a).
"""

import numpy as np


class Activation:
    """An activation: ``forward`` overwrites z with g(z); ``backward`` multiplies dA by g'(z)."""

    name = ""
    init = "he"  # the initialisation that keeps the variance of this activation's outputs stable

    def forward(self, z):
        raise NotImplementedError

    def backward(self, a, da, work):
        """dA *= g'(z), with g'(z) computed from a = g(z); ``work`` is scratch of a's shape."""
        raise NotImplementedError


class ReLU(Activation):
    name = "relu"
    init = "he"

    def forward(self, z):
        np.maximum(z, 0, out=z)

    def backward(self, a, da, work):
        np.greater(a, 0, out=work)
        da *= work


class Tanh(Activation):
    name = "tanh"
    init = "xavier"

    def forward(self, z):
        np.tanh(z, out=z)

    def backward(self, a, da, work):
        np.multiply(a, a, out=work)
        np.subtract(1, work, out=work)
        da *= work


class Sigmoid(Activation):
    name = "sigmoid"
    init = "xavier"

    def forward(self, z):
        # 1 / (1 + exp(-z)) directly: (tanh(z/2) + 1) / 2 cancels for z < 0 (float32 sigmoid(-18)
        # came out 2.98e-8 instead of 1.52e-8). exp(-z) = inf for very negative z gives exactly 0.
        with np.errstate(over="ignore", under="ignore"):
            np.negative(z, out=z)
            np.exp(z, out=z)
        z += 1
        np.reciprocal(z, out=z)

    def backward(self, a, da, work):
        np.subtract(1, a, out=work)
        work *= a
        da *= work


ACTIVATIONS = {cls.name: cls() for cls in (ReLU, Tanh, Sigmoid)}
