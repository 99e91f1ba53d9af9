"""A fully connected network with a softmax output, in the course's notation.

Examples are columns: X is (n_0, m), W_l is (n_l, n_{l-1}), b_l is (n_l, 1), and the output is the
(C, m) matrix of class probabilities. L counts the layers that have weights, so one hidden layer is
L = 2. Two classes use a two-unit softmax (equivalent to one sigmoid unit, with one redundant row).

All parameters live in one flat buffer, weights first (W_1 … W_L, then b_1 … b_L), and the
gradients in a second one of the same layout: the optimizer updates the whole network with a few
whole-buffer operations, and the L2 term is one dot product over the weight region. Forward and
backward write into per-batch-size scratch made once, so the training loop allocates nothing.

    cost = -(1/m) Σ_i log p_{y_i, i}  +  (lambd / (2m)) Σ_l ‖W_l‖²_F     (biases are not penalised)
"""

import math

import numpy as np

from models.activations import ACTIVATIONS


class Workspace:
    """Scratch for one batch size m: activations, deltas and the softmax's row buffers."""

    def __init__(self, sizes, m, dtype):
        self.m = m
        layers = range(1, len(sizes))
        self.A = {l: np.empty((sizes[l], m), dtype) for l in layers}  # A[L] holds the shifted logits
        self.dZ = {l: np.empty((sizes[l], m), dtype) for l in layers}
        self.work = {l: np.empty((sizes[l], m), dtype) for l in layers}
        self.P = np.empty((sizes[-1], m), dtype)  # (C, m) probabilities
        self.row = np.empty((1, m), dtype)  # per-example max, then sum of exponentials
        self.ones_m = np.ones((m, 1), dtype)  # Σ over examples as a matrix product
        self.ones_C = np.ones((1, sizes[-1]), dtype)  # Σ over classes as a matrix product


