#!/usr/bin/env python3
"""A GGUF with the real model's header and random weights of the same shapes and formats.

Why: the device machine used for GPU timings takes at most 64 MiB per call and reaches no
network, and the real SmolLM2-135M GGUF is 94 MiB. Speed does not depend on the weights' values,
so the timing runs there use this file: the real metadata (tokenizer, hyper-parameters) and
tensor table, each tensor filled with valid blocks of its own type. Scores from it mean nothing;
they are only compared between devices.

  gguf-synth.py strip REAL.gguf HEADER      # header bytes only (~2 MiB), here
  gguf-synth.py fill HEADER OUT.gguf        # the full-size file, there (pure Python, no numpy)
"""

import os
import struct
import sys

# ggml type -> (elements per block, bytes per block)
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34)}
NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0"}
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            sys.exit(f"truncated GGUF header at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return self.take(self.u64()).decode("utf-8", "replace")

    def value(self, kind):
        if kind in SCALAR:
            raw = self.take(SCALAR[kind])
            return struct.unpack({4: "<I", 10: "<Q"}[kind], raw)[0] if kind in (4, 10) else raw
        if kind == 8:
            return self.string()
        if kind == 9:
            inner, n = self.u32(), self.u64()
            for _ in range(n):
                self.value(inner)
            return None
        sys.exit(f"unknown GGUF value type {kind} at byte {self.pos}")


def parse(data):
    r = Reader(data)
    if r.take(4) != b"GGUF":
        sys.exit("not a GGUF file")
    version = r.u32()
    if version < 2:
        sys.exit(f"GGUF version {version} is not supported")
    n_tensors, n_kv = r.u64(), r.u64()
    alignment = 32
    for _ in range(n_kv):
        key, kind = r.string(), r.u32()
        value = r.value(kind)
        if key == "general.alignment":
            alignment = value
    tensors = []
    for _ in range(n_tensors):
        name, n_dims = r.string(), r.u32()
        dims = [r.u64() for _ in range(n_dims)]
        ggml, offset = r.u32(), r.u64()
        tensors.append((name, dims, ggml, offset))
    start = (r.pos + alignment - 1) // alignment * alignment
    return tensors, start


def nbytes(dims, ggml):
    if ggml not in BLOCKS:
        sys.exit(f"tensor type {ggml} is not handled (F32, F16, Q4_0, Q4_1, Q8_0 are)")
    per, size = BLOCKS[ggml]
    count = 1
    for d in dims:
        count *= d
    return count // per * size


def f16(x):
    return struct.pack("<e", x)


def fill_tensor(dims, ggml):
    n = nbytes(dims, ggml)
    if ggml == 0:  # norms: ones keep activations in range through 30 blocks
        return struct.pack("<f", 1.0) * (n // 4)
    if ggml == 1:
        return f16(0.01) * (n // 2)
    per, size = BLOCKS[ggml]
    blocks = n // size
    buf = bytearray(os.urandom(n))
    # Scales small enough that weights look like a trained model's (|w| ~ 0.02).
    d = f16(0.002 if ggml != 8 else 0.0002)
    for i in range(2):
        buf[i::size] = d[i : i + 1] * blocks
    if ggml == 3:  # Q4_1 has a minimum after the scale: centre the nibbles on zero
        m = f16(-0.016)
        for i in range(2):
            buf[2 + i :: size] = m[i : i + 1] * blocks
    return bytes(buf)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("strip", "fill"):
        sys.exit(__doc__)
    mode, src, dst = sys.argv[1:]
    if mode == "strip":
        with open(src, "rb") as f:
            data = f.read()
        _, start = parse(data)
        with open(dst, "wb") as f:
            f.write(data[:start])
        print(f"{dst}: {start} header bytes of {len(data)}")
        return
    with open(src, "rb") as f:
        header = f.read()
    tensors, start = parse(header)
    if start != len(header):
        sys.exit(f"{src} is not a stripped header ({len(header)} bytes, data starts at {start})")
    with open(dst, "wb") as out:
        out.write(header)
        for name, dims, ggml, offset in sorted(tensors, key=lambda t: t[3]):
            pos = out.tell() - start
            if offset < pos:
                sys.exit(f"tensor {name} overlaps the one before it")
            out.write(b"\0" * (offset - pos))
            out.write(fill_tensor(dims, ggml))
    kinds = sorted({NAMES[t[2]] for t in tensors})
    print(f"{dst}: {len(tensors)} tensors ({', '.join(kinds)}), {os.path.getsize(dst)} bytes")


if __name__ == "__main__":
    main()
