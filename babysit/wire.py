"""The messages between the server and the processes that train its runs, without pickle.

A message is JSON plus the raw bytes of its numpy arrays: ``encode(obj) -> bytes`` and ``decode(bytes)``.
Only plain data crosses (None, bools, numbers, strings, lists, tuples, dicts with string keys, numeric
arrays) and the project's own frozen dataclasses named in ``TYPES``; anything else is refused. Nothing
read here is ever turned into code or an arbitrary object, so the promise that nothing is unpickled
holds for these messages too.
"""

import dataclasses
import json
import struct

import numpy as np

from babysit.config import Change, DataConfig, ModelConfig, RunConfig
from babysit.events import Event
from babysit.hyperparams import HyperParams
from babysit.probe import ProbeResult
from babysit.session import Command, Guardrail, SessionSettings, Snapshot

TYPES = {cls.__name__: cls for cls in (Snapshot, Guardrail, Command, Event, HyperParams, RunConfig, DataConfig,
                                       ModelConfig, Change, ProbeResult, SessionSettings)}
SKIPPED = {"future"}  # a Command's future stays in the process that made it
_HEADER = struct.Struct("<I")


class WireError(ValueError):
    """A message that is not one of ours."""


def encode(obj):
    arrays = []
    header = json.dumps(_plain(obj, arrays), separators=(",", ":")).encode("utf-8")
    return b"".join([_HEADER.pack(len(header)), header, *(a.tobytes() for a in arrays)])


def decode(blob):
    blob = memoryview(blob)
    (size,) = _HEADER.unpack_from(blob)
    body = json.loads(bytes(blob[_HEADER.size:_HEADER.size + size]))
    return _rebuild(body, blob, [_HEADER.size + size])


def _plain(obj, arrays):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise WireError(f"cannot send an array of {obj.dtype}")
        arrays.append(np.ascontiguousarray(obj))
        return {"__array__": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, (list, tuple)):
        items = [_plain(x, arrays) for x in obj]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise WireError("dict keys must be strings")
        if any(k.startswith("__") for k in obj):
            raise WireError("dict keys must not start with '__'")
        return {k: _plain(v, arrays) for k, v in obj.items()}
    name = type(obj).__name__
    if dataclasses.is_dataclass(obj) and TYPES.get(name) is type(obj):
        return {"__type__": name, "fields": {f.name: _plain(getattr(obj, f.name), arrays)
                                             for f in dataclasses.fields(obj) if f.name not in SKIPPED}}
    raise WireError(f"cannot send a {name}")


def _rebuild(obj, blob, offset):
    if isinstance(obj, list):
        return [_rebuild(x, blob, offset) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        dtype = np.dtype(obj["__array__"])
        if dtype.kind not in "biuf":
            raise WireError(f"an array of {dtype} is not ours")
        shape = tuple(int(n) for n in obj["shape"])
        count = int(np.prod(shape))
        array = np.frombuffer(blob, dtype, count, offset[0]).reshape(shape).copy()
        offset[0] += count * dtype.itemsize
        return array
    if "__tuple__" in obj:
        return tuple(_rebuild(x, blob, offset) for x in obj["__tuple__"])
    if "__type__" in obj:
        cls = TYPES.get(obj["__type__"])
        if cls is None:
            raise WireError(f"unknown type {obj['__type__']!r}")
        return cls(**{k: _rebuild(v, blob, offset) for k, v in obj["fields"].items()})
    return {k: _rebuild(v, blob, offset) for k, v in obj.items()}
