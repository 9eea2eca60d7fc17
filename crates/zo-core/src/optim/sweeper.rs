//! [`Sweeper`]: the only way optimizers move the weights. It knows what is currently added on
//! top of the clean weights (the *offset*: e.g. +ρ·s_k while f₊ is evaluated), fuses the moves
//! of a step into as few sweeps as possible, and logs every sweep it applies (the trajectory).
//!
//! A GA/AS2P step is then: `probe(+ρ)` → f₊, `probe(−ρ)` → f₋ (one sweep of −2ρ),
//! `commit(update, next probe)` (one sweep: restore + update [+ ρ_{k+1} s_{k+1}]). With the next
//! probe fused, the next step's `probe(+ρ)` finds the weights already there: 2 sweeps per step
//! (MeZO does 4). The trainer allows fusion only when step k+1 follows immediately (no
//! evaluation, checkpoint, stop or end in between), and only for f32 weights: in f32 a fused
//! sweep gives the same bits as the two separate ones (one FMA and one rounding per term
//! either way), so stopping at any step and resuming reproduces an uninterrupted run exactly.
//! (bf16/f16 round once per sweep, so fusing would change the bits: not fused.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::perturb::{self, Op, Sweep, Term};
use crate::record::SweepRecord;
use crate::{Distribution, Key, ParamSet, Result};

/// Moves the weights and records how (see the module docs).
#[derive(Clone, Debug)]
pub struct Sweeper {
    dist: Distribution,
    offset: Vec<Term>,
    log: Vec<SweepRecord>,
    fuse_next: bool,
    stop: Option<Arc<AtomicBool>>,
    sweeps_total: u64,
}

/// Concatenates runs of `Add` with the same key (coefficients summed in f32) and drops zero
/// terms and unit scales, so that e.g. restore (+ρ) and update (c) become one term ρ + c.
fn normalise(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        match (out.last_mut(), op) {
            (Some(Op::Add(prev)), Op::Add(t)) if prev.key == t.key => prev.coef += t.coef,
            (_, op) => out.push(op),
        }
    }
    out.retain(|op| match op {
        Op::Add(t) => t.coef != 0.0,
        Op::ScaleDecayed(f) => *f != 1.0,
    });
    out
}

impl Sweeper {
    /// A sweeper for directions of `dist`, starting from clean weights.
    pub fn new(dist: Distribution) -> Self {
        Sweeper {
            dist,
            offset: Vec::new(),
            log: Vec::new(),
            fuse_next: false,
            stop: None,
            sweeps_total: 0,
        }
    }

    /// The run's stop flag: once set, `commit` no longer fuses, so a run stopping after this
    /// step leaves exactly the weights an unfused run would have.
    pub fn set_stop_flag(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.stop = flag;
    }

    /// The direction distribution.
    pub fn distribution(&self) -> Distribution {
        self.dist
    }

    /// What is currently added on top of the clean weights.
    pub fn offset(&self) -> &[Term] {
        &self.offset
    }

    /// True when the weights are the clean iterate x_k.
    pub fn is_clean(&self) -> bool {
        self.offset.is_empty()
    }

    /// Whether `commit` may fuse the next step's probe (set by the trainer before each step).
    pub fn set_fuse_next(&mut self, on: bool) {
        self.fuse_next = on;
    }

    /// Sweeps applied since creation.
    pub fn sweeps_total(&self) -> u64 {
        self.sweeps_total
    }

    /// The sweeps applied since the last call, in order.
    pub fn drain(&mut self) -> Vec<SweepRecord> {
        std::mem::take(&mut self.log)
    }

    fn negated_offset(&self) -> Vec<Op> {
        self.offset
            .iter()
            .map(|t| Op::Add(Term::new(t.key, -t.coef)))
            .collect()
    }

    fn apply(&mut self, params: &ParamSet, step: u64, ops: Vec<Op>) -> Result<()> {
        let ops = normalise(ops);
        if ops.is_empty() {
            return Ok(());
        }
        let sweep = Sweep {
            ops,
            dist: self.dist,
        };
        perturb::apply(params, &sweep)?;
        self.sweeps_total += 1;
        self.log.push(SweepRecord { step, sweep });
        Ok(())
    }

    /// Puts the weights at x + coef·z(key) (from wherever they are): no sweep if already there.
    pub fn probe(&mut self, params: &ParamSet, step: u64, key: Key, coef: f32) -> Result<()> {
        let target = Term::new(key, coef);
        if self.offset == [target] {
            return Ok(());
        }
        let mut ops = self.negated_offset();
        ops.push(Op::Add(target));
        self.apply(params, step, ops)?;
        self.offset = vec![target];
        Ok(())
    }

    /// Ends a step: x ← x_clean then `update` (in one sweep), plus the next step's probe when
    /// fusion is allowed. Returns whether the probe was fused.
    pub fn commit(
        &mut self,
        params: &ParamSet,
        step: u64,
        update: &[Op],
        next_probe: Option<Term>,
    ) -> Result<bool> {
        let mut ops = self.negated_offset();
        ops.extend_from_slice(update);
        let fused = match next_probe {
            Some(p)
                if self.fuse_next
                    && p.coef != 0.0
                    && !self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) =>
            {
                ops.push(Op::Add(p));
                Some(p)
            }
            _ => None,
        };
        // The offset is cleared before applying: if the sweep fails the error propagates
        // and the weights are in an unknown state anyway.
        self.offset.clear();
        self.apply(params, step, ops)?;
        if let Some(p) = fused {
            self.offset.push(p);
        }
        Ok(fused.is_some())
    }

    /// Removes the offset (an un-fused restore): the weights become the clean iterate, up to
    /// the rounding of +c then −c (measured in `perturb::tests`).
    pub fn clean(&mut self, params: &ParamSet, step: u64) -> Result<()> {
        if self.offset.is_empty() {
            return Ok(());
        }
        let ops = self.negated_offset();
        self.offset.clear();
        self.apply(params, step, ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_merges_same_key_and_drops_zeros() {
        let k = Key::new(1, 1);
        let k2 = Key::new(1, 2);
        let ops = vec![
            Op::Add(Term::new(k, 1e-3)),
            Op::Add(Term::new(k, -1e-3)),
            Op::ScaleDecayed(1.0),
            Op::Add(Term::new(k2, 0.5)),
            Op::Add(Term::new(k2, 0.25)),
            Op::ScaleDecayed(0.9),
            Op::Add(Term::new(k2, 1.0)),
        ];
        assert_eq!(
            normalise(ops),
            vec![
                Op::Add(Term::new(k2, 0.75)),
                Op::ScaleDecayed(0.9),
                Op::Add(Term::new(k2, 1.0))
            ]
        );
    }
}
