"""Serializers: how values become the bytes the store keeps.

A serializer is any object with a ``name`` (recorded in the store, so a store is never
read with the wrong one), ``dumps(obj) -> bytes`` and ``loads(data) -> obj``.

One rule applies whatever the serializer: a value whose type is exactly ``int`` and
fits in 64 bits is stored as the engine's counter encoding (ASCII decimal, e.g.
``b"42"``), and a stored value that is a canonical ASCII decimal ``i64`` is read back as
an ``int`` without calling ``loads``. That is what lets ``incr`` from Rust or the
``sqcache`` CLI work on an int set from Python, and a Rust counter read as an ``int``.
Pickle output starts with ``0x80`` and msgpack output of anything but an int never
starts with ``-`` or a digit, so the built-in serializers are never misread. A custom
serializer must keep the same property: its ``dumps`` must never return a canonical
decimal integer (``-?[1-9][0-9]*`` or ``0``) for a value that is not that int.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Serializer",
    "PickleSerializer",
    "PickleOOBSerializer",
    "MsgspecSerializer",
    "get_serializer_by_name",
    "SERIALIZER_UPGRADES",
]


@runtime_checkable
class Serializer(Protocol):
    """The serializer protocol: a ``name`` and ``dumps``/``loads``."""

    name: str

    def dumps(self, value: Any) -> bytes:
        """Encodes ``value``."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decodes what ``dumps`` returned."""
        ...


class PickleSerializer:
    """Pickle, highest protocol (the default). ``bytes`` values are pickled too.

    Only load stores you (or programs you trust) wrote: unpickling runs code.
    """

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        """``pickle.dumps(value, protocol)``."""
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes) -> Any:
        """``pickle.loads(data)``."""
        return pickle.loads(data)


class PickleOOBSerializer:
    """Pickle protocol 5 with large buffers (numpy arrays, ``PickleBuffer``) kept out
    of band: they are appended to the stored value as they are, instead of being copied
    into the pickle stream and out of it again.

    Layout: ``MAGIC | u32 count | u64 header size | count x u64 buffer size | header
    pickle | buffers``. Buffers below ``min_oob_buffer`` bytes (64 KiB) stay in band.
    A value without large buffers is stored as plain pickle, and plain pickle entries
    load, so a ``"pickle"`` store may be reopened with this serializer. Arrays come back
    writable (each buffer is copied once out of the stored bytes) unless
    ``writable=False``, which gives read-only arrays that share the stored bytes.
    """

    name = "pickle-oob"
    MAGIC = b"\x00SQOOB01"
    _PREAMBLE = struct.Struct("<IQ")
    _SIZE = struct.Struct("<Q")

    def __init__(self, min_oob_buffer: int = 64 * 1024, writable: bool = True) -> None:
        self.min_oob_buffer = min_oob_buffer
        self.writable = writable

    def dumps(self, value: Any) -> bytes:
        """Pickles ``value`` with its large buffers out of band."""
        buffers: list[memoryview] = []

        def out_of_band(buffer: pickle.PickleBuffer) -> bool:
            raw = buffer.raw()
            if raw.nbytes < self.min_oob_buffer:
                return True  # in band
            buffers.append(raw)
            return False

        out = io.BytesIO()
        pickle.Pickler(out, protocol=5, buffer_callback=out_of_band).dump(value)
        header = out.getvalue()
        if not buffers:
            return header
        sizes = b"".join(self._SIZE.pack(b.nbytes) for b in buffers)
        return b"".join(
            [self.MAGIC, self._PREAMBLE.pack(len(buffers), len(header)), sizes, header, *buffers]
        )

    def loads(self, data: bytes) -> Any:
        """Loads a value written by ``dumps`` (or by plain pickle)."""
        if data[:1] != self.MAGIC[:1]:
            return pickle.loads(data)
        view = memoryview(data)
        if bytes(view[: len(self.MAGIC)]) != self.MAGIC:
            raise pickle.UnpicklingError("not a pickle-oob value (bad magic)")
        try:
            count, header_size = self._PREAMBLE.unpack_from(view, len(self.MAGIC))
            at = len(self.MAGIC) + self._PREAMBLE.size
            sizes = [self._SIZE.unpack_from(view, at + i * 8)[0] for i in range(count)]
        except struct.error as e:
            raise pickle.UnpicklingError(f"truncated pickle-oob value: {e}") from e
        at += count * 8
        header = view[at : at + header_size]
        at += header_size
        buffers = []
        for size in sizes:
            if at + size > len(view):
                raise pickle.UnpicklingError("pickle-oob buffer runs past the stored value")
            chunk = view[at : at + size]
            buffers.append(bytearray(chunk) if self.writable else chunk)
            at += size
        return pickle.loads(header, buffers=buffers)


