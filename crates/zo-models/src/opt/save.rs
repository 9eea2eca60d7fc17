//! TODO (issue 3).
