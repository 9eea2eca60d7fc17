#!/usr/bin/env python3
"""Tiny synthetic CIFAR parquet fixtures in the hub's schema (uoft-cs/cifar10:
`img: struct<bytes: binary, path: string>, label: int64`; uoft-cs/cifar100: `img`,
`fine_label: int64`, `coarse_label: int64`), PNG bytes written by hand (zlib only).

Pixel (image i, channel c, row y, col x) = (37 i + 71 c + 5 y + 3 x) % 256 — tests/cifar.rs
recomputes it. Image 1 of cifar10 is stored as RGBA (alpha dropped on read) and image 2 as
greyscale (its channel-0 value repeated in R, G, B). Run: python3 tools/make_cifar_parquet.py
(needs pyarrow). Output: tests/data/cifar*.parquet, written atomically.
"""
import os
import struct
import zlib

import pyarrow as pa
import pyarrow.parquet as pq


def px(i, c, y, x):
    return (37 * i + 71 * c + 5 * y + 3 * x) % 256


def png(width, height, color_type, channels, pixel):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(pixel(y, x, ch) for x in range(width) for ch in range(channels))
                   for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def rgb(i):
    return png(32, 32, 2, 3, lambda y, x, c: px(i, c, y, x))


def rgba(i):
    return png(32, 32, 6, 4, lambda y, x, c: 255 if c == 3 else px(i, c, y, x))


def grey(i):
    return png(32, 32, 0, 1, lambda y, x, c: px(i, 0, y, x))


IMG = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def write(name, schema, rows):
    out = os.path.join(here, name)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out + ".tmp", compression="snappy")
    os.replace(out + ".tmp", out)
    print("wrote", out)


s10 = pa.schema([("img", IMG), ("label", pa.int64())])
write("cifar10_tiny.parquet", s10, [
    {"img": {"bytes": rgb(0), "path": None}, "label": 3},
    {"img": {"bytes": rgba(1), "path": None}, "label": 9},
    {"img": {"bytes": grey(2), "path": None}, "label": 0},
])
write("cifar10_bad_label.parquet", s10, [{"img": {"bytes": rgb(0), "path": None}, "label": 10}])
write("cifar10_small_image.parquet", s10, [{"img": {"bytes": png(16, 16, 2, 3, lambda y, x, c: 0), "path": None}, "label": 1}])
s100 = pa.schema([("img", IMG), ("fine_label", pa.int64()), ("coarse_label", pa.int64())])
write("cifar100_tiny.parquet", s100, [
    {"img": {"bytes": rgb(0), "path": None}, "fine_label": 99, "coarse_label": 19},
    {"img": {"bytes": rgb(1), "path": None}, "fine_label": 42, "coarse_label": 7},
])
