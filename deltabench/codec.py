"""Typed values as named arrays plus JSON: how the cache stores stage results without pickle.

Why not ``torch.save``: loading a pickle runs code, and the cache may sit in a folder that others
can write (a shared ``--shard`` cache). Here arrays and tensors become plain arrays (stored as
safetensors) and everything else JSON; the only classes ever rebuilt are the dataclasses marked
``@storable``, looked up by name in a fixed table. A hostile file can at worst hold wrong numbers,
which the store's checksum catches.

Storable: None, bool, int, float, str; lists, tuples and dicts with str keys of storable values;
numpy arrays (numbers, bools, strings) and scalars; torch tensors; ``@storable`` dataclasses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["storable", "encode", "decode"]

T = TypeVar("T", bound=type)
_STORABLE: dict[str, type] = {}


def storable(cls: T) -> T:
    """Mark a dataclass as one the cache may rebuild (its fields must be storable)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not a dataclass")
    taken = _STORABLE.setdefault(cls.__name__, cls)
    if taken is not cls:
        raise TypeError(f"two storable classes are named {cls.__name__}")
    return cls


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, array: np.ndarray) -> str:
        name = str(len(self.arrays))
        # safetensors writes raw memory (and np.ascontiguousarray would make a 0-d array 1-d)
        self.arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
        return name

    def node(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, np.generic):
            return {"$scalar": value.dtype.str, "value": value.item()}
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "U":
                return {"$strings": value.dtype.str, "shape": list(value.shape), "value": value.tolist()}
            if value.dtype.kind not in "biufc":
                raise TypeError(f"{where}: cannot store an array of dtype {value.dtype}")
            return {"$array": self._array(value.astype(value.dtype.newbyteorder("<"), copy=False))}
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            if t.dtype == torch.bfloat16:  # numpy has no bfloat16: keep its bits
                return {"$tensor": self._array(t.view(torch.int16).numpy()), "bfloat16": True}
            return {"$tensor": self._array(t.numpy())}
        if isinstance(value, list | tuple):
            items = [self.node(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"$tuple": items}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}: dict keys must be strings")
            return {"$dict": {k: self.node(v, f"{where}[{k!r}]") for k, v in value.items()}}
        cls = type(value)
        if _STORABLE.get(cls.__name__) is cls:
            fields = {
                f.name: self.node(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
            }
            return {"$type": cls.__name__, "fields": fields}
        raise TypeError(
            f"{where}: cannot store a {cls.__module__}.{cls.__qualname__} "
            "(store tensors, arrays, numbers, strings, lists or dicts)"
        )


def encode(value: Any) -> tuple[dict[str, np.ndarray], Any]:
    """``(arrays by name, JSON-serialisable tree)``; raises ``TypeError`` naming what cannot be stored."""
    encoder = _Encoder()
    tree = encoder.node(value, "value")
    return encoder.arrays, tree


def decode(arrays: dict[str, np.ndarray], tree: Any) -> Any:
    """The value :func:`encode` was given; raises ``ValueError`` on a tree it did not write."""
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    if isinstance(tree, list):
        return [decode(arrays, v) for v in tree]
    if not isinstance(tree, dict) or len(tree) == 0:
        raise ValueError(f"unexpected node {tree!r:.80}")
    if "$dict" in tree:
        return {k: decode(arrays, v) for k, v in tree["$dict"].items()}
    if "$tuple" in tree:
        return tuple(decode(arrays, v) for v in tree["$tuple"])
    if "$array" in tree:
        return arrays[tree["$array"]]
    if "$tensor" in tree:
        t = torch.from_numpy(arrays[tree["$tensor"]])
        return t.view(torch.bfloat16) if tree.get("bfloat16") else t
    if "$strings" in tree:
        return np.array(tree["value"], dtype=np.dtype(tree["$strings"])).reshape(tree["shape"])
    if "$scalar" in tree:
        return np.dtype(tree["$scalar"]).type(tree["value"])
    if "$type" in tree:
        cls = _STORABLE.get(tree["$type"])
        if cls is None:
            raise ValueError(f"unknown stored type {tree['$type']!r}")
        return cls(**{k: decode(arrays, v) for k, v in tree["fields"].items()})
    raise ValueError(f"unexpected node {tree!r:.80}")
