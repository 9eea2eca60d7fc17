//! Which instruction-set extensions zo's CPU kernels may use: what this CPU has, capped by the
//! process's `ZO_MAX_ISA` (`zo --max-isa`), the way `ONEDNN_MAX_CPU_ISA`,
//! `MKL_ENABLE_INSTRUCTIONS` and `ATEN_CPU_CAPABILITY` cap the libraries torch runs on.
//!
//! Every run-time dispatch of zo's kernels (the products, the attention, the row operations,
//! the generator of the directions, the 16-bit conversions, `zo bench`'s peak probes) asks
//! here, so a cap makes an AVX-512 machine run the code an AVX2-only one (AMD Zen 3) runs, and
//! an AMX machine the code one without tiles runs: to time those paths, or to check that they
//! give the same results, without that hardware. The cap only removes extensions; it never
//! enables one the CPU lacks. The directions z are the same bits on every level (the generator's
//! contract); products and reductions may round differently from one level to another.
//!
//! Off x86-64 there is nothing to cap: every level reads as [`Level::Generic`].

use std::sync::OnceLock;

/// An x86-64 instruction-set level, narrowest first. Each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Portable code only (x86-64's baseline SSE2, as the compiler emits it).
    Generic,
    /// AVX2 with FMA, F16C, AES-NI and (where present) VAES on 256-bit vectors: Intel
    /// Haswell to Alder Lake, AMD Zen 1–3.
    Avx2,
    /// AVX-512 (F, VL): Intel Skylake-SP, Ice Lake.
    Avx512,
    /// AVX-512 with AVX512-BF16 (`vdpbf16ps`): AMD Zen 4 and 5, Intel Cooper Lake.
    Avx512Bf16,
    /// AVX-512 with AMX tiles (AMX-TILE, AMX-BF16): Intel Sapphire Rapids and later.
    Amx,
}

impl Level {
    /// Every level, narrowest first.
    pub const ALL: [Level; 5] = [
        Level::Generic,
        Level::Avx2,
        Level::Avx512,
        Level::Avx512Bf16,
        Level::Amx,
    ];

    /// The level's name, as `ZO_MAX_ISA` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            Level::Generic => "generic",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512bf16",
            Level::Amx => "amx",
        }
    }

    /// A level by name (ASCII case and `-`/`_` ignored, so `AVX512_BF16` reads as
    /// `avx512bf16`); `native` is the widest level, i.e. no cap.
    pub fn parse(text: &str) -> Result<Level, String> {
        let key: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if key == "native" {
            return Ok(Level::Amx);
        }
        Level::ALL
            .into_iter()
            .find(|l| l.name() == key)
            .ok_or_else(|| {
                format!(
                    "unknown instruction-set level {text:?} (expected one of: generic, avx2, \
                     avx512, avx512bf16, amx, native)"
                )
            })
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable that caps the level.
pub const ENV: &str = "ZO_MAX_ISA";

static MAX: OnceLock<Level> = OnceLock::new();

/// `ZO_MAX_ISA` as set in the environment: `Ok(None)` where it is unset or empty.
pub fn env_max() -> Result<Option<Level>, String> {
    match std::env::var(ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Level::parse(&v)
            .map(Some)
            .map_err(|e| format!("{ENV}={v}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{ENV}: not valid UTF-8 (expected a level name)"))
        }
    }
}

/// Caps the level of this process at `level`. It must come before the first kernel asks
/// ([`max`] fixes the cap on first use): `Err` with the cap in force otherwise, unless that
/// is `level` already.
pub fn set_max(level: Level) -> Result<(), Level> {
    let set = *MAX.get_or_init(|| level);
    if set == level {
        Ok(())
    } else {
        Err(set)
    }
}

