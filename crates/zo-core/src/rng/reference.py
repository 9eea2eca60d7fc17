#!/usr/bin/env python3
"""Independent pure-Python reference of the zo-core direction generator (rng/mod.rs contract).

Prints the Rust table pinned in rng/tests.rs (`REFERENCE`): for a few (seed, step, tensor,
element, distribution), the ARS words of the element's block, of the block of its Box-Muller
partner, and z computed in f64 from those words. The Rust f32 generator must match the words
exactly and z to ~1e-6.

Generator version 3 (rng::GENERATOR_VERSION): ARS4x32-7 (Random123 `ars.h`), element e = word
e % 4 of block e / 4, Box-Muller pairs (e, e + 16) in runs of 32. The AES round is written here
from FIPS-197 independently of the Rust code (S-box from the GF(2^8) inverse, MixColumns by
its matrix). Version 2 was Philox4x32-7 (see git history of this file).

Regenerate:  python3 crates/zo-core/src/rng/reference.py
"""
import math

MASK32, MASK64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
W0, W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B
ROUNDS = 7  # rng::ARS_ROUNDS

# Random123 kat_vectors lines "ars4x32 R ctr0..3 key0..3 out0..3" (u32 words): checked before
# printing, and pinned in rng/tests.rs (`ars_known_answers`).
KAT = [
    (7, [0x00000001, 0, 0, 0], [0, 0, 0x0000FF00, 0], [0xE207ECB3, 0x210B891C, 0x856C8786, 0xD570D667]),
    (7, [0x886A3F24, 0xD308A385, 0x2E8A1913, 0x44737003], [0, 0, 0x00000080, 0],
     [0xEF14EB2A, 0x8375A2FB, 0x6079B492, 0xA44DC69A]),
    (7, [0xE6212845, 0x7713D038, 0xCF6654BE, 0x6C0CE934], [0, 0, 0x0000FF00, 0],
     [0x9A7F1259, 0x37D979C6, 0xCE278C27, 0x96D67BB3]),
    (7, [0x80000000, 0, 0, 0], [0, 0, 0x00008000, 0], [0x11F1FC59, 0x0D452E4B, 0x22A34320, 0xD6837E2B]),
    (10, [0xE6212845, 0x7713D038, 0xCF6654BE, 0x6C0CE934], [0, 0x01000000, 0, 0],
     [0xFA481E8A, 0x4AEE6A4A, 0x3743C22B, 0x43C29A06]),
    (10, [0x886A3F24, 0xD308A385, 0x2E8A1913, 0x44737003], [0, 0, 0, 0x00800000],
     [0xE6C0191D, 0x261DCEBC, 0xD41BBE82, 0x8E6E9730]),
    (10, [0x00000001, 0, 0, 0], [0, 0, 0, 0x80000000], [0xFB029BDE, 0xC66DCDA0, 0xD5E37E9E, 0xB16153F4]),
]


def gmul(a, b):
    p = 0
    while b:
        if b & 1:
            p ^= a
        a = ((a << 1) ^ (0x11B if a & 0x80 else 0)) & 0xFF
        b >>= 1
    return p


def _sbox():
    s = []
    for a in range(256):
        inv = next((x for x in range(1, 256) if gmul(a, x) == 1), 0)
        rot = lambda v, n: ((v << n) | (v >> (8 - n))) & 0xFF
        s.append(inv ^ rot(inv, 1) ^ rot(inv, 2) ^ rot(inv, 3) ^ rot(inv, 4) ^ 0x63)
    return s


SBOX = _sbox()
assert SBOX[0x00] == 0x63 and SBOX[0x01] == 0x7C and SBOX[0x53] == 0xED  # FIPS-197 Fig. 7


def words_to_bytes(w):
    return [(x >> (8 * i)) & 0xFF for x in w for i in range(4)]


def bytes_to_words(b):
    return [sum(b[4 * j + i] << (8 * i) for i in range(4)) for j in range(4)]


