//! Python 3 `str` semantics that MeZO's templates and metrics rely on.
//!
//! MeZO strips and splits with Python's `str.strip()` / `str.split()`, whose notion of whitespace
//! (`str.isspace`) is Rust's `char::is_whitespace` (Unicode `White_Space`) **plus** the four
//! information separators U+001C..U+001F (bidi class B/S). docs/PROTOCOL.md 7.6 notes that the
//! metric depends on this, so every strip/split in this crate goes through these helpers.
//! `tools/check_pystr.py` verifies the claim over every code point against CPython.

/// Python's `str.isspace()` for a single character.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `s.strip()` (no argument): removes leading and trailing Python whitespace.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python `s.lstrip()` (no argument).
pub fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(is_py_space)
}

/// Python `s.rstrip()` (no argument).
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// Python `s.strip(' ')`: removes ASCII spaces only (not tabs or newlines). MeZO's
/// `encode_prompt` uses this on the template outputs, so RTE's trailing `"\n"` survives.
pub fn strip_spaces(s: &str) -> &str {
    s.trim_matches(' ')
}

/// Python `s.split()` (no argument): split on runs of Python whitespace, no empty pieces.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn information_separators_are_whitespace_like_python() {
        for c in [
            '\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}', '\u{85}', '\u{a0}', '\u{3000}', '\x0b',
        ] {
            assert!(is_py_space(c), "{c:?}");
        }
        // Not whitespace in Python: zero-width space, BOM, mongolian vowel separator.
        for c in ['\u{200b}', '\u{feff}', '\u{180e}', 'a', '_'] {
            assert!(!is_py_space(c), "{c:?}");
        }
        assert_eq!(
            py_split("a\u{1f}b \u{a0} c\n").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(py_strip("\u{1c} x \t"), "x");
        assert_eq!(py_lstrip("\n\n x "), "x ");
        assert_eq!(py_rstrip(" x \u{1d}"), " x");
        assert_eq!(strip_spaces("  x\n "), "x\n");
        assert_eq!(py_split("").count(), 0);
    }
}
