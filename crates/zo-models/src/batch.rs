//! [`Batch`]: padded token sequences whose last tokens ("option tokens") are scored, the input
//! of every MeZO objective (docs/PROTOCOL.md 1.0, "Training-loss encodings" / "Loss functions").

use crate::{Error, Result};

/// OPT's `<pad>` id.
pub const PAD_ID: u32 = 1;

/// Sequences padded to one length, row-major `[batch, seq_len]`, with an attention mask and, per
/// sequence, the number of option tokens at the end of its real tokens.
///
/// MeZO pads on the left (`tokenizer.padding_side = "left"`); positions come from the mask, so
/// left and right padding give the same logits at real tokens. The padding id is also the
/// label MeZO ignores: a real token equal to `pad_id` is never a scored label (its
/// `shift_labels[shift_labels == pad_token_id] = -100`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub batch: usize,
    pub seq_len: usize,
    pub option_len: Vec<usize>,
    pub pad_id: u32,
}

impl Batch {
    /// Left-pads `seqs` with `pad_id` to the longest length, rounded up to a multiple of
    /// `pad_to_multiple_of` when given (MeZO uses 8). `option_len[i]` tokens at the end of
    /// `seqs[i]` are scored; each needs a preceding token (`option_len[i] < seqs[i].len()`).
    pub fn left_padded(
        seqs: &[Vec<u32>],
        option_len: &[usize],
        pad_id: u32,
        pad_to_multiple_of: Option<usize>,
    ) -> Result<Self> {
        if seqs.is_empty() {
            return Err(Error::Input("batch: no sequences".into()));
        }
        if seqs.len() != option_len.len() {
            return Err(Error::Input(format!(
                "batch: {} sequences but {} option lengths",
                seqs.len(),
                option_len.len()
            )));
        }
        for (i, (s, &k)) in seqs.iter().zip(option_len).enumerate() {
            if k >= s.len() {
                return Err(Error::Input(format!(
                    "batch: sequence {i} has {} tokens, too few for {k} option tokens (each needs a preceding token)",
                    s.len()
                )));
            }
        }
        let mut t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if let Some(m) = pad_to_multiple_of.filter(|&m| m > 1) {
            t = t.div_ceil(m) * m;
        }
        let mut ids = Vec::with_capacity(seqs.len() * t);
        let mut mask = Vec::with_capacity(seqs.len() * t);
        for s in seqs {
            let pad = t - s.len();
            ids.extend(std::iter::repeat_n(pad_id, pad).chain(s.iter().copied()));
            mask.extend(std::iter::repeat_n(0u8, pad).chain(std::iter::repeat_n(1u8, s.len())));
        }
        Ok(Self {
            ids,
            mask,
            batch: seqs.len(),
            seq_len: t,
            option_len: option_len.to_vec(),
            pad_id,
        })
    }

    /// Left-pads `seqs` to exactly `seq_len` positions (at least the longest sequence). Slices of
    /// one batch padded to the batch's length run the same shapes per row as the whole batch,
    /// which keeps each row's losses independent of how the batch is split.
    pub fn left_padded_to(
        seqs: &[Vec<u32>],
        option_len: &[usize],
        pad_id: u32,
        seq_len: usize,
    ) -> Result<Self> {
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if seq_len < longest {
            return Err(Error::Input(format!(
                "batch: padding length {seq_len} is shorter than the longest sequence ({longest})"
            )));
        }
        let mut b = Self::left_padded(seqs, option_len, pad_id, None)?;
        let extra = seq_len - b.seq_len;
        if extra > 0 {
            let t = b.seq_len;
            let mut ids = Vec::with_capacity(b.batch * seq_len);
            let mut mask = Vec::with_capacity(b.batch * seq_len);
            for r in 0..b.batch {
                ids.extend(std::iter::repeat_n(pad_id, extra));
                ids.extend_from_slice(&b.ids[r * t..(r + 1) * t]);
                mask.extend(std::iter::repeat_n(0u8, extra));
                mask.extend_from_slice(&b.mask[r * t..(r + 1) * t]);
            }
            b.ids = ids;
            b.mask = mask;
            b.seq_len = seq_len;
        }
        Ok(b)
    }

    /// The length [`Batch::left_padded`] pads `seqs` to.
    pub fn padded_len(seqs: &[Vec<u32>], pad_to_multiple_of: Option<usize>) -> usize {
        let mut t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if let Some(m) = pad_to_multiple_of.filter(|&m| m > 1) {
            t = t.div_ceil(m) * m;
        }
        t
    }