def aes_round(state, rk, last):
    """AESENC / AESENCLAST on u32 words; byte 4c + r is row r, column c (FIPS-197 3.4)."""
    s = words_to_bytes(state)
    t = [0] * 16
    for c in range(4):
        for r in range(4):
            t[r + 4 * c] = SBOX[s[r + 4 * ((c + r) % 4)]]
    if not last:
        m = [[2, 3, 1, 1], [1, 2, 3, 1], [1, 1, 2, 3], [3, 1, 1, 2]]
        t = [
            gmul(m[r][0], t[4 * c]) ^ gmul(m[r][1], t[4 * c + 1]) ^ gmul(m[r][2], t[4 * c + 2])
            ^ gmul(m[r][3], t[4 * c + 3])
            for c in range(4) for r in range(4)
        ]
    return [x ^ k for x, k in zip(bytes_to_words(t), rk)]


def round_key(key, r):
    lo = (key[0] | key[1] << 32) + r * W0 & MASK64
    hi = (key[2] | key[3] << 32) + r * W1 & MASK64
    return [lo & MASK32, lo >> 32, hi & MASK32, hi >> 32]


def ars4x32(ctr, key, rounds=ROUNDS):
    v = [c ^ k for c, k in zip(ctr, key)]
    for r in range(1, rounds):
        v = aes_round(v, round_key(key, r), False)
    return aes_round(v, round_key(key, rounds), True)


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def ars_key(seed, step):
    k = mix64(seed ^ mix64((step + 0x9E3779B97F4A7C15) & MASK64))
    return [k & MASK32, k >> 32, 0, 0]


def to_i32(x):
    x &= MASK32
    return x - (1 << 32) if x >= 1 << 31 else x


def normal_pair(a, b):
    u = ((a >> 8) + 1) / 2**24
    r = math.sqrt(-2.0 * math.log(u))
    q = ((b + (1 << 29)) & MASK32) >> 30
    ri = to_i32(b - (q << 30)) >> 8
    theta = 2 * math.pi * (q / 4 + ri / 2**24)
    return r * math.cos(theta), r * math.sin(theta)


def block_words(seed, step, tensor, elem):
    b = elem // 4
    return ars4x32([b & MASK32, b >> 32, tensor, 0], ars_key(seed, step))


def z(seed, step, tensor, elem, dist):
    """(words of elem's block, words of its Box-Muller partner's block, z)."""
    w = block_words(seed, step, tensor, elem)
    first = elem % 32 < 16
    partner = elem + 16 if first else elem - 16
    pw = block_words(seed, step, tensor, partner)
    mine = w[elem % 4]
    if dist == "Normal":
        a, b = (mine, pw[partner % 4]) if first else (pw[partner % 4], mine)
        v = normal_pair(a, b)[0 if first else 1]
    elif dist == "Rademacher":
        v = -1.0 if mine >> 31 else 1.0
    else:
        v = -math.sqrt(3) + (2 * (mine >> 8) + 1) * math.sqrt(3) / 2**24
    return w, pw, v


CASES = [
    (0, 0, 0, 0, "Normal"), (0, 0, 0, 1, "Normal"), (0, 0, 0, 17, "Normal"),
    (0, 0, 0, 50, "Normal"), (42, 7, 3, 1000, "Normal"), (42, 7, 3, 1001, "Normal"),
    (1234567, 99999, 191, 38_597_631, "Normal"), (5, 1 << 40, 2, (1 << 38) + 77, "Normal"),
    (42, 7, 3, 1000, "Rademacher"), (42, 7, 3, 1002, "Rademacher"),
    (42, 7, 3, 1000, "Uniform"), (9, 9, 9, 123_456, "Uniform"),
]

if __name__ == "__main__":
    for rounds, ctr, key, want in KAT:
        assert ars4x32(ctr, key, rounds) == want, (rounds, ctr, key)
    print("// Generated by crates/zo-core/src/rng/reference.py:")
    print("// (seed, step, tensor, elem, dist, words of its block, words of its partner's block, z)")
    print("const REFERENCE: &[Pinned] = &[")
    for seed, step, t, e, d in CASES:
        w, pw, v = z(seed, step, t, e, d)
        ws = ", ".join(f"0x{x:08x}" for x in w)
        ps = ", ".join(f"0x{x:08x}" for x in pw)
        print(f"    ({seed}, {step}, {t}, {e}, Distribution::{d}, [{ws}], [{ps}], {v!r}),")
    print("];")
