//! FLOP counts of one OPT forward, counted exactly as the peer benchmark counts them
//! (`flop_count` in docs/peer/mezo_torch_bench.py, stated in docs/peer/README.md):
//!
//!   2·N·(linear weights, lm_head included) + 4·L·B·T²·H
//!
//! with N = B·T tokens, linear weights = L·(4H² + 2H·F) + project_in/out (2·H·E when E ≠ H) +
//! V·E (the tied lm_head), and the attention term counting the full T×T square per head (QKᵀ and
//! P·V), which is what sdpa/eager compute on CPU. Biases, LayerNorm, softmax and the loss are
//! not counted (as in the peer). Using the peer's count makes GFLOP/s comparable across the two.
//!
//! What zo computes is counted the same way ([`Flops::at_rows`]): where a loss reads few
//! positions, the lm_head runs there only, and so do the last layer's queries, attention output,
//! MLP and `project_out` (its keys and values cover every position).

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
    /// Of one token's linear FLOPs, those of the last layer and `project_out` that run only at
    /// the rows read when the loss reads few (all but the key and value projections):
    /// 2·(2H² + 2HF) + 2·H·E (E ≠ H), 0 without layers.
    last_rest_per_token: u64,
    /// T·H: per query row and layer, the attention term is 4·T·H.
    keys_times_h: u64,
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
    let has_layers = u64::from(l > 0);
    let project_out = if e == h { 0 } else { 2 * h * e };
    Flops {
        tokens: n,
        linear_weights,
        linear_flops,
        lm_head_flops: 2 * n * lm_head,
        attention_flops,
        forward_flops: linear_flops + attention_flops,
        last_rest_per_token: has_layers * (2 * (2 * h * h + 2 * h * f) + project_out),
        keys_times_h: t * h,
    }
}

impl Flops {
    /// The count when the lm_head runs at `rows` positions only (zo computes logits only where
    /// the loss reads them): the lm_head FLOPs of the other positions are subtracted.
    pub fn with_logit_rows(&self, rows: u64) -> u64 {
        let per_row = self.lm_head_flops / self.tokens.max(1);
        self.forward_flops - per_row * self.tokens.saturating_sub(rows)
    }

    /// What zo computes for a loss that reads `rows` positions: [`Self::with_logit_rows`], less,
    /// where the model runs its last layer at those rows only
    /// ([`zo_models::opt::model::last_layer_at_rows_only`]), that layer's queries, attention
    /// (`rows` queries against the `T` keys of their sequence), attention output, MLP and
    /// `project_out` at the other positions.
    pub fn at_rows(&self, rows: u64) -> u64 {
        let counted = self.with_logit_rows(rows);
        let (n, rows) = (self.tokens, rows.min(self.tokens));
        if self.last_rest_per_token == 0
            || !zo_models::opt::model::last_layer_at_rows_only(rows as usize, n as usize)
        {
            return counted;
        }
        let skipped_rows = n - rows;
        counted - skipped_rows * (self.last_rest_per_token + 4 * self.keys_times_h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zo_models::opt::Preset;

    /// docs/peer/README.md: "FLOPs of one 125m forward at B×T = N tokens:
    /// 2·N·123,543,552 (linear layers, of which the lm_head is 2·N·38,608,896) +
    /// 4·12·B·T²·768", docs/PERFORMANCE.md's 255 GFLOP at B16 T64, and its 165.5 GFLOP for
    /// the task loss (what zo computes when the loss reads one position per sequence).
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
        // What zo computes for it: 11 whole layers; the last one's keys and values at all 1024
        // positions, the rest of it at the 16 rows (attention: 16 queries × 64 keys); the
        // lm_head at the 16 rows.
        let (n, h, ffn, v) = (1024u64, 768u64, 3072u64, 50_272u64);
        let layer = 2 * (4 * h * h + 2 * h * ffn);
        let expected = 11 * n * layer
            + n * 2 * 2 * h * h
            + 16 * 2 * (2 * h * h + 2 * h * ffn)
            + 11 * 4 * 16 * 64 * 64 * h
            + 4 * 16 * 64 * h
            + 2 * 16 * v * h;
        assert_eq!(f.at_rows(16), expected);
        assert_eq!(expected, 165_508_546_560);
        // The full LM loss reads 1008 of 1024 positions: the whole forward runs.
        assert_eq!(f.at_rows(1008), f.with_logit_rows(1008));
        // The boundary is the model's: a quarter of the positions still runs at the rows.
        assert!(f.at_rows(256) < f.with_logit_rows(256));
        assert_eq!(f.at_rows(257), f.with_logit_rows(257));
    }

    /// opt-350m: E = 512 ≠ H = 1024, so project_in/out count and the lm_head is V·512.
    #[test]
    fn opt350m_counts_the_projections() {
        let cfg = OptConfig::preset(Preset::Opt350m);
        let f = forward_flops(&cfg, 1, 1);
        let layers = 24 * (4 * 1024 * 1024 + 2 * 1024 * 4096);
        assert_eq!(f.linear_weights, layers + 2 * 1024 * 512 + 50_272 * 512);
        // At one row of four (B1, T4), project_out runs there only, with the last layer.
        let f = forward_flops(&cfg, 1, 4);
        let skipped = 3 * (2 * (2 * 1024 * 1024 + 2 * 1024 * 4096) + 2 * 1024 * 512 + 4 * 4 * 1024);
        assert_eq!(f.at_rows(1), f.with_logit_rows(1) - skipped);
    }
}
