"""The course's four optimizers, each updating one flat parameter buffer in place.

An optimizer holds state only (its moments and step count); the hyperparameters arrive with every
call to ``update``, so a change made between two steps applies at the very next update. ``params``
and ``grads`` are the whole network in one flat buffer (weights and biases alike), which makes an
update a handful of whole-buffer operations whatever the depth. ``alpha`` is the rate in force
for this update, after learning-rate decay.
"""

import math

import numpy as np


class Optimizer:
    name = ""
    state_names = ()  # the moment buffers, in the order state_dict stores them

    def __init__(self):
        self.t = 0  # updates made so far
        self._work = None
        self._updated = False  # whether _work holds this instance's last update

    def _buffers(self, params):
        """Lazily made moments and scratch, shaped like the parameters."""
        if self._work is None:
            for name in self.state_names:
                setattr(self, name, np.zeros_like(params))
            self._work = np.empty_like(params)
        self._updated = True
        return self._work

    def update(self, params, grads, alpha, hp):
        raise NotImplementedError

    @property
    def last_update(self):
        """The step the last update subtracted from the parameters (every update ends with
        ``params -= work``), or None before the first; valid until the next update."""
        return self._work if self._updated else None

    def state_dict(self):
        """t and the moment buffers (copies), for a checkpoint."""
        state = {"t": self.t}
        for name in self.state_names:
            buf = getattr(self, name, None)
            state[name] = None if buf is None else buf.copy()
        return state

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self._updated = False
        for name in self.state_names:
            buf = state.get(name)
            if buf is None:
                self._work = None
                break
            setattr(self, name, np.array(buf, copy=True))
        else:
            if self.state_names:
                self._work = np.empty_like(getattr(self, self.state_names[0]))


class GradientDescent(Optimizer):
    """W -= alpha · dW"""

    name = "gd"

    def update(self, params, grads, alpha, hp):
        work = self._buffers(params)
        self.t += 1
        np.multiply(grads, alpha, out=work)
        params -= work


class Momentum(Optimizer):
    """v = beta · v + (1 - beta) · dW;  W -= alpha · v   (v starts at 0)"""

    name = "momentum"
    state_names = ("v",)

    def update(self, params, grads, alpha, hp):
        work = self._buffers(params)
        self.t += 1
        v = self.v
        v *= hp.beta
        np.multiply(grads, 1.0 - hp.beta, out=work)
        v += work
        np.multiply(v, alpha, out=work)
        params -= work


class RMSprop(Optimizer):
    """s = beta2 · s + (1 - beta2) · dW²;  W -= alpha · dW / (sqrt(s) + epsilon)"""

    name = "rmsprop"
    state_names = ("s",)

    def update(self, params, grads, alpha, hp):
        work = self._buffers(params)
        self.t += 1
        s = self.s
        s *= hp.beta2
        np.multiply(grads, grads, out=work)
        work *= 1.0 - hp.beta2
        s += work
        np.sqrt(s, out=work)
        work += hp.epsilon
        np.divide(grads, work, out=work)
        work *= alpha
        params -= work


class Adam(Optimizer):
    """v = beta1·v + (1-beta1)·dW;  s = beta2·s + (1-beta2)·dW²;
    v_hat = v / (1 - beta1^t);  s_hat = s / (1 - beta2^t);  W -= alpha · v_hat / (sqrt(s_hat) + epsilon)

    with t the number of Adam updates so far, this one included.
    """

    name = "adam"
    state_names = ("v", "s")

    def update(self, params, grads, alpha, hp):
        work = self._buffers(params)
        self.t += 1
        v, s = self.v, self.s
        v *= hp.beta1
        np.multiply(grads, 1.0 - hp.beta1, out=work)
        v += work
        s *= hp.beta2
        np.multiply(grads, grads, out=work)
        work *= 1.0 - hp.beta2
        s += work
        # alpha·(v/c1) / (sqrt(s/c2) + eps) = (alpha·sqrt(c2)/c1) · v / (sqrt(s) + eps·sqrt(c2))
        root_c2 = math.sqrt(1.0 - hp.beta2**self.t)
        np.sqrt(s, out=work)
        work += hp.epsilon * root_c2
        np.divide(v, work, out=work)
        work *= alpha * root_c2 / (1.0 - hp.beta1**self.t)
        params -= work


OPTIMIZERS = {cls.name: cls for cls in (GradientDescent, Momentum, RMSprop, Adam)}
