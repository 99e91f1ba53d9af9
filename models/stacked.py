"""K networks of one shape trained as one stacked computation: the numerics of models.mlp and
models.optimizers with a leading trial axis.

Every trial k is a whole MLP: its parameters are row k of one (K, P) buffer, in the same flat layout
as ``MLP.params`` (W_1 … W_L, then b_1 … b_L), seen through views W[l] (K, n_l, n_{l-1}) and
b[l] (K, n_l, 1); the gradients are a second buffer of that layout. All trials read the same
mini-batch X (n_0, m), Y (C, m): the activations are (K, n_l, m).

Each trial's numbers equal a lone MLP's, bit for bit, because every operation is the lone one per
trial:

- a matrix product is ``np.matmul`` on the stack, which calls BLAS once per trial with that trial's
  (n_l, n_{l-1}) @ (n_{l-1}, m) operands in the lone layout (the same routine, sizes, transposes and
  leading dimensions as ``MLP``); the sums over examples and classes are products with ones, as
  there (gemv per trial), and the L2 term is a dot product per trial (the lone ``np.dot``'s BLAS
  dot);
- an element-wise operation gives each element the lone result whatever the shape;
- the cost's sums over a (1, m) and a (C, m) block are pairwise sums of each trial's contiguous row
  of the (K, m) / (K, C·m) reshapes, which numpy sums exactly like the lone contiguous block;
- per-trial hyperparameters are operands of the model's dtype holding the Python scalars the lone
  optimizer computes (``1.0 - beta``, Adam's bias corrections …), each computed in Python floats (or
  IEEE float64 operations) in the lone order, then rounded to the dtype as numpy rounds a Python
  scalar operand; they are (K, 1) columns, or whole (K, P) rows when P is small (``spread``).

Equality therefore rests on BLAS giving the same result for the same call (same routine, sizes,
transposes and leading dimensions) wherever the operands sit in memory, as OpenBLAS does. Tested:
tests/test_stacked.py (float64 and float32 bit for bit; float32 is only required to be close).
"""

import numpy as np

from models.activations import ACTIVATIONS


class StackedWorkspace:
    """Scratch for one batch size m, with a leading trial axis: as models.mlp.Workspace."""

    def __init__(self, K, sizes, m, dtype):
        self.m = m
        layers = range(1, len(sizes))
        self.A = {l: np.empty((K, sizes[l], m), dtype) for l in layers}  # A[L] holds the shifted logits
        self.dZ = {l: np.empty((K, sizes[l], m), dtype) for l in layers}
        self.work = {l: np.empty((K, sizes[l], m), dtype) for l in layers}
        self.P = np.empty((K, sizes[-1], m), dtype)  # (K, C, m) probabilities
        self.row = np.empty((K, 1, m), dtype)  # per-example max, then sum of exponentials
        self.ones_m = np.ones((m, 1), dtype)
        self.ones_C = np.ones((1, sizes[-1]), dtype)
        zeros = np.zeros(K * max(sizes[1:]) * m, dtype)  # relu's other operand, as whole arrays (see forward)
        self.zeros = {l: zeros[: K * sizes[l] * m].reshape(K, sizes[l], m) for l in layers}


