"""Plain data between the class grader and a student's worker (no code, no objects).

A message is one JSON document, sent as a 4-byte big-endian length and the UTF-8 bytes. Values
are JSON's own (None, bool, int, float, str, list, object with string keys) plus four tagged
forms::

    {"$tensor": [dtype, shape, base64 bytes]}   a torch tensor (its plain storage, row-major)
    {"$tuple": [...]}                            a tuple
    {"$dict": [[key, value], ...]}               a dict whose keys are not all strings
    {"$dtype": "float32"}                        a torch dtype
    {"$callback": id}                            a function the grader keeps (see worker.py)
    {"$opaque": "TypeName"}                      a value that cannot cross (only its type name)

Everything read from the other side is checked before use: the size of the message, the depth
of nesting, the length of containers, the dtype (a whitelist) and that a tensor's bytes match
its shape. A violation raises :class:`WireError`; it never runs anything.
"""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import struct
from typing import Any

MAX_MESSAGE = 256 << 20  # bytes in one message: the largest grader case is ~8 MiB
MAX_DEPTH = 32  # nesting of lists, tuples and dicts
MAX_ITEMS = 1 << 16  # elements of one list, tuple or dict
MAX_INT = 1 << 63
MAX_TEXT = 1 << 16  # characters of one string
DTYPES = (
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "complex128",
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")


class WireError(ValueError):
    """A message that is not well-formed plain data (or too big, or too deep)."""


# --- framing ---------------------------------------------------------------------------------


def send(conn: socket.socket, message: Any) -> None:
    """Send one JSON-able message (already encoded with :func:`encode`)."""
    data = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    conn.sendall(struct.pack(">I", len(data)) + data)


def receive(conn: socket.socket, timeout: float | None) -> Any:
    """The next message as parsed JSON (still to be decoded); raises TimeoutError when nothing
    arrives in ``timeout`` seconds, EOFError when the other side closed, WireError when the
    message is malformed."""
    conn.settimeout(timeout)
    (length,) = struct.unpack(">I", _read_exactly(conn, 4))
    if length > MAX_MESSAGE:
        raise WireError(f"message of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    data = _read_exactly(conn, length)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise WireError(f"not JSON ({type(err).__name__})") from None


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --- values ----------------------------------------------------------------------------------


def encode(value: Any, callbacks: dict[int, Any] | None = None, depth: int = 0) -> Any:
    """``value`` as plain JSON data. Functions become callbacks (kept in ``callbacks`` by id)
    when a table is given; anything else that cannot cross becomes ``$opaque``."""
    import torch

    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, torch.Tensor):
        return {"$tensor": _tensor_parts(value)}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if isinstance(value, (list, tuple, torch.Size)):
        items = [encode(v, callbacks, depth + 1) for v in value]
        return items if type(value) is list else {"$tuple": items}
    if isinstance(value, dict):
        pairs = [
            [encode(k, callbacks, depth + 1), encode(v, callbacks, depth + 1)]
            for k, v in value.items()
        ]
        if all(isinstance(k, str) and not k.startswith("$") for k, _ in pairs):
            return dict(pairs)
        return {"$dict": pairs}
    if callable(value) and callbacks is not None:
        callbacks[len(callbacks)] = value
        return {"$callback": len(callbacks) - 1}
    return {"$opaque": type(value).__name__}


def _tensor_parts(value: Any) -> list[Any]:
    """[dtype, shape, base64] of a tensor, read through plain ``torch.Tensor`` (a subclass's
    overrides do not apply) from a CPU copy."""
    import torch

    plain = torch.Tensor.as_subclass(value, torch.Tensor).detach().cpu().contiguous()
    dtype = str(plain.dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise WireError(f"tensor dtype {dtype} cannot be sent")
    raw = plain.reshape(-1).view(torch.uint8).numpy().tobytes() if plain.numel() else b""
    return [dtype, list(plain.shape), base64.b64encode(raw).decode()]


def decode(data: Any, callback: Any = None, depth: int = 0) -> Any:
    """The value a message describes, checked (see the module docstring). ``callback(id)``
    makes the stand-in for a ``$callback``; without it a callback is a WireError."""
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if data is None or isinstance(data, (bool, float)):
        return data
    if isinstance(data, int):
        if not -MAX_INT <= data < MAX_INT:
            raise WireError("integer out of the 64-bit range")
        return data
    if isinstance(data, str):
        if len(data) > MAX_TEXT:
            raise WireError(f"string longer than {MAX_TEXT} characters")
        return data
    if isinstance(data, list):
        return [decode(v, callback, depth + 1) for v in _bounded(data)]
    if not isinstance(data, dict):
        raise WireError(f"unexpected JSON value {type(data).__name__}")
    tags = [k for k in data if k.startswith("$")]
    if not tags:
        return {k: decode(v, callback, depth + 1) for k, v in _bounded(list(data.items()))}
    if len(data) != 1 or tags[0] not in _TAGGED:
        raise WireError(f"unknown tagged value {sorted(data)[:3]}")
    return _TAGGED[tags[0]](data[tags[0]], callback, depth)


def _bounded(items: list) -> list:
    if len(items) > MAX_ITEMS:
        raise WireError(f"a container with more than {MAX_ITEMS} items")
    return items


def _decode_tensor(parts: Any, _callback: Any, _depth: int) -> Any:
    import torch

    if not (isinstance(parts, list) and len(parts) == 3):
        raise WireError("a tensor must be [dtype, shape, bytes]")
    dtype, shape, b64 = parts
    if dtype not in DTYPES:
        raise WireError(f"tensor dtype {str(dtype)[:20]!r} is not allowed")
    if not (
        isinstance(shape, list)
        and len(shape) <= 8
        and all(isinstance(n, int) and 0 <= n < MAX_MESSAGE for n in shape)
    ):
        raise WireError("a tensor's shape must be at most 8 non-negative integers")
    if not isinstance(b64, str):
        raise WireError("a tensor's bytes must be base64 text")
    raw = base64.b64decode(b64, validate=True)
    torch_dtype = getattr(torch, dtype)
    itemsize = torch.empty((), dtype=torch_dtype).element_size()
    if len(raw) != math.prod(shape) * itemsize:
        raise WireError("a tensor's bytes do not match its shape and dtype")
    if not raw:
        return torch.empty(shape, dtype=torch_dtype)
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(torch_dtype)
    return flat.reshape(shape)


def _decode_tuple(items: Any, callback: Any, depth: int) -> tuple:
    if not isinstance(items, list):
        raise WireError("a tuple must be a list")
    return tuple(decode(v, callback, depth + 1) for v in _bounded(items))


def _decode_dict(pairs: Any, callback: Any, depth: int) -> dict:
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise WireError("a dict must be a list of [key, value] pairs")
    out = {}
    for key, value in _bounded(pairs):
        key = decode(key, callback, depth + 1)
        try:
            out[key] = decode(value, callback, depth + 1)
        except TypeError:
            raise WireError("a dict key must be hashable") from None
    return out


def _decode_dtype(name: Any, _callback: Any, _depth: int) -> Any:
    import torch

    if name not in DTYPES:
        raise WireError(f"dtype {str(name)[:20]!r} is not allowed")
    return getattr(torch, name)


def _decode_callback(ident: Any, callback: Any, _depth: int) -> Any:
    if callback is None or not isinstance(ident, int):
        raise WireError("a function cannot be sent this way")
    return callback(ident)


def _decode_opaque(name: Any, _callback: Any, _depth: int) -> Any:
    """A value that could not cross: an empty stand-in whose type has the same name, so that
    the graders' hints ("returned Foo, expected a torch.Tensor") read as they would in-kernel."""
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        name = "unsendable"
    return type(name.rsplit(".", 1)[-1], (), {"__module__": "student"})()


_TAGGED = {
    "$tensor": _decode_tensor,
    "$tuple": _decode_tuple,
    "$dict": _decode_dict,
    "$dtype": _decode_dtype,
    "$callback": _decode_callback,
    "$opaque": _decode_opaque,
}


def exception_parts(err: BaseException) -> dict[str, str]:
    """An exception as plain data: its type's name, the nearest built-in exception it derives
    from, and its message (cut short)."""
    import builtins

    name = type(err).__name__
    builtin = next(
        (c.__name__ for c in type(err).__mro__ if getattr(builtins, c.__name__, None) is c),
        "Exception",
    )
    return {
        "type": name if _NAME.fullmatch(name) else "Exception",
        "builtin": builtin,
        "message": str(err)[:1000],
    }
