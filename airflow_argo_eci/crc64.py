"""CRC-64/XZ (ECMA-182, reflected), the checksum of OSS's ``x-oss-hash-crc64ecma``: the function and combination.

Pure: no I/O, no Airflow. :func:`crc64_function` is ``fastcrc``'s native CRC-64/XZ (SIMD, over
10 GB/s, GIL released) when its wheel is installed, else ``crcmod`` (a dependency of ``oss2``, about
0.5 GB/s holding the GIL); both give the same values (``tests/test_crc64.py``). :func:`crc64_combine`
gives ``crc(A + B)`` from ``crc(A)``, ``crc(B)`` and ``len(B)`` without the data, which is how the
CRC-64 of a multipart object follows from its parts'.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

_POLY_REFLECTED = 0xC96C5795D7870F42  # CRC-64/XZ (ECMA-182, reflected), what OSS's x-oss-hash-crc64ecma uses


CrcFunction = Callable[[bytes | bytearray | memoryview, int], int]


@lru_cache(maxsize=1)
def crc64_function() -> CrcFunction:
    """``crc(data, previous_crc) -> crc``: OSS's CRC-64, native (``fastcrc``) when available, else crcmod."""
    try:
        from fastcrc import crc64
    except ImportError:
        return crcmod_crc64_function()
    function: CrcFunction = crc64.xz  # ``xz(data, initial)`` continues from a finished CRC, as crcmod does
    return function


def crcmod_crc64_function() -> CrcFunction:
    """The same function with crcmod (oss2's implementation): the fallback, and the reference in tests."""
    import crcmod

    function: CrcFunction = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
    return function


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(64)]


@lru_cache(maxsize=16)
def _shift_tables(length: int) -> tuple[tuple[int, ...], ...]:
    """Byte tables of the linear map "append ``length`` zero bytes" on a CRC-64 register."""
    odd = [_POLY_REFLECTED] + [1 << n for n in range(63)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    result = [1 << n for n in range(64)]  # identity, as columns
    remaining = length
    while remaining:
        even = _gf2_square(odd)
        if remaining & 1:
            result = [_gf2_times(even, col) for col in result]
        remaining >>= 1
        if not remaining:
            break
        odd = _gf2_square(even)
        if remaining & 1:
            result = [_gf2_times(odd, col) for col in result]
        remaining >>= 1
    tables = []
    for byte_index in range(8):
        cols = result[8 * byte_index: 8 * byte_index + 8]
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value
            table[value] = table[value ^ low] ^ cols[low.bit_length() - 1]
        tables.append(tuple(table))
    return tuple(tables)


def crc64_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-64 of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)`` (zlib's method, with cached
    per-length byte tables so combining thousands of equal-sized parts is cheap)."""
    if length2 == 0:
        return crc1
    tables = _shift_tables(length2)
    shifted = 0
    for byte_index in range(8):
        shifted ^= tables[byte_index][(crc1 >> (8 * byte_index)) & 0xFF]
    return shifted ^ crc2


def combine_parts(parts: list[tuple[int, int]]) -> int:
    """CRC-64 of the concatenation of parts given as ``(crc, size)`` in order."""
    total = 0
    for crc, size in parts:
        total = crc64_combine(total, crc, size)
    return total