class StackedMLP:
    def __init__(self, K, sizes, activation="relu", dtype=np.float64):
        """K networks of ``sizes`` = (n_0, …, n_L); all parameters zero until set."""
        self.K = int(K)
        self.sizes = tuple(int(n) for n in sizes)
        self.L = len(self.sizes) - 1
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]
        self.dtype = np.dtype(dtype)
        shapes_w = [(self.sizes[l], self.sizes[l - 1]) for l in range(1, self.L + 1)]
        self.n_weights = sum(a * b for a, b in shapes_w)
        self.n_params = self.n_weights + sum(self.sizes[1:])
        self.params = np.zeros((self.K, self.n_params), self.dtype)
        self.grads = np.zeros_like(self.params)
        self.W, self.dW = self._views(shapes_w, 0)
        self.b, self.db = self._views([(n, 1) for n in self.sizes[1:]], self.n_weights)
        self._workspaces = {}
        self._l2_work = np.empty((self.K, self.n_params), self.dtype)
        self._dots = np.empty((self.K, 1, 1), self.dtype)

    def _views(self, shapes, offset):
        p, g = {}, {}
        for l, shape in enumerate(shapes, start=1):
            size = shape[0] * shape[1]
            p[l] = self.params[:, offset : offset + size].reshape(self.K, *shape)
            g[l] = self.grads[:, offset : offset + size].reshape(self.K, *shape)
            assert self.K == 0 or (np.shares_memory(p[l], self.params) and np.shares_memory(g[l], self.grads))
            offset += size
        return p, g

    def take(self, rows, grads=False):
        """A new stack of the trials ``rows`` (indices into this one), parameters (and gradients) copied."""
        rows = np.asarray(rows, np.intp)
        other = StackedMLP(len(rows), self.sizes, self.activation_name, self.dtype)
        other.params[...] = self.params[rows]
        if grads:
            other.grads[...] = self.grads[rows]
        return other

    def workspace(self, m):
        ws = self._workspaces.get(m)
        if ws is None:
            if len(self._workspaces) >= 8:  # batch, epoch's remainder, evaluation chunks, health probe: no churn
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[m] = StackedWorkspace(self.K, self.sizes, m, self.dtype)
        return ws

    def forward(self, X):
        """Class probabilities (K, C, m) of every trial for the shared X (n_0, m); a view into scratch,
        valid until the next call."""
        ws = self.workspace(X.shape[1])
        act = self.activation
        A_prev = X
        for l in range(1, self.L):
            A = ws.A[l]
            np.matmul(self.W[l], A_prev, out=A)  # (K, n_l, m): one (n_l, n_{l-1}) @ (n_{l-1}, m) per trial
            A += self.b[l]
            if act.name == "relu":  # ReLU.forward's np.maximum(z, 0) against an array of zeros: the same
                np.maximum(A, ws.zeros[l], out=A)  # values, and ~4x faster here than the scalar 0
            else:
                act.forward(A)
            A_prev = A
        Z, P, row = ws.A[self.L], ws.P, ws.row
        np.matmul(self.W[self.L], A_prev, out=Z)  # (K, C, m)
        Z += self.b[self.L]
        if 2 <= Z.shape[1] <= 4:  # the lone np.max(axis=0) pairs row = maximum(row, Z[c]) for c = 1, 2, …: the same
            np.maximum(Z[:, :1], Z[:, 1:2], out=row)  # calls on (K, 1, m) slices, faster than reducing the axis
            for c in range(2, Z.shape[1]):
                np.maximum(row, Z[:, c : c + 1], out=row)
        else:
            np.max(Z, axis=1, keepdims=True, out=row)
        Z -= row
        np.exp(Z, out=P)
        np.matmul(ws.ones_C, P, out=row)  # (K, 1, m) Σ_c exp, a gemv per trial
        P /= row
        return P

    def _cost_from_forward(self, ws, Y, lambd):
        """(K,) costs from the shifted logits and row sums left by ``forward``, plus each trial's L2."""
        m, K = ws.m, self.K
        np.log(ws.row, out=ws.row)
        np.multiply(Y, ws.A[self.L], out=ws.work[self.L])
        # each trial's (1, m) and (C, m) blocks are contiguous rows here: the lone pairwise sums
        costs = ws.row.reshape(K, m).sum(axis=1)
        costs -= ws.work[self.L].reshape(K, -1).sum(axis=1)
        costs /= m
        if lambd is not None and lambd.any:
            w = self.params[:, : self.n_weights]
            np.matmul(w[:, None, :], w[:, :, None], out=self._dots)  # a BLAS dot per trial, as np.dot(w, w)
            term = lambd.cost_scale(m, self.dtype) * self._dots[:, 0, 0]
            if not lambd.all:
                term[lambd.zero_rows] = -0.0  # no L2 term: c + (-0.0) is c, as the lone `if lambd:`
            costs += term
        return costs

    def cost(self, X, Y, lambd=None):
        """(K,) costs of the current parameters on X (n_0, m), Y one-hot (C, m); no gradient."""
        self.forward(X)
        return self._cost_from_forward(self.workspace(X.shape[1]), Y, _as_lambd(lambd, self.K))

    def cost_and_grad(self, X, Y, lambd=None):
        """(K,) costs, with each trial's gradient written into row k of ``self.grads``.

        ``lambd``: None, a StackedLambd, or K numbers (each trial's L2 strength)."""
        lambd = _as_lambd(lambd, self.K)
        P = self.forward(X)
        ws = self.workspace(X.shape[1])
        m = ws.m
        dZ = ws.dZ[self.L]
        np.subtract(P, Y, out=dZ)
        dZ *= 1.0 / m
        costs = self._cost_from_forward(ws, Y, lambd)
        act = self.activation
        for l in range(self.L, 0, -1):
            A_prev = ws.A[l - 1] if l > 1 else X
            np.matmul(dZ, _T(A_prev), out=self.dW[l])  # (K, n_l, n_{l-1})
            np.matmul(dZ, ws.ones_m, out=self.db[l])  # (K, n_l, 1)
            if l > 1:
                dA = ws.dZ[l - 1]
                np.matmul(_T(self.W[l]), dZ, out=dA)  # (K, n_{l-1}, m)
                act.backward(A_prev, dA, ws.work[l - 1])
                dZ = dA
        if lambd is not None and lambd.any:
            # whole rows (contiguous: much faster than the weight columns' strided view), with -0.0 where
            # nothing is to be added: g + (-0.0) is g exactly, for every g (+0.0, -0.0, inf and nan too)
            l2 = self._l2_work
            np.multiply(self.params, lambd.grad_scale(m, self.dtype, self.n_params), out=l2)
            l2[:, self.n_weights :] = -0.0  # biases are not penalised
            if not lambd.all:
                l2[lambd.zero_rows] = -0.0  # trials without L2, as the lone `if lambd:`
            self.grads += l2
        return costs

    def predict_proba_chunks(self, X, chunk=4096):
        """(start, P (K, C, size)) for X's columns in the lone ``predict_proba``'s chunks; each P is a
        view into scratch, valid until the next chunk."""
        for start in range(0, X.shape[1], chunk):
            yield start, self.forward(X[:, start : start + chunk])


