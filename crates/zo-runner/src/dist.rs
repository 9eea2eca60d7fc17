//! Data-parallel runs: the processes of one `mpirun` (or `srun`) share each step's batch.
//!
//! A ZO step needs nothing from other processes but their losses: every process regenerates
//! the same direction from the shared key. The training loop therefore talks to a [`World`]
//! that knows the rank, the world size and one collective, an all-gather of each rank's
//! per-example loss values. [`Single`] is the one-process world, used when the `mpi` feature
//! is off or the process was not started by an MPI launcher; with the feature on and a
//! launcher present, [`world`] returns an MPI communicator over the system MPI.
//!
//! Exactness: the batch is cut into contiguous slices in rank order ([`slice`]); each rank
//! computes its examples' loss values padded to the whole batch's length (so one example's
//! bits do not depend on the split), the all-gather concatenates them in rank order (= global
//! example order), and every rank reduces them in that order, as the one-process run does.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use anyhow::Result;

/// The processes of a run, and the one exchange the training loop needs.
pub trait World {
    /// This process's rank, `0 .. size()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Every rank's `values` (lengths may differ), concatenated in rank order; the same on
    /// every rank.
    fn all_gather(&self, values: &[f64]) -> Result<Vec<f64>>;
    /// Every rank's `value`, in rank order (used to compare fingerprints at start).
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>>;
    /// Every rank's `bytes` (lengths may differ), one entry per rank in rank order (used to
    /// gather the predictions of a split evaluation).
    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Whether this rank writes the run directory (rank 0 alone).
    fn writes(&self) -> bool {
        self.rank() == 0
    }
    /// Seconds spent inside [`World::all_gather`] so far (waiting for the slowest rank
    /// included); 0 for one process.
    fn exchange_seconds(&self) -> f64 {
        0.0
    }
    /// Ends every process of the world with exit status `code` (a failed rank must not leave
    /// the others waiting in a collective).
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The one-process world.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl World for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value])
    }
    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![bytes.to_vec()])
    }
}

/// Rank `rank`'s part of `n` items split over `size` ranks: contiguous, in rank order, the
/// first `n % size` ranks one item more. The concatenation of all parts is `0..n`.
pub fn slice(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (q, r) = (n / size, n % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

/// The node-local rank an MPI launcher gives a process (OpenMPI, MPICH / Intel MPI, Slurm),
/// from the environment `var`. None outside a launcher.
pub fn local_rank(var: impl Fn(&str) -> Option<String>) -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "MPI_LOCAL_RANK",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|k| var(k).and_then(|v| v.trim().parse().ok()))
}

/// The world rank and size a launcher gives a process, from the environment `var`. None
/// outside a launcher.
pub fn launcher_rank(var: impl Fn(&str) -> Option<String>) -> Option<(usize, usize)> {
    let pair = |r: &str, s: &str| -> Option<(usize, usize)> {
        Some((var(r)?.trim().parse().ok()?, var(s)?.trim().parse().ok()?))
    };
    pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")
        .or_else(|| pair("PMI_RANK", "PMI_SIZE"))
        .or_else(|| pair("SLURM_PROCID", "SLURM_NTASKS"))
}

/// Refuses a command that does not split its work over ranks (`zo replay`, `zo merge`, …)
/// when a launcher started several processes: each would repeat the whole job and write the
/// same files.
pub fn single_process_only(command: &str, var: impl Fn(&str) -> Option<String>) -> Result<()> {
    if let Some((_, size)) = launcher_rank(var).filter(|&(_, s)| s > 1) {
        anyhow::bail!(
            "zo {command} runs in one process, not under an MPI launcher ({size} processes): \
             only `zo train`, `zo eval` and `zo reproduce` split their work over ranks"
        );
    }
    Ok(())
}

/// The CUDA ordinal `--device cuda` (no index) opens: the process's node-local rank, so that
/// one rank runs per GPU; 0 outside a launcher.
pub fn local_cuda_ordinal(var: impl Fn(&str) -> Option<String>) -> usize {
    local_rank(var).unwrap_or(0)
}

thread_local! {
    /// The process's world, made once (MPI is initialised once per process) by [`world`] and
    /// finalised by [`finalize`].
    static WORLD: RefCell<Option<Rc<dyn World>>> = const { RefCell::new(None) };
}

/// The process's world: MPI when built with the `mpi` feature and started by a launcher, else
/// [`Single`]. Made on the first call, the same afterwards.
pub fn world() -> Result<Rc<dyn World>> {
    if let Some(w) = current() {
        return Ok(w);
    }
    let w = new_world()?;
    WORLD.with(|c| *c.borrow_mut() = Some(w.clone()));
    Ok(w)
}

/// The world if [`world`] made one already.
pub fn current() -> Option<Rc<dyn World>> {
    WORLD.with(|c| c.borrow().clone())
}

/// Drops the process's world (MPI_Finalize once the last handle is gone); at the end of
/// `main`.
pub fn finalize() {
    WORLD.with(|c| c.borrow_mut().take());
}

