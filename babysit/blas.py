"""One BLAS thread for a process that trains, unless the user says otherwise.

A run trains in one thread on small matrices, where BLAS's helper threads buy nothing and spin while
they wait, on the core another run or the page needs. Only the evaluations' matrices are large enough
for BLAS to split: on 100,000 examples, one took 13.0 ms on one thread and 12.7 ms on two with the
other core idle, and 19 ms against 37-44 ms with it busy (2 cores). Measured with a page open, a
decision boundary's 1 ms of matrix products took ~100 ms of CPU, spinning on the core the training
needed.

The libraries read these variables once, when numpy loads them: ``one_blas_thread`` must run before
numpy is imported, and does nothing after.
"""

import os

BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def one_blas_thread(environ=None):
    """Set each BLAS library's thread count to 1 in ``environ`` (os.environ by default), keeping any
    the user set."""
    environ = os.environ if environ is None else environ
    for name, value in BLAS_THREADS.items():
        environ.setdefault(name, value)
    return environ
