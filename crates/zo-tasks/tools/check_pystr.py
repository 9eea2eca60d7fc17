#!/usr/bin/env python3
"""Checks, over every Unicode code point, the two claims src/pystr.rs and src/metrics.rs make
about CPython 3 `str` semantics:

1. `str.isspace()` is exactly Unicode White_Space (what Rust's `char::is_whitespace` uses)
   plus U+001C..U+001F;
2. `re`'s `\\w` for str patterns is exactly general category L* or N*, or "_" (the class
   `[\\p{L}\\p{N}_]` that metrics.rs builds `\\b` from).

Plain CPython 3; prints the first mismatches and exits non-zero on any. (Checked with 3.11.)
"""
import re
import sys
import unicodedata

# Unicode PropList.txt White_Space (stable since Unicode 6.3).
WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680} | set(range(0x2000, 0x200B)) \
    | {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
PY_SPACE = WHITE_SPACE | set(range(0x1C, 0x20))

word = re.compile(r"\w")
bad = []
for cp in range(sys.maxunicode + 1):
    c = chr(cp)
    if c.isspace() != (cp in PY_SPACE):
        bad.append(("isspace", hex(cp)))
    cat = unicodedata.category(c)
    if bool(word.match(c)) != (cat[0] in "LN" or c == "_"):
        bad.append(("\\w", hex(cp), cat))
print("unicodedata", unicodedata.unidata_version, "mismatches:", len(bad), bad[:10])
sys.exit(1 if bad else 0)