fn new_world() -> Result<Rc<dyn World>> {
    #[cfg(feature = "mpi")]
    if launcher_rank(|k| std::env::var(k).ok()).is_some() {
        return Ok(Rc::new(mpi_world::Mpi::init()?));
    }
    if let Some((_, size)) = launcher_rank(|k| std::env::var(k).ok()).filter(|&(_, s)| s > 1) {
        anyhow::bail!(
            "started by an MPI launcher with {size} processes, but this zo was built without \
             the `mpi` feature (cargo build --release --features mpi)"
        );
    }
    Ok(Rc::new(Single))
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use std::cell::Cell;
    use std::time::Instant;

    use anyhow::{anyhow, Result};
    use mpi::collective::CommunicatorCollectives;
    use mpi::datatype::{Equivalence, PartitionMut};
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::Count;

    /// MPI_COMM_WORLD of an initialised MPI (finalised when dropped).
    pub struct Mpi {
        _universe: mpi::environment::Universe,
        comm: SimpleCommunicator,
        /// Seconds spent in `all_gather` so far.
        exchange: Cell<f64>,
    }

    impl Mpi {
        pub fn init() -> Result<Self> {
            let universe = mpi::initialize().ok_or_else(|| anyhow!("MPI: cannot initialise"))?;
            let comm = universe.world();
            Ok(Self {
                _universe: universe,
                comm,
                exchange: Cell::new(0.0),
            })
        }
    }

    impl Mpi {
        /// Every rank's `values` concatenated in rank order, and each rank's count.
        fn gather_varcount<T>(&self, values: &[T]) -> Result<(Vec<T>, Vec<Count>)>
        where
            T: Equivalence + Default + Clone,
        {
            let n = self.comm.size() as usize;
            let len = Count::try_from(values.len())
                .map_err(|_| anyhow!("MPI: {} values exceed one message", values.len()))?;
            let mut counts = vec![0 as Count; n];
            self.comm.all_gather_into(&len, &mut counts[..]);
            let displs: Vec<Count> = counts
                .iter()
                .scan(0, |acc, &c| {
                    let d = *acc;
                    *acc += c;
                    Some(d)
                })
                .collect();
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let mut out = vec![T::default(); total];
            {
                let mut part = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
                self.comm.all_gather_varcount_into(values, &mut part);
            }
            Ok((out, counts))
        }
    }

    impl super::World for Mpi {
        fn rank(&self) -> usize {
            self.comm.rank() as usize
        }
        fn size(&self) -> usize {
            self.comm.size() as usize
        }
        fn all_gather(&self, values: &[f64]) -> Result<Vec<f64>> {
            let t0 = Instant::now();
            let (out, _) = self.gather_varcount(values)?;
            self.exchange
                .set(self.exchange.get() + t0.elapsed().as_secs_f64());
            Ok(out)
        }
        fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
            let (out, counts) = self.gather_varcount(bytes)?;
            let mut at = 0;
            Ok(counts
                .iter()
                .map(|&c| {
                    let part = out[at..at + c as usize].to_vec();
                    at += c as usize;
                    part
                })
                .collect())
        }
        fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
            let mut out = vec![0u64; self.size()];
            self.comm.all_gather_into(&value, &mut out[..]);
            Ok(out)
        }
        fn exchange_seconds(&self) -> f64 {
            self.exchange.get()
        }
        fn abort(&self, code: i32) -> ! {
            self.comm.abort(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn slices_cover_the_batch_in_order() {
        for n in [1usize, 7, 8, 16, 33] {
            for size in 1..=5 {
                let parts: Vec<usize> = (0..size).flat_map(|r| slice(n, r, size)).collect();
                assert_eq!(parts, (0..n).collect::<Vec<_>>(), "n={n} size={size}");
                let lens: Vec<usize> = (0..size).map(|r| slice(n, r, size).len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
            }
        }
        assert_eq!(slice(16, 1, 2), 8..16);
    }

    #[test]
    fn cuda_takes_the_local_rank_of_the_launcher() {
        assert_eq!(local_cuda_ordinal(env(&[])), 0);
        assert_eq!(
            local_cuda_ordinal(env(&[
                ("OMPI_COMM_WORLD_LOCAL_RANK", "3"),
                ("OMPI_COMM_WORLD_RANK", "7")
            ])),
            3
        );
        assert_eq!(local_cuda_ordinal(env(&[("SLURM_LOCALID", "1")])), 1);
        assert_eq!(local_cuda_ordinal(env(&[("MPI_LOCALRANKID", "2")])), 2);
        // OpenMPI's variable wins over Slurm's when both are set (mpirun inside an allocation).
        assert_eq!(
            local_cuda_ordinal(env(&[
                ("SLURM_LOCALID", "0"),
                ("OMPI_COMM_WORLD_LOCAL_RANK", "1")
            ])),
            1
        );
        assert_eq!(local_cuda_ordinal(env(&[("SLURM_LOCALID", "x")])), 0);
    }

    #[test]
    fn launcher_rank_and_size() {
        assert_eq!(launcher_rank(env(&[])), None);
        assert_eq!(
            launcher_rank(env(&[
                ("OMPI_COMM_WORLD_RANK", "1"),
                ("OMPI_COMM_WORLD_SIZE", "2")
            ])),
            Some((1, 2))
        );
        assert_eq!(
            launcher_rank(env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")])),
            Some((0, 4))
        );
    }

    #[test]
    fn commands_that_do_not_split_refuse_several_ranks() {
        assert!(single_process_only("eval", env(&[])).is_ok());
        let one = [("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "1")];
        assert!(single_process_only("eval", env(&one)).is_ok());
        let two = [("PMI_RANK", "1"), ("PMI_SIZE", "2")];
        let e = single_process_only("reproduce", env(&two)).unwrap_err();
        assert!(
            e.to_string().contains("zo reproduce runs in one process"),
            "{e}"
        );
    }

    #[test]
    fn the_single_world_gathers_its_own_values() {
        let w = Single;
        assert_eq!((w.rank(), w.size(), w.writes()), (0, 1, true));
        assert_eq!(w.all_gather(&[1.0, 2.5]).unwrap(), vec![1.0, 2.5]);
        assert_eq!(w.all_gather_u64(9).unwrap(), vec![9]);
        assert_eq!(w.all_gather_bytes(b"ab").unwrap(), vec![b"ab".to_vec()]);
    }
}
