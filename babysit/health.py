"""What CS231n says to watch while babysitting a network, per layer.

- update-to-weight ratio ‖ΔW‖ / ‖W‖ of the last update: healthy near 1e-3; far above, alpha is too
  high, far below, too low;
- gradient norm ‖dW‖;
- dead ReLUs: the share of units that output 0 for every example of a fixed probe batch; for tanh
  and sigmoid, the share of activations in the flat ends (|tanh| > 0.99, sigmoid < 0.01 or > 0.99),
  where gradients vanish;
- activation mean and standard deviation on the probe batch.
At the start, the cost is compared with the chance level -ln(1/C) = ln C that a network knowing
nothing scores on C classes.
"""

import math

import numpy as np

HEALTHY_RATIO = 1e-3
SATURATED = 0.99


def chance_cost(n_classes):
    """-ln(1/C): the cross-entropy of predicting every class with probability 1/C."""
    return math.log(n_classes)


def measure(model, last_update, probe_X):
    """{metric: [value per layer 1 … L]}; ``last_update`` is the flat ΔW buffer of the last step
    (None before any update). Hidden-layer metrics list L - 1 values."""
    out = {"update_ratio": [], "grad_norm": [], "weight_norm": [], "dead_fraction": [],
           "activation_mean": [], "activation_std": []}
    for l in range(1, model.L + 1):
        w_norm = float(np.linalg.norm(model.W[l]))
        out["weight_norm"].append(w_norm)
        out["grad_norm"].append(float(np.linalg.norm(model.dW[l])))
        if last_update is None:
            out["update_ratio"].append(math.nan)
        else:
            delta = last_update[model.weight_slice(l)]
            out["update_ratio"].append(float(np.linalg.norm(delta)) / w_norm if w_norm else math.inf)
    model.forward(probe_X)
    ws = model.workspace(probe_X.shape[1])
    relu = model.activation.name == "relu"
    for l in range(1, model.L):
        A = ws.A[l]  # (n_l, probe size) after the activation
        if relu:
            dead = float((A.max(axis=1) <= 0).mean())
        elif model.activation.name == "tanh":
            dead = float((np.abs(A) > SATURATED).mean())
        else:
            dead = float(((A < 1 - SATURATED) | (A > SATURATED)).mean())
        out["dead_fraction"].append(dead)
        out["activation_mean"].append(float(A.mean()))
        out["activation_std"].append(float(A.std()))
    return out
