//! ARS4x32 ("AES Randomized Schedule", Salmon, Moraes, Dror & Shaw, SC'11; Random123 `ars.h`)
//! in portable Rust: the scalar reference of the generator's block function, with the AES round
//! done in software (FIPS-197 §5.1, in the usual T-table form).
//!
//! ARS4x32-R on a 128-bit counter `c` and key `k` (both as four little-endian u32 words, the
//! byte order `_mm_loadu_si128` gives them):
//!
//! ```text
//! v = c ^ k
//! for r in 1..R:  k = k + W;  v = aesenc(v, k)        (R − 1 full rounds)
//! k = k + W;  v = aesenclast(v, k)
//! ```
//!
//! where `k + W` adds the Weyl increments (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B) to the two
//! 64-bit halves of the key independently (`_mm_add_epi64`). `aesenc` is one AES encryption
//! round (SubBytes, ShiftRows, MixColumns, then XOR of the round key), `aesenclast` the same
//! without MixColumns — exactly the x86 `AESENC` / `AESENCLAST` instructions, so the SIMD
//! kernels (`x86/`) use those and get the same bits. A GPU kernel has no AES instruction: it
//! computes the same rounds in software (this bytewise form, or the usual four 256-entry
//! T-tables in shared memory) and gets the same values.

use super::{ARS_ROUNDS, ARS_W0, ARS_W1};

/// The AES S-box, built at compile time from its definition (FIPS-197 §5.1.1: the
/// multiplicative inverse in GF(2⁸) mod x⁸+x⁴+x³+x+1, then the affine map with 0x63), so there
/// is no 256-entry table to mistype. Checked against FIPS-197 entries in the tests.
pub const SBOX: [u8; 256] = build_sbox();

/// Multiplication by x in GF(2⁸) ("xtime", FIPS-197 §4.2.1).
#[inline(always)]
const fn xtime(a: u8) -> u8 {
    (a << 1) ^ (((a >> 7) & 1) * 0x1b)
}

const fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        a = xtime(a);
        b >>= 1;
    }
    p
}

const fn build_sbox() -> [u8; 256] {
    let mut s = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        // Inverse as a^254 (0 maps to 0).
        let a = i as u8;
        let mut inv = 1u8;
        let mut k = 0;
        while k < 254 {
            inv = gf_mul(inv, a);
            k += 1;
        }
        if a == 0 {
            inv = 0;
        }
        s[i] = inv
            ^ inv.rotate_left(1)
            ^ inv.rotate_left(2)
            ^ inv.rotate_left(3)
            ^ inv.rotate_left(4)
            ^ 0x63;
        i += 1;
    }
    s
}

/// The AES "T-table" (FIPS-197 §5.1 folded, the classic software form): for an S-box input x,
/// the MixColumns column (2·S(x), S(x), S(x), 3·S(x)) as a little-endian word. Row r's table
/// is this word rotated left by 8r bits.
pub const TE0: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let s = SBOX[i];
        let s2 = xtime(s);
        let s3 = s2 ^ s;
        t[i] = u32::from_le_bytes([s2, s, s, s3]);
        i += 1;
    }
    t
};

/// One AES encryption round, as the x86 `AESENC` instruction: byte `4c + r` of the state is row
/// r, column c (FIPS-197 §3.4); `last` leaves out MixColumns (`AESENCLAST`). Column c of the
/// result takes row r from column (c + r) mod 4 (ShiftRows); with MixColumns that is the XOR
/// of four rotated T-table words, without it the four S-box bytes.
pub fn aes_round(state: [u32; 4], round_key: [u32; 4], last: bool) -> [u32; 4] {
    let byte = |c: usize, r: usize| usize::from((state[(c + r) % 4] >> (8 * r)) as u8);
    std::array::from_fn(|c| {
        let col = if last {
            u32::from_le_bytes([0, 1, 2, 3].map(|r| SBOX[byte(c, r)]))
        } else {
            TE0[byte(c, 0)]
                ^ TE0[byte(c, 1)].rotate_left(8)
                ^ TE0[byte(c, 2)].rotate_left(16)
                ^ TE0[byte(c, 3)].rotate_left(24)
        };
        col ^ round_key[c]
    })
}

#[cfg(test)]
fn to_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, x) in w.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    b
}

#[cfg(test)]
fn to_words(b: [u8; 16]) -> [u32; 4] {
    std::array::from_fn(|i| {
        u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// [`aes_round`] byte by byte, straight from FIPS-197 §5.1 (SubBytes, ShiftRows, MixColumns,
/// AddRoundKey): the tests check the T-table form against it on hosts without AES-NI too.
#[cfg(test)]
pub(crate) fn aes_round_bytewise(state: [u32; 4], round_key: [u32; 4], last: bool) -> [u32; 4] {
    let s = to_bytes(state);
    // SubBytes + ShiftRows: row r is rotated left by r columns.
    let mut t = [0u8; 16];
    for c in 0..4 {
        for r in 0..4 {
            t[r + 4 * c] = SBOX[usize::from(s[r + 4 * ((c + r) % 4)])];
        }
    }
    if !last {
        // MixColumns: each column times [2 3 1 1; 1 2 3 1; 1 1 2 3; 3 1 1 2].
        for c in 0..4 {
            let [a0, a1, a2, a3] = [t[4 * c], t[4 * c + 1], t[4 * c + 2], t[4 * c + 3]];
            let all = a0 ^ a1 ^ a2 ^ a3;
            t[4 * c] = a0 ^ all ^ xtime(a0 ^ a1);
            t[4 * c + 1] = a1 ^ all ^ xtime(a1 ^ a2);
            t[4 * c + 2] = a2 ^ all ^ xtime(a2 ^ a3);
            t[4 * c + 3] = a3 ^ all ^ xtime(a3 ^ a0);
        }
    }
    let out = to_words(t);
    std::array::from_fn(|i| out[i] ^ round_key[i])
}

/// The key of round `r` (0 = the key itself): the Weyl schedule `k + r·W` on the two 64-bit
/// halves (Random123 `ars.h`, `kweyl`).
#[inline]
pub const fn round_key(key: [u32; 4], r: u32) -> [u32; 4] {
    let lo = (key[0] as u64 | (key[1] as u64) << 32).wrapping_add(ARS_W0.wrapping_mul(r as u64));
    let hi = (key[2] as u64 | (key[3] as u64) << 32).wrapping_add(ARS_W1.wrapping_mul(r as u64));
    [lo as u32, (lo >> 32) as u32, hi as u32, (hi >> 32) as u32]
}

/// ARS4x32 with `rounds` rounds (Random123's `ars4x32_R(R, ctr, key)`, 1 ≤ R).
pub fn ars4x32_r(rounds: u32, ctr: [u32; 4], key: [u32; 4]) -> [u32; 4] {
    assert!(rounds >= 1, "ARS needs at least one round");
    let mut v: [u32; 4] = std::array::from_fn(|i| ctr[i] ^ key[i]);
    for r in 1..rounds {
        v = aes_round(v, round_key(key, r), false);
    }
    aes_round(v, round_key(key, rounds), true)
}

/// The generator's block function: ARS4x32 with [`ARS_ROUNDS`] rounds.
#[inline]
pub fn ars4x32(ctr: [u32; 4], key: [u32; 4]) -> [u32; 4] {
    ars4x32_r(ARS_ROUNDS, ctr, key)
}
