//! ResNet-18/50/101/152 (issue 3).
