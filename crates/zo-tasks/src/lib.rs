//! MeZO task protocol. See crates/zo-tasks (issue 4).
