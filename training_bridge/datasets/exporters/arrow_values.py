"""Arrow values from numpy arrays and Python literals, built from buffers.

pyarrow imports pandas the first time it converts a Python value (`pa.scalar`, `pa.array`, a
literal in a compute call): memory an export process, which never uses pandas, would carry
(bench/export/RESULTS.md).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def literal(value: str | float | list | None, kind: pa.DataType) -> pa.Scalar:
    """A scalar for compute calls (instead of `pa.scalar` or a bare Python value)."""
    if value is None:
        return pa.nulls(1, kind)[0]
    if pa.types.is_list(kind):
        if value:
            raise ValueError("only the empty list")
        offsets = pa.py_buffer(np.zeros(2, np.int32))
        empty = pa.nulls(0, kind.value_type)
        return pa.ListArray.from_buffers(kind, 1, [None, offsets], children=[empty])[0]
    if kind == pa.string():
        data = value.encode()
        offsets = pa.py_buffer(np.array([0, len(data)], np.int32))
        return pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(data)])[0]
    if kind == pa.bool_():
        return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(bytes([bool(value)]))])[0]
    dtype = {pa.float64(): np.float64, pa.int64(): np.int64}[kind]
    return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(np.array([value], dtype))])[0]


def int64_array(values: np.ndarray) -> pa.Array:
    """A numpy integer array as an arrow int64 array, without a copy when already int64."""
    values = np.ascontiguousarray(values, np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def bool_array(values: np.ndarray) -> pa.Array:
    """A numpy bool array as an arrow boolean array."""
    bits = np.packbits(values, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
