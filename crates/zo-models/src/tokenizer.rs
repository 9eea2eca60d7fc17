//! OPT tokenizer (issue 3).
