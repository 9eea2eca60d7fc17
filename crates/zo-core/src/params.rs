//! [`ParamSet`]: the trainable tensors of a model, by name, in a fixed name-sorted order.
//!
//! The order is part of the random-direction contract: tensor `i` of the set receives the
//! direction z(seed, step, i, ·), so it must never depend on hash-map iteration order. Tensors are
//! plain candle tensors, not `Var`s (an op on a `Var` records a backprop node and keeps every
//! activation alive). Cloning a candle `Tensor` shares its storage, so a model built from
//! the same tensors (e.g. `VarBuilder::from_tensors`) sees every in-place perturbation with no
//! copy.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Names of tensors that MeZO excludes from weight decay (substring match, as MeZO's
/// `trainer.py`: "bias", "layer_norm", "layernorm").
pub const NO_DECAY_PATTERNS: [&str; 3] = ["bias", "layer_norm", "layernorm"];

/// Named tensors in ascending byte order of their names.
#[derive(Clone, Debug, Default)]
pub struct ParamSet {
    names: Vec<String>,
    tensors: Vec<Tensor>,
}

impl ParamSet {
    /// Builds a set from `(name, tensor)` pairs in any order; they are sorted by name.
    /// Duplicate names are an error.
    pub fn new(items: impl IntoIterator<Item = (String, Tensor)>) -> Result<Self> {
        let mut items: Vec<(String, Tensor)> = items.into_iter().collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for w in items.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(Error::DuplicateParam(w[0].0.clone()));
            }
        }
        let (names, tensors) = items.into_iter().unzip();
        Ok(Self { names, tensors })
    }

    /// Builds a set from a map (the map's order does not matter: the set sorts by name).
    pub fn from_map(map: HashMap<String, Tensor>) -> Result<Self> {
        let mut items: Vec<(String, Tensor)> = Vec::with_capacity(map.len());
        // Sorted right after, in `new`: iteration order of the map is irrelevant.
        #[allow(clippy::iter_over_hash_type)]
        for (k, v) in map {
            items.push((k, v));
        }
        Self::new(items)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the set holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Names in set order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Tensors in set order (each shares storage with the model's).
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// `(index, name, tensor)` in set order. The index is the tensor index of the RNG key.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &str, &Tensor)> {
        self.names
            .iter()
            .zip(self.tensors.iter())
            .enumerate()
            .map(|(i, (n, t))| (i, n.as_str(), t))
    }

    /// Position of `name` in the set.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index_of(name).map(|i| &self.tensors[i])
    }

    /// The tensor called `name`, or [`Error::MissingParam`].
    pub fn require(&self, name: &str) -> Result<&Tensor> {
        self.get(name)
            .ok_or_else(|| Error::MissingParam(name.to_string()))
    }

    /// Total number of elements over all tensors (d in the paper).
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.elem_count()).sum()
    }

    /// Total storage size in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.tensors
            .iter()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }

    /// The common dtype, if every tensor has the same one.
    pub fn dtype(&self) -> Option<DType> {
        let first = self.tensors.first()?.dtype();
        self.tensors
            .iter()
            .all(|t| t.dtype() == first)
            .then_some(first)
    }

    /// The device of the first tensor (all tensors of a model share one device).
    pub fn device(&self) -> Option<&Device> {
        self.tensors.first().map(|t| t.device())
    }

    /// Indices of tensors whose name contains any of `patterns` (substring match).
    pub fn matching(&self, patterns: &[&str]) -> Vec<usize> {
        self.iter()
            .filter(|(_, n, _)| patterns.iter().any(|p| n.contains(p)))
            .map(|(i, _, _)| i)
            .collect()
    }

    /// One flag per tensor: does weight decay apply to it (MeZO's name rule)?
    pub fn decay_mask(&self) -> Vec<bool> {
        self.names
            .iter()
            .map(|n| !NO_DECAY_PATTERNS.iter().any(|p| n.contains(p)))
            .collect()
    }

    /// The subset whose names satisfy `keep`, sharing storage with `self` (for partial
    /// fine-tuning). Tensor indices are renumbered in the subset.
    pub fn select(&self, mut keep: impl FnMut(&str) -> bool) -> ParamSet {
        let (names, tensors) = self
            .names
            .iter()
            .zip(self.tensors.iter())
            .filter(|(n, _)| keep(n))
            .map(|(n, t)| (n.clone(), t.clone()))
            .unzip();
        ParamSet { names, tensors }
    }

    /// A name → tensor map sharing storage with the set (e.g. for `VarBuilder::from_tensors`).
    pub fn to_map(&self) -> HashMap<String, Tensor> {
        self.names
            .iter()
            .cloned()
            .zip(self.tensors.iter().cloned())
            .collect()
    }

    /// Deep copy: new storage with the same values (for snapshots in tests and checkpoints).
    pub fn deep_clone(&self) -> Result<ParamSet> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| t.copy())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(ParamSet {
            names: self.names.clone(),
            tensors,
        })
    }

    /// Copies the values of `other` (same names, shapes and dtypes) into this set's storage,
    /// in place, so that models sharing the storage see them.
    pub fn assign_from(&self, other: &ParamSet) -> Result<()> {
        if self.names != other.names {
            return Err(Error::Msg(
                "assign_from: parameter names differ between the two sets".into(),
            ));
        }
        for (i, (dst, src)) in self.tensors.iter().zip(other.tensors.iter()).enumerate() {
            if dst.shape() != src.shape() || dst.dtype() != src.dtype() {
                return Err(Error::Msg(format!(
                    "assign_from: `{}` is {:?} {:?} here but {:?} {:?} in the source",
                    self.names[i],
                    dst.shape(),
                    dst.dtype(),
                    src.shape(),
                    src.dtype()
                )));
            }
            // slice_set writes into dst's storage in place.
            let flat_dst = dst.flatten_all()?;
            let flat_src = src.flatten_all()?.to_device(dst.device())?;
            flat_dst.slice_set(&flat_src, 0, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn sorted_by_name_whatever_the_input_order() {
        let p = ParamSet::new(vec![
            ("b.weight".to_string(), t(&[1.0])),
            ("a.bias".to_string(), t(&[2.0, 3.0])),
            ("a.weight".to_string(), t(&[4.0])),
        ])
        .unwrap();
        assert_eq!(p.names(), &["a.bias", "a.weight", "b.weight"]);
        assert_eq!(p.numel(), 4);
        assert_eq!(p.index_of("b.weight"), Some(2));
        assert_eq!(p.decay_mask(), vec![false, true, true]);
        assert_eq!(p.matching(&["weight"]), vec![1, 2]);
    }

    #[test]
    fn duplicate_names_rejected() {
        let err = ParamSet::new(vec![
            ("x".to_string(), t(&[1.0])),
            ("x".to_string(), t(&[2.0])),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("duplicate parameter name `x`"));
    }

    #[test]
    fn assign_from_writes_shared_storage() {
        let a = t(&[1.0, 2.0]);
        let p = ParamSet::new(vec![("w".to_string(), a.clone())]).unwrap();
        let q = ParamSet::new(vec![("w".to_string(), t(&[5.0, 6.0]))]).unwrap();
        p.assign_from(&q).unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), vec![5.0, 6.0]);
    }
}