# msgpack extension codes of MsgspecSerializer (stored: never reuse one).
_EXT_NDARRAY = 1
_EXT_OBJECT = 2


class MsgspecSerializer:
    """msgpack through msgspec: fast and compact for plain data (dict, list, str,
    int, float, bool, None, bytes). numpy arrays (any shape and dtype, C or Fortran
    order) and numpy scalars are supported, and so are plain objects with a
    ``__dict__`` (restored by importing their class). Needs the ``msgspec`` package.
    """

    name = "msgspec"

    def __init__(self) -> None:
        import msgspec.msgpack  # fail now, not at the first write

        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._decoder = msgspec.msgpack.Decoder(ext_hook=self._ext_hook)
        self._msgpack = msgspec.msgpack

    def _enc_hook(self, obj: Any) -> Any:
        np = _numpy()
        if np is not None:
            if isinstance(obj, np.ndarray):
                if obj.dtype.hasobject:
                    raise TypeError("numpy arrays of Python objects cannot be stored with msgspec")
                order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
                meta = self._msgpack.encode([obj.dtype.str, list(obj.shape), order])
                payload = len(meta).to_bytes(4, "little") + meta + obj.tobytes(order=order)
                return self._msgpack.Ext(_EXT_NDARRAY, payload)
            if isinstance(obj, np.generic):
                return obj.item()
        if hasattr(obj, "__dict__"):
            cls = type(obj)
            doc = [f"{cls.__module__}:{cls.__qualname__}", obj.__dict__]
            return self._msgpack.Ext(_EXT_OBJECT, self._encoder.encode(doc))
        raise TypeError(f"msgspec cannot serialize a {type(obj).__name__}")

    def _ext_hook(self, code: int, data: memoryview) -> Any:
        if code == _EXT_NDARRAY:
            try:
                import numpy as np
            except ImportError as e:
                raise ValueError("this value is a numpy array: install numpy to read it") from e
            n = int.from_bytes(data[:4], "little")
            dtype, shape, order = self._msgpack.decode(data[4 : 4 + n])
            flat = np.frombuffer(data[4 + n :], dtype=np.dtype(dtype))
            return flat.reshape(shape, order=order).copy(order="K")
        if code == _EXT_OBJECT:
            path, state = self._decoder.decode(data)
            module, _, qualname = path.partition(":")
            import importlib

            cls: Any = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
            obj = cls.__new__(cls)
            obj.__dict__.update(state)
            return obj
        raise ValueError(f"unknown msgpack extension code {code}")

    def dumps(self, value: Any) -> bytes:
        """Encodes ``value`` as msgpack."""
        return self._encoder.encode(value)

    def loads(self, data: bytes) -> Any:
        """Decodes msgpack."""
        return self._decoder.decode(data)


def _numpy() -> Any:
    import sys

    return sys.modules.get("numpy")


_BY_NAME = {
    "pickle": PickleSerializer,
    "pickle-oob": PickleOOBSerializer,
    "msgspec": MsgspecSerializer,
}

#: (recorded, requested) serializer switches allowed on an existing store: the
#: requested one reads everything the recorded one wrote.
SERIALIZER_UPGRADES = frozenset({("pickle", "pickle-oob")})


def get_serializer_by_name(name: str) -> Serializer:
    """A new instance of the built-in serializer called ``name``."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ValueError(
            f"unknown serializer {name!r} (built-in: {sorted(_BY_NAME)}); "
            "pass the custom serializer this store was written with as serializer="
        )
    return cls()
