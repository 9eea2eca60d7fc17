//! OPT and ResNet on candle. See crates/zo-models (issue 3).