/// The cap in force: the one [`set_max`] gave, else `ZO_MAX_ISA` (read once; a value that does
/// not parse counts as no cap, after a warning: the `zo` binary refuses it before this runs),
/// else none ([`Level::Amx`]).
pub fn max() -> Level {
    *MAX.get_or_init(|| match env_max() {
        Ok(l) => l.unwrap_or(Level::Amx),
        Err(e) => {
            tracing::warn!("{e}; using every extension the CPU has");
            Level::Amx
        }
    })
}

/// Whether the cap allows `level`'s extensions (not whether the CPU has them).
#[inline]
pub fn allows(level: Level) -> bool {
    level <= max()
}

/// The widest level this CPU supports, whatever the cap (AMX counted where the CPU reports
/// its tiles; whether the OS lets the process use them is the AMX kernel's own check). Read
/// once: CPUID exits to the hypervisor in a VM.
pub fn detected() -> Level {
    static DETECTED: OnceLock<Level> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c") && has!("aes");
        let avx512 = avx2 && has!("avx512f") && has!("avx512vl");
        let bf16 = avx512 && has!("avx512bf16");
        // CPUID.(EAX=7, ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE; leaf 7 exists on every
        // CPU with AVX-512.
        let amx = bf16 && {
            let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
            edx & (1 << 22) != 0 && edx & (1 << 24) != 0
        };
        match (avx2, avx512, bf16, amx) {
            (_, _, _, true) => Level::Amx,
            (_, _, true, _) => Level::Avx512Bf16,
            (_, true, _, _) => Level::Avx512,
            (true, _, _, _) => Level::Avx2,
            _ => Level::Generic,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Level::Generic
    }
}

/// The CPU's brand string (CPUID leaves `0x8000_0002..=0x8000_0004`, as `/proc/cpuinfo`'s
/// `model name`), trimmed; `None` off x86-64 or where the CPU does not report one.
pub fn brand() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        if __cpuid(0x8000_0000).eax < 0x8000_0004 {
            return None;
        }
        let mut bytes = Vec::with_capacity(48);
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            let r = __cpuid(leaf);
            for w in [r.eax, r.ebx, r.ecx, r.edx] {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!text.is_empty()).then(|| text.to_string())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The level the kernels run at: the CPU's, capped.
pub fn level() -> Level {
    detected().min(max())
}

/// AVX2 and FMA: on the CPU and allowed.
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        allows(Level::Avx2)
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512F: on the CPU and allowed.
#[inline]
pub fn avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        allows(Level::Avx512) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512F with AVX512-BF16: on the CPU and allowed.
#[inline]
pub fn avx512bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        allows(Level::Avx512Bf16)
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A one-line description for logs and `zo bench`: the level in use, and the CPU's when a cap
/// lowers it (`avx2 (avx512bf16 capped by ZO_MAX_ISA=avx2)`).
pub fn describe() -> String {
    let (det, now) = (detected(), level());
    if now < det {
        format!("{now} ({det} capped by {ENV}={})", max())
    } else {
        now.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_native_is_the_widest() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Ok(l));
            assert_eq!(Level::parse(&l.name().to_uppercase()), Ok(l));
        }
        assert_eq!(Level::parse("AVX512_BF16"), Ok(Level::Avx512Bf16));
        assert_eq!(Level::parse(" native "), Ok(Level::Amx));
        let err = Level::parse("avx1024").unwrap_err();
        assert!(err.contains("\"avx1024\"") && err.contains("avx2"), "{err}");
        assert!(Level::parse("").is_err());
    }

    #[test]
    fn levels_are_ordered_narrowest_first() {
        assert!(Level::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    /// The cap never adds an extension: a predicate that holds implies the CPU has it, and
    /// the level in use is never above the detected one.
    #[test]
    fn the_cap_only_removes() {
        assert!(level() <= detected());
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            assert!(!avx2_fma() || (has!("avx2") && has!("fma")));
            assert!(!avx512f() || has!("avx512f"));
            assert!(!avx512bf16() || has!("avx512bf16"));
            assert_eq!(avx512f(), has!("avx512f") && allows(Level::Avx512));
        }
    }
}
