//! Hugging Face hub resolution (issue 3).
