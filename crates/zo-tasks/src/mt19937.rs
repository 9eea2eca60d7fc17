//! numpy's legacy global RNG, reproduced for MeZO's subset sampling.
//!
//! MeZO draws its train/dev/test subsets with `np.random.seed(seed);
//! np.random.permutation(n)` (`large_models/tasks.py`, `sample_subset`). With an integer seed,
//! numpy's legacy `RandomState` is MT19937 seeded by `init_genrand` (numpy `_mt19937.pyx`,
//! `_legacy_seeding` → `mt19937_seed`), and `permutation(n)` is a backward Fisher–Yates shuffle of
//! `arange(n)` whose index draws use `random_interval` (numpy `distributions.c`): mask the
//! 32-bit output down to the smallest all-ones mask covering `max`, reject values above `max`.
//!
//! Written here (about 40 lines) instead of pulling in a crate because what must match is not
//! only MT19937 but numpy's seeding and its *masked rejection* draw; the test vectors of
//! docs/PROTOCOL.md 1.7 (in `tests/sampling.rs`) pin all three down.

const N: usize = 624;
const M: usize = 397;

/// Mersenne Twister MT19937 (Matsumoto & Nishimura 1998), 32-bit output.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    pos: usize,
}

impl Mt19937 {
    /// `init_genrand(seed)`, which is what `np.random.seed(seed)` does for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, pos: N }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// Next tempered 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `random_interval(max)`: uniform integer in `[0, max]` by masked rejection.
    /// Only the 32-bit branch exists here: every caller's `max` fits in `u32`.
    pub fn random_interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

/// `np.random.seed(seed); np.random.permutation(n).tolist()`.
///
/// # Panics
/// Never for `n <= u32::MAX + 1`; larger pools are rejected by [`crate::sampling`] first.
pub fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut rng = Mt19937::new(seed);
    let mut a: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // `i < n <= 2^32`, so it fits in u32 (checked by callers through `sampling`).
        let j = rng.random_interval(i as u32) as usize;
        a.swap(i, j);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference outputs of MT19937 with `init_genrand(5489)` (the generator's default seed):
    /// the first outputs published with the original mt19937ar.c and reproduced by C++'s
    /// `std::mt19937` (its 10000th output is 4123659995, required by the C++ standard).
    #[test]
    fn mt19937_matches_the_reference_outputs() {
        let mut rng = Mt19937::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
        assert_eq!(rng.next_u32(), 581_869_302);
        assert_eq!(rng.next_u32(), 3_890_346_734);
        let mut rng = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn random_interval_zero_and_bounds() {
        let mut rng = Mt19937::new(1);
        assert_eq!(rng.random_interval(0), 0);
        for max in [1u32, 2, 3, 7, 8, 999, u32::MAX] {
            for _ in 0..50 {
                assert!(rng.random_interval(max) <= max);
            }
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        let p = numpy_permutation(1000, 3);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(numpy_permutation(0, 0), Vec::<usize>::new());
        assert_eq!(numpy_permutation(1, 0), vec![0]);
    }
}