def _T(a):
    """The per-trial transpose of a stack (K, r, c); the plain transpose of a shared 2-D matrix."""
    return a.T if a.ndim == 2 else a.transpose(0, 2, 1)


# -- per-trial scalars -----------------------------------------------------------------------------

FULL_WIDTH = 4096  # up to this many parameters per trial, per-trial scalars are spread over whole rows …
FULL_SIZE = 1 << 18  # … if the spread operand stays this small (elements)


def spread(values, dtype, width=1):
    """Per-trial Python scalars as an operand for (K, width) buffers: rounded to ``dtype`` as numpy rounds
    a Python scalar operand (to nearest), then repeated along each row when the rows are short (an
    element-wise operation between two whole arrays runs ~2x faster than one broadcasting a (K, 1)
    column over short rows); a (K, 1) column otherwise. Either gives the same numbers."""
    column = np.array(values, np.float64).astype(dtype).reshape(-1, 1)
    if 1 < width <= FULL_WIDTH and len(column) * width <= FULL_SIZE:
        return np.repeat(column, width, axis=1)
    return column


class StackedLambd:
    """Per-trial L2 strengths (K numbers): which are non-zero, and the dtype operands derived from
    them, made once per batch size."""

    def __init__(self, values):
        self.values = np.array(values, np.float64).reshape(-1)
        nonzero = self.values != 0
        self.any = bool(nonzero.any())
        self.all = bool(nonzero.all())
        self.zero_rows = np.flatnonzero(~nonzero)
        self._cache = {}

    def grad_scale(self, m, dtype, width):
        """lambd / m per trial (the lone ``lambd / m``), as a spread operand."""
        key = ("grad", m, np.dtype(dtype), width)
        if key not in self._cache:
            self._cache[key] = spread([v / m for v in self.values.tolist()], dtype, width)
        return self._cache[key]

    def cost_scale(self, m, dtype):
        """lambd / (2m) per trial (the lone ``lambd / (2 * m)``), (K,) of dtype."""
        key = ("cost", m, np.dtype(dtype))
        if key not in self._cache:
            self._cache[key] = spread([v / (2 * m) for v in self.values.tolist()], dtype)[:, 0]
        return self._cache[key]


