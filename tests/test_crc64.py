"""CRC-64/XZ: the native implementation equals oss2's crcmod one, continuation and combination included."""

from __future__ import annotations

import random

import oss2.utils
import pytest

from airflow_argo_eci.crc64 import combine_parts, crc64_combine, crc64_function, crcmod_crc64_function


def test_native_implementation_is_installed_and_used() -> None:
    fastcrc = pytest.importorskip("fastcrc")
    assert crc64_function() is fastcrc.crc64.xz


@pytest.mark.parametrize("seed", range(8))
def test_equals_oss2_crcmod_on_random_data(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(0, 3 * 1024 * 1024))
    reference = oss2.utils.Crc64(0)
    reference.update(data)
    native = crc64_function()
    assert native(data, 0) == reference.crc == crcmod_crc64_function()(data, 0)
    assert native(bytearray(data), 0) == reference.crc
    assert native(memoryview(data), 0) == reference.crc
    cut = rng.randrange(0, len(data) + 1)
    assert native(data[cut:], native(data[:cut], 0)) == reference.crc  # continuing from a finished CRC


def test_check_value_and_empty_input() -> None:
    assert crc64_function()(b"123456789", 0) == 0x995DC9BBDF1939FA  # CRC-64/XZ's catalogue check value
    assert crc64_function()(b"", 0) == 0
    assert crc64_function()(b"", 12345) == 12345


def test_combine_equals_crc_of_the_concatenation() -> None:
    rng = random.Random(7)
    parts = [rng.randbytes(rng.randrange(1, 200_000)) for _ in range(5)]
    crc = crc64_function()
    whole = crc(b"".join(parts), 0)
    assert combine_parts([(crc(p, 0), len(p)) for p in parts]) == whole
    assert crc64_combine(crc(parts[0], 0), crc(parts[1], 0), len(parts[1])) == crc(parts[0] + parts[1], 0)