    /// A batch from already padded ids and mask (left or right padding; each row's real tokens
    /// must be one contiguous run).
    pub fn from_parts(
        ids: Vec<u32>,
        mask: Vec<u8>,
        batch: usize,
        seq_len: usize,
        option_len: Vec<usize>,
        pad_id: u32,
    ) -> Result<Self> {
        let b = Self {
            ids,
            mask,
            batch,
            seq_len,
            option_len,
            pad_id,
        };
        b.validate()?;
        Ok(b)
    }

    /// Every sequence scored on all its tokens after the first (the causal LM loss of
    /// transformers' `labels = input_ids`, which the peer benchmark measures).
    pub fn full_lm(seqs: &[Vec<u32>], pad_id: u32) -> Result<Self> {
        let k: Vec<usize> = seqs.iter().map(|s| s.len().saturating_sub(1)).collect();
        Self::left_padded(seqs, &k, pad_id, None)
    }

    /// Checks shapes, that each row's real tokens are contiguous and that its option tokens
    /// have a preceding real token.
    pub fn validate(&self) -> Result<()> {
        let n = self.batch * self.seq_len;
        if self.batch == 0 || self.seq_len == 0 || self.ids.len() != n || self.mask.len() != n {
            return Err(Error::Input(format!(
                "batch: ids ({}) and mask ({}) must hold batch·seq_len = {}·{} values",
                self.ids.len(),
                self.mask.len(),
                self.batch,
                self.seq_len
            )));
        }
        if self.option_len.len() != self.batch {
            return Err(Error::Input(format!(
                "batch: {} rows but {} option lengths",
                self.batch,
                self.option_len.len()
            )));
        }
        for b in 0..self.batch {
            let (s, e) = self.real_span(b)?;
            if self.option_len[b] >= e - s {
                return Err(Error::Input(format!(
                    "batch: row {b} has {} real tokens, too few for {} option tokens",
                    e - s,
                    self.option_len[b]
                )));
            }
        }
        Ok(())
    }

    /// `[start, end)` of row `b`'s real tokens.
    pub fn real_span(&self, b: usize) -> Result<(usize, usize)> {
        let row = &self.mask[b * self.seq_len..(b + 1) * self.seq_len];
        let s = row
            .iter()
            .position(|&m| m != 0)
            .ok_or_else(|| Error::Input(format!("batch: row {b} has no real token")))?;
        let e = row.iter().rposition(|&m| m != 0).map_or(s, |p| p + 1);
        if row[s..e].contains(&0) {
            return Err(Error::Input(format!(
                "batch: row {b}'s real tokens are not contiguous"
            )));
        }
        Ok((s, e))
    }

    /// The scored labels: `(row, flat index of the hidden state that predicts it, label id)`,
    /// for each row's last `option_len` real tokens, skipping labels equal to `pad_id` (MeZO).
    pub fn label_positions(&self) -> Result<Vec<(usize, u32, u32)>> {
        let mut out = Vec::new();
        for b in 0..self.batch {
            let (_, e) = self.real_span(b)?;
            for t in e - self.option_len[b]..e {
                let label = self.ids[b * self.seq_len + t];
                if label != self.pad_id {
                    out.push((b, (b * self.seq_len + t - 1) as u32, label));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_to_a_multiple_of_8() {
        let b = Batch::left_padded(&[vec![0, 5, 6], vec![0, 7, 8, 9, 10]], &[1, 2], 1, Some(8))
            .unwrap();
        assert_eq!(b.seq_len, 8);
        assert_eq!(&b.ids[..8], &[1, 1, 1, 1, 1, 0, 5, 6]);
        assert_eq!(&b.mask[8..], &[0, 0, 0, 1, 1, 1, 1, 1]);
        // row 0 scores token 6 (predicted at t=6); row 1 scores 9, 10.
        assert_eq!(
            b.label_positions().unwrap(),
            vec![(0, 6, 6), (1, 8 + 5, 9), (1, 8 + 6, 10)]
        );
    }

    #[test]
    fn pad_id_labels_are_skipped_and_bad_inputs_rejected() {
        let b = Batch::left_padded(&[vec![0, 1, 4]], &[2], 1, None).unwrap();
        assert_eq!(b.label_positions().unwrap(), vec![(0, 1, 4)]);
        assert!(Batch::left_padded(&[vec![0, 1]], &[2], 1, None).is_err());
        assert!(Batch::left_padded(&[], &[], 1, None).is_err());
        assert!(Batch::from_parts(vec![0, 5, 1], vec![1, 0, 1], 1, 3, vec![1], 1).is_err());
        let right =
            Batch::from_parts(vec![0, 5, 6, 1], vec![1, 1, 1, 0], 1, 4, vec![2], 1).unwrap();
        assert_eq!(right.label_positions().unwrap(), vec![(0, 0, 5), (0, 1, 6)]);
    }
}