def _as_lambd(lambd, K):
    if lambd is None or isinstance(lambd, StackedLambd):
        return lambd
    return StackedLambd(np.broadcast_to(np.asarray(lambd, np.float64), (K,)))


# -- optimizers ------------------------------------------------------------------------------------


class StackedHyperParams:
    """Per-trial hyperparameters as the stacked optimizers read them.

    Built from one HyperParams-like object per trial (attributes beta, beta1, beta2, epsilon, lambd)
    for (K, width) parameter buffers. Each operand holds the lone optimizer's Python scalar (hp.beta,
    1.0 - hp.beta, …) rounded to the dtype (see ``spread``); Adam's bias corrections, which change
    every step, are computed from the float64 vectors.
    """

    def __init__(self, hps, dtype, width=1):
        self.dtype = dtype = np.dtype(dtype)
        hps = list(hps)
        self.K = len(hps)
        self.beta = spread([hp.beta for hp in hps], dtype, width)
        self.one_minus_beta = spread([1.0 - hp.beta for hp in hps], dtype, width)
        self.beta1 = spread([hp.beta1 for hp in hps], dtype, width)
        self.one_minus_beta1 = spread([1.0 - hp.beta1 for hp in hps], dtype, width)
        self.beta2 = spread([hp.beta2 for hp in hps], dtype, width)
        self.one_minus_beta2 = spread([1.0 - hp.beta2 for hp in hps], dtype, width)
        self.epsilon = spread([hp.epsilon for hp in hps], dtype, width)
        self.beta1_list = [hp.beta1 for hp in hps]
        self.beta2_list = [hp.beta2 for hp in hps]
        self.epsilon_values = np.array([hp.epsilon for hp in hps], np.float64)
        self.lambd = StackedLambd([hp.lambd for hp in hps])


class StackedRates:
    """The per-trial rates in force for an update (after decay): float64 values and their operand."""

    def __init__(self, alphas, dtype, width=1):
        self.values = np.array(alphas, np.float64)
        self.operand = spread(alphas, dtype, width)


