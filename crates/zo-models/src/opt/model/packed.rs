//! The forward over a batch's real tokens alone: the sequences one after the other, without
//! their padding (`[N, h]` activations for `N` real tokens instead of `[batch·seq, h]`).
//!
//! Every operation of a layer but attention treats a row alone, so packing leaves their
//! arithmetic as it is and only skips the padding's rows: MeZO pads a batch to its longest
//! sequence (a multiple of 8), and in SST-2's or RTE's batches most positions can be padding.
//! Attention runs each sequence against its own keys ([`crate::cpu::attention_packed`]), with
//! the bits the padded batch gives (its softmax runs over a sequence's span of keys), so the
//! hidden states equal [`OptModel::forward_hidden`]'s rows bit for bit and a sequence's bits
//! do not depend on its batch or its padding.

use candle_core::{DType, Tensor};

use super::super::config::POSITION_OFFSET;
use super::super::layers::{LayerCache, PackedCache};
use super::{last_layer_at_rows_only, KvCache, OptModel};
use crate::cpu::{PackedQueries, PackedSeq};
use crate::Result;

/// A padded batch's real tokens, sequence after sequence.
#[derive(Debug, PartialEq, Eq)]
struct Packed {
    /// The flat index (`b·seq + t`) of each real token, in order.
    flat: Vec<u32>,
    seqs: Vec<PackedSeq>,
    /// The packed row of each flat position; `None` at padding.
    row_of: Vec<Option<u32>>,
    /// Each real token's row of `embed_positions`: as in transformers,
    /// `cumsum(mask)·mask − 1 + 2`, its rank among its sequence's real tokens plus 2.
    positions: Vec<u32>,
}

impl Packed {
    fn new(mask: &[u8], batch: usize, seq: usize) -> Self {
        let mut p = Packed {
            flat: Vec::new(),
            seqs: Vec::with_capacity(batch),
            row_of: vec![None; batch * seq],
            positions: Vec::new(),
        };
        for b in 0..batch {
            let start = p.flat.len();
            for t in 0..seq {
                let f = b * seq + t;
                if mask[f] != 0 {
                    p.row_of[f] = Some(p.flat.len() as u32);
                    p.positions
                        .push((p.flat.len() - start + POSITION_OFFSET) as u32);
                    p.flat.push(f as u32);
                }
            }
            p.seqs.push(PackedSeq {
                start,
                len: p.flat.len() - start,
            });
        }
        p
    }

    /// Every token of every sequence as queries, one block per sequence.
    fn all_queries(&self) -> Vec<PackedQueries> {
        self.seqs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len > 0)
            .map(|(seq, s)| PackedQueries {
                q_row: s.start,
                tq: s.len,
                seq,
                pos0: 0,
            })
            .collect()
    }

    /// The packed rows `sel` as query blocks: runs of consecutive positions of one sequence.
    fn query_blocks(&self, sel: &[u32]) -> Vec<PackedQueries> {
        let mut blocks: Vec<PackedQueries> = Vec::new();
        for (i, &r) in sel.iter().enumerate() {
            let r = r as usize;
            // The sequence holding packed row r (sequences are in row order).
            let seq = self.seqs.partition_point(|s| s.start + s.len <= r);
            let pos = r - self.seqs[seq].start;
            match blocks.last_mut() {
                Some(b) if b.seq == seq && b.pos0 + b.tq == pos => b.tq += 1,
                _ => blocks.push(PackedQueries {
                    q_row: i,
                    tq: 1,
                    seq,
                    pos0: pos,
                }),
            }
        }
        blocks
    }
}

impl OptModel {
    /// Whether a sequence's hidden states are its own alone, bit for bit, whatever its batch
    /// and its padding (left or right): on the CPU (f32 weights, or bf16/f16 ones read widened
    /// by every kernel, the KV cache's included), f32 products (not `Compute::Bf16`), no prefix
    /// (a prefix's keys sit before the padding). Then sequences can be batched without
    /// changing a prediction, e.g. greedy decoding at evaluation.
    pub fn rows_independent(&self) -> bool {
        self.packs() && self.compute == crate::sgemm::Compute::F32
    }

    /// Whether the packed forward serves this model: on the CPU (the packed attention's
    /// arithmetic; f32, or bf16/f16 weights and activations read widened), no prefix (its keys
    /// are not packed).
    fn packs(&self) -> bool {
        crate::cpu::kernels_on(&self.device)
            && matches!(self.dtype, DType::F32 | DType::BF16 | DType::F16)
            && self.prefix.is_none()
            && !self.layers.is_empty()
    }

    /// The checks of the padded forward, then the packing of the real tokens.
    fn pack(&self, ids: &[u32], mask: &[u8], batch: usize, seq: usize) -> Result<Packed> {
        self.check_inputs(ids, mask, batch, seq)?;
        self.check_positions(mask, seq)?;
        Ok(Packed::new(mask, batch, seq))
    }