class MLP:
    def __init__(self, sizes, activation="relu", dtype=np.float64):
        """``sizes`` = (n_0, n_1, …, n_L): input features, hidden widths, classes."""
        self.sizes = tuple(int(n) for n in sizes)
        self.L = len(self.sizes) - 1
        self.activation = ACTIVATIONS[activation]
        self.dtype = np.dtype(dtype)
        shapes_w = [(self.sizes[l], self.sizes[l - 1]) for l in range(1, self.L + 1)]
        self.n_weights = sum(a * b for a, b in shapes_w)
        self.params = np.zeros(self.n_weights + sum(self.sizes[1:]), self.dtype)
        self.grads = np.zeros_like(self.params)
        self.W, self.dW = self._views(shapes_w, 0)
        self.b, self.db = self._views([(n, 1) for n in self.sizes[1:]], self.n_weights)
        self._workspaces = {}
        self._l2_work = np.empty(self.n_weights, self.dtype)

    def _views(self, shapes, offset):
        """Per-layer views into params and grads, keyed 1…L."""
        p, g = {}, {}
        for l, shape in enumerate(shapes, start=1):
            size = shape[0] * shape[1]
            p[l] = self.params[offset : offset + size].reshape(shape)
            g[l] = self.grads[offset : offset + size].reshape(shape)
            offset += size
        return p, g

    def weight_slice(self, l):
        """Where W_l sits in the flat buffers (params, grads, an optimizer's update)."""
        start = sum(self.sizes[k] * self.sizes[k - 1] for k in range(1, l))
        return slice(start, start + self.sizes[l] * self.sizes[l - 1])

    def initialize(self, rng):
        """He (sqrt(2 / n_{l-1})) before relu, Xavier (sqrt(1 / n_{l-1})) before tanh, sigmoid and
        the softmax; biases at zero. Drawn in float64 so both dtypes start from the same weights."""
        for l in range(1, self.L + 1):
            rule = self.activation.init if l < self.L else "xavier"
            scale = math.sqrt((2.0 if rule == "he" else 1.0) / self.sizes[l - 1])
            self.W[l][...] = rng.standard_normal(self.W[l].shape) * scale
            self.b[l][...] = 0.0

    def workspace(self, m):
        ws = self._workspaces.get(m)
        if ws is None:
            if len(self._workspaces) >= 8:  # batch, epoch's remainder, evaluation chunks, health probe: no churn
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[m] = Workspace(self.sizes, m, self.dtype)
        return ws

    def forward(self, X):
        """Class probabilities (C, m) for X (n_0, m); a view into scratch, valid until the next call."""
        ws = self.workspace(X.shape[1])
        act = self.activation
        A_prev = X
        for l in range(1, self.L):
            A = ws.A[l]
            np.matmul(self.W[l], A_prev, out=A)  # (n_l, m)
            A += self.b[l]
            act.forward(A)
            A_prev = A
        # 2. softmax, keeping the shifted logits for the cost
        Z, P, row = ws.A[self.L], ws.P, ws.row
        np.matmul(self.W[self.L], A_prev, out=Z)  # (C, m)
        Z += self.b[self.L]
        np.max(Z, axis=0, keepdims=True, out=row)
        Z -= row
        np.exp(Z, out=P)
        np.matmul(ws.ones_C, P, out=row)  # (1, m) Σ_c exp
        P /= row
        return P

    def _cost_from_forward(self, ws, Y, lambd):
        """Cross-entropy from the shifted logits and row sums left by ``forward``, plus L2."""
        m = ws.m
        np.log(ws.row, out=ws.row)  # log Σ_c exp(z_c - max)
        np.multiply(Y, ws.A[self.L], out=ws.work[self.L])
        cost = (ws.row.sum() - ws.work[self.L].sum()) / m
        if lambd:
            w = self.params[: self.n_weights]
            cost += lambd / (2 * m) * np.dot(w, w)
        return float(cost)

    def cost(self, X, Y, lambd=0.0):
        """The cost of the current parameters on (X, Y one-hot (C, m)); touches no gradient."""
        self.forward(X)
        return self._cost_from_forward(self.workspace(X.shape[1]), Y, lambd)

    def cost_and_grad(self, X, Y, lambd=0.0):
        """The cost, with its gradient written into ``self.grads`` (views dW, db)."""
        P = self.forward(X)
        ws = self.workspace(X.shape[1])
        m = ws.m
        # 1. dZ_L = (P - Y) / m before the cost reuses the row buffer; the cost only reads Z
        dZ = ws.dZ[self.L]
        np.subtract(P, Y, out=dZ)
        dZ *= 1.0 / m
        cost = self._cost_from_forward(ws, Y, lambd)
        # 2. back through the layers
        act = self.activation
        for l in range(self.L, 0, -1):
            A_prev = ws.A[l - 1] if l > 1 else X
            np.matmul(dZ, A_prev.T, out=self.dW[l])  # (n_l, n_{l-1})
            np.matmul(dZ, ws.ones_m, out=self.db[l])  # (n_l, 1)
            if l > 1:
                dA = ws.dZ[l - 1]
                np.matmul(self.W[l].T, dZ, out=dA)  # (n_{l-1}, m)
                act.backward(A_prev, dA, ws.work[l - 1])
                dZ = dA
        # 3. L2 on the weights only
        if lambd:
            np.multiply(self.params[: self.n_weights], lambd / m, out=self._l2_work)
            self.grads[: self.n_weights] += self._l2_work
        return cost

    def predict_proba(self, X, chunk=4096):
        """Class probabilities for any number of examples, in chunks to bound the scratch."""
        out = np.empty((self.sizes[-1], X.shape[1]), self.dtype)
        for start in range(0, X.shape[1], chunk):
            out[:, start : start + chunk] = self.forward(X[:, start : start + chunk])
        return out

    def weights(self):
        """Copies of W1, b1, …, WL, bL keyed as in the exported .npz files."""
        arrays = {}
        for l in range(1, self.L + 1):
            arrays[f"W{l}"] = self.W[l].copy()
            arrays[f"b{l}"] = self.b[l].copy()
        return arrays

    def load_weights(self, arrays):
        for l in range(1, self.L + 1):
            for name, view in ((f"W{l}", self.W[l]), (f"b{l}", self.b[l])):
                if arrays[name].shape != view.shape:
                    raise ValueError(f"{name} has shape {arrays[name].shape}, expected {view.shape}")
                view[...] = arrays[name]