class StackedOptimizer:
    """As models.optimizers.Optimizer, for (K, P) buffers: the moments are (K, P), t is shared (every
    trial of a stack has made the same number of updates)."""

    name = ""
    state_names = ()

    def __init__(self):
        self.t = 0
        self._work = None

    def _buffers(self, params):
        if self._work is None:
            for name in self.state_names:
                setattr(self, name, np.zeros_like(params))
            self._work = np.empty_like(params)
        return self._work

    def update(self, params, grads, rates, hp):
        """One update of every trial: ``rates`` a StackedRates, ``hp`` a StackedHyperParams."""
        raise NotImplementedError

    def state_dict(self, k):
        """Trial k's state, in models.optimizers.Optimizer.state_dict's format (copies)."""
        state = {"t": self.t}
        for name in self.state_names:
            state[name] = None if self._work is None else getattr(self, name)[k].copy()
        return state

    def load_state_dicts(self, states, shape, dtype):
        """Per-trial lone states (one per row, all with the same t) into this stack's moments."""
        ts = {int(s["t"]) for s in states}
        if len(ts) > 1:
            raise ValueError(f"optimizer states with different step counts t {sorted(ts)} cannot share a stack")
        self.t = ts.pop() if ts else 0
        self._work = None
        if not self.state_names or all(s.get(n) is None for s in states for n in self.state_names):
            return  # no moments yet: made (as zeros) at the first update, as the lone optimizer does
        self._work = np.empty(shape, dtype)
        for name in self.state_names:
            buf = np.zeros(shape, dtype)
            for k, s in enumerate(states):
                if s.get(name) is not None:  # a missing moment is the zeros the lone one would make
                    buf[k] = s[name]
            setattr(self, name, buf)

    def take(self, rows):
        """A copy holding only the trials ``rows``."""
        other = type(self)()
        other.t = self.t
        if self._work is not None:
            rows = np.asarray(rows, np.intp)
            for name in self.state_names:
                setattr(other, name, getattr(self, name)[rows])
            other._work = np.empty((len(rows), self._work.shape[1]), self._work.dtype)
        return other


class StackedGradientDescent(StackedOptimizer):
    name = "gd"

    def update(self, params, grads, rates, hp):
        work = self._buffers(params)
        self.t += 1
        np.multiply(grads, rates.operand, out=work)
        params -= work


class StackedMomentum(StackedOptimizer):
    name = "momentum"
    state_names = ("v",)

    def update(self, params, grads, rates, hp):
        work = self._buffers(params)
        self.t += 1
        v = self.v
        v *= hp.beta
        np.multiply(grads, hp.one_minus_beta, out=work)
        v += work
        np.multiply(v, rates.operand, out=work)
        params -= work


class StackedRMSprop(StackedOptimizer):
    name = "rmsprop"
    state_names = ("s",)

    def update(self, params, grads, rates, hp):
        work = self._buffers(params)
        self.t += 1
        s = self.s
        s *= hp.beta2
        np.multiply(grads, grads, out=work)
        work *= hp.one_minus_beta2
        s += work
        np.sqrt(s, out=work)
        work += hp.epsilon
        np.divide(grads, work, out=work)
        work *= rates.operand
        params -= work


class StackedAdam(StackedOptimizer):
    name = "adam"
    state_names = ("v", "s")

    def update(self, params, grads, rates, hp):
        work = self._buffers(params)
        self.t += 1
        t = self.t
        v, s = self.v, self.s
        v *= hp.beta1
        np.multiply(grads, hp.one_minus_beta1, out=work)
        v += work
        s *= hp.beta2
        np.multiply(grads, grads, out=work)
        work *= hp.one_minus_beta2
        s += work
        # the lone Python scalars per trial, in float64 and in the lone order: root_c2 = sqrt(1 - beta2^t),
        # eps·root_c2 and alpha·root_c2 / (1 - beta1^t). The powers are Python's (libm pow), as the lone
        # ones; np.power may take another (SIMD) pow. IEEE -, *, / and sqrt give the same result anywhere.
        root_c2 = np.sqrt(1.0 - np.array([b2**t for b2 in hp.beta2_list]))
        eps = (hp.epsilon_values * root_c2).astype(hp.dtype)[:, None]
        scale = (rates.values * root_c2 / (1.0 - np.array([b1**t for b1 in hp.beta1_list]))).astype(hp.dtype)[:, None]
        np.sqrt(s, out=work)
        work += eps
        np.divide(v, work, out=work)
        work *= scale
        params -= work


STACKED_OPTIMIZERS = {cls.name: cls for cls in (StackedGradientDescent, StackedMomentum, StackedRMSprop, StackedAdam)}
