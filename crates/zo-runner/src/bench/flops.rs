//! FLOP counts of one OPT forward, counted exactly as the peer benchmark counts them
//! (`flop_count` in docs/peer/mezo_torch_bench.py, stated in docs/peer/README.md):
//!
//!   2·N·(linear weights, lm_head included) + 4·L·B·T²·H
//!
//! with N = B·T tokens, linear weights = L·(4H² + 2H·F) + project_in/out (2·H·E when E ≠ H) +
//! V·E (the tied lm_head), and the attention term counting the full T×T square per head (QKᵀ and
//! P·V), which is what sdpa/eager compute on CPU. Biases, LayerNorm, softmax and the loss are
//! not counted (as in the peer). Using the peer's count makes GFLOP/s comparable across the two.

use serde::Serialize;
use zo_models::OptConfig;

/// The FLOP budget of one forward + loss on a `[b, t]` batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Flops {
    /// B·T.
    pub tokens: u64,
    /// Weights of every linear layer, lm_head included.
    pub linear_weights: u64,
    /// 2·N·linear_weights.
    pub linear_flops: u64,
    /// 2·N·V·E: the lm_head at every position.
    pub lm_head_flops: u64,
    /// 4·L·B·T²·H.
    pub attention_flops: u64,
    /// linear + attention: the peer's `forward_flops`.
    pub forward_flops: u64,
}

/// The peer's count for `cfg` at batch `b`, length `t`.
pub fn forward_flops(cfg: &OptConfig, b: usize, t: usize) -> Flops {
    let (h, l, f, v) = (
        cfg.hidden_size as u64,
        cfg.num_hidden_layers as u64,
        cfg.ffn_dim as u64,
        cfg.vocab_size as u64,
    );
    let e = cfg.embed_dim() as u64;
    let (b, t) = (b as u64, t as u64);
    let n = b * t;
    let layer_linear = l * (4 * h * h + 2 * h * f);
    let proj = if e == h { 0 } else { 2 * h * e };
    let lm_head = v * e;
    let linear_weights = layer_linear + proj + lm_head;
    let linear_flops = 2 * n * linear_weights;
    let attention_flops = 4 * l * b * t * t * h;
    Flops {
        tokens: n,
        linear_weights,
        linear_flops,
        lm_head_flops: 2 * n * lm_head,
        attention_flops,
        forward_flops: linear_flops + attention_flops,
    }
}

impl Flops {
    /// The count when the lm_head runs at `rows` positions only (zo computes logits only where
    /// the loss reads them): the lm_head FLOPs of the other positions are subtracted.
    pub fn with_logit_rows(&self, rows: u64) -> u64 {
        let per_row = self.lm_head_flops / self.tokens.max(1);
        self.forward_flops - per_row * self.tokens.saturating_sub(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zo_models::opt::Preset;

    /// docs/peer/README.md: "FLOPs of one 125m forward at B×T = N tokens:
    /// 2·N·123,543,552 (linear layers, of which the lm_head is 2·N·38,608,896) +
    /// 4·12·B·T²·768", and docs/PERFORMANCE.md's 255 GFLOP at B16 T64 (176 without the lm_head on
    /// the positions the loss ignores).
    #[test]
    fn opt125m_matches_the_readme() {
        let cfg = OptConfig::preset(Preset::Opt125m);
        let f = forward_flops(&cfg, 16, 64);
        assert_eq!(f.linear_weights, 123_543_552);
        assert_eq!(f.lm_head_flops, 2 * 1024 * 38_608_896);
        assert_eq!(f.attention_flops, 4 * 12 * 16 * 64 * 64 * 768);
        assert_eq!(
            f.forward_flops,
            2 * 1024 * 123_543_552 + 4 * 12 * 16 * 64 * 64 * 768
        );
        assert_eq!((f.forward_flops as f64 / 1e9).round(), 255.0);
        // Task loss: one logit row per sequence.
        let task = f.with_logit_rows(16) as f64 / 1e9;
        assert!((176.0..178.5).contains(&task), "{task}");
        assert_eq!(f.with_logit_rows(f.tokens), f.forward_flops);
    }

    /// opt-350m: E = 512 ≠ H = 1024, so project_in/out count and the lm_head is V·512.
    #[test]
    fn opt350m_counts_the_projections() {
        let cfg = OptConfig::preset(Preset::Opt350m);
        let f = forward_flops(&cfg, 1, 1);
        let layers = 24 * (4 * 1024 * 1024 + 2 * 1024 * 4096);
        assert_eq!(f.linear_weights, layers + 2 * 1024 * 512 + 50_272 * 512);
    }
}