    /// The embeddings `[N, h]` of the packed tokens.
    fn embed_packed(&self, ids: &[u32], p: &Packed) -> Result<Tensor> {
        let tokens: Vec<u32> = p.flat.iter().map(|&f| ids[f as usize]).collect();
        self.embed(tokens, p.positions.clone())
    }

    /// [`Self::forward_hidden_rows`] over the batch's real tokens alone (see the module
    /// documentation); `None` where that does not apply: not [`Self::packs`], or a row asked
    /// for at padding.
    pub(super) fn forward_packed_rows(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        seq: usize,
        rows: &[u32],
    ) -> Result<Option<Tensor>> {
        if !self.packs() || rows.is_empty() {
            return Ok(None);
        }
        let p = self.pack(ids, mask, batch, seq)?;
        let Some(sel) = rows
            .iter()
            .map(|&r| p.row_of.get(r as usize).copied().flatten())
            .collect::<Option<Vec<u32>>>()
        else {
            return Ok(None);
        };
        let mut x = self.embed_packed(ids, &p)?;
        let all = p.all_queries();
        let last = self.layers.len() - 1;
        let rows_only = last_layer_at_rows_only(sel.len(), p.flat.len());
        let body = if rows_only {
            &self.layers[..last]
        } else {
            &self.layers[..]
        };
        for layer in body {
            x = layer.forward_packed(&x, &p.seqs, None, &all, None)?;
        }
        let blocks = if rows_only {
            p.query_blocks(&sel)
        } else {
            Vec::new()
        };
        let sel = Tensor::from_vec(sel, rows.len(), &self.device)?;
        x = if rows_only {
            self.layers[last].forward_packed(&x, &p.seqs, Some(&sel), &blocks, None)?
        } else {
            x.index_select(&sel, 0)?
        };
        Ok(Some(self.head_in(x)?))
    }

    /// [`Self::forward_hidden_cached`] into an empty `cache` over the batch's real tokens
    /// alone: the keys and values go into the cache in the padded layout (zeros at the
    /// padding, which the cache's mask hides from every later query), and the hidden states
    /// come back `[batch·seq, E]` with zeros at the padding. `None` where that does not apply
    /// (not [`Self::packs`], or the cache not empty).
    pub(super) fn forward_packed_cached(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        seq: usize,
        cache: &mut KvCache,
    ) -> Result<Option<Tensor>> {
        if !self.packs() || !cache.is_empty() {
            return Ok(None);
        }
        let p = self.pack(ids, mask, batch, seq)?;
        let mut x = self.embed_packed(ids, &p)?;
        let all = p.all_queries();
        let n = p.flat.len();
        let flat = Tensor::from_slice(&p.flat, n, &self.device)?;
        cache.layers = self.layers.iter().map(|_| LayerCache::default()).collect();
        for (layer, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let into = PackedCache {
                cache: lc,
                b: batch,
                t: seq,
                flat: &flat,
            };
            x = layer.forward_packed(&x, &p.seqs, None, &all, Some(into))?;
        }
        cache.mask = mask.to_vec();
        cache.batch = batch;
        let x = self.head_in(x)?;
        if n == batch * seq {
            return Ok(Some(x));
        }
        let zeros = Tensor::zeros((batch * seq, x.dim(1)?), x.dtype(), x.device())?;
        Ok(Some(zeros.index_add(&flat, &x, 0)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_real_tokens_their_positions_and_query_runs() {
        // Sequence 0 left-padded by 2, sequence 1 all padding, sequence 2 right-padded by 1
        // and with a hole (a 0 inside counts as padding, as the mask says).
        let mask = [0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0];
        let p = Packed::new(&mask, 3, 4);
        assert_eq!(p.flat, [2, 3, 8, 10]);
        assert_eq!(p.positions, [2, 3, 2, 3]);
        assert_eq!(
            p.seqs,
            [
                PackedSeq { start: 0, len: 2 },
                PackedSeq { start: 2, len: 0 },
                PackedSeq { start: 2, len: 2 }
            ]
        );
        assert_eq!(p.row_of[3], Some(1));
        assert_eq!(p.row_of[9], None);
        let all = p.all_queries();
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].q_row, all[1].tq, all[1].seq), (2, 2, 2));
        // Rows 1 then 2, 3 (a run of sequence 2), then 0 again.
        let blocks = p.query_blocks(&[1, 2, 3, 0]);
        let got: Vec<_> = blocks
            .iter()
            .map(|b| (b.q_row, b.tq, b.seq, b.pos0))
            .collect();
        assert_eq!(got, [(0, 1, 0, 1), (1, 2, 2, 0), (3, 1, 0, 0)]);
    }
}
