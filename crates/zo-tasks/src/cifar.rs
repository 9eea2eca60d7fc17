//! CIFAR-10 / CIFAR-100 (Krizhevsky 2009) for the paper's ResNet experiments: the original
//! binary batches and the hub's parquet form (PNG bytes, decoded with the `png` crate), as
//! normalised `f32` CHW images plus class labels. No candle: the model crate builds tensors.
//!
//! Binary layout (<https://www.cs.toronto.edu/~kriz/cifar.html>): each record is the label
//! byte(s) then 3072 pixel bytes, the 1024 red, 1024 green and 1024 blue values of a 32×32
//! image in row-major order, i.e. already CHW. CIFAR-10: `<label>` (files
//! `data_batch_{1..5}.bin`, `test_batch.bin`); CIFAR-100: `<coarse><fine>` (`train.bin`,
//! `test.bin`). Hub parquet (`uoft-cs/cifar10`, `uoft-cs/cifar100`): `img: {bytes, path}`
//! with PNG bytes, and `label` (10) or `fine_label` + `coarse_label` (100).

use std::path::{Path, PathBuf};

use parquet::record::Field;
use thiserror::Error;

use crate::rows::RowPosition;

/// Pixels per channel.
pub const HW: usize = 32 * 32;
/// Values per image (3 × 32 × 32).
pub const IMAGE_LEN: usize = 3 * HW;

#[derive(Debug, Error)]
pub enum CifarError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {len} bytes is not a whole number of {record}-byte records")]
    BadLength {
        path: PathBuf,
        len: usize,
        record: usize,
    },
    #[error("{path}, record {index}: {which} {label} is out of range (0..{classes})")]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        which: &'static str,
        label: i64,
        classes: usize,
    },
    #[error("{path}, {position}: {message}")]
    BadRow {
        path: PathBuf,
        position: RowPosition,
        message: String,
    },
    #[error("{path}: parquet error: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A parquet file the reader could not decode (it failed inside the parquet crate).
    #[error("{path}: corrupt parquet file: {reason}")]
    CorruptParquet { path: PathBuf, reason: String },
    #[error("no CIFAR files given")]
    NoFiles,
}

/// Which dataset and which label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    /// The 100 fine classes.
    Cifar100Fine,
    /// The 20 coarse superclasses.
    Cifar100Coarse,
}

impl CifarKind {
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100Fine => 100,
            CifarKind::Cifar100Coarse => 20,
        }
    }

    /// The label column of the hub's parquet files.
    pub fn label_column(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "label",
            CifarKind::Cifar100Fine => "fine_label",
            CifarKind::Cifar100Coarse => "coarse_label",
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            _ => 2,
        }
    }

    /// The standard binary file names of a split, relative to the extracted archive's folder
    /// (`cifar-10-batches-bin/`, `cifar-100-binary/`).
    pub fn binary_files(self, train: bool) -> Vec<String> {
        match (self, train) {
            (CifarKind::Cifar10, true) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            (CifarKind::Cifar10, false) => vec!["test_batch.bin".into()],
            (_, true) => vec!["train.bin".into()],
            (_, false) => vec!["test.bin".into()],
        }
    }
}

/// Per-channel normalisation `(x/255 - mean[c]) / std[c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// CIFAR-10 training-set statistics of pixels scaled to [0, 1]: the mean and the
    /// population std over all 50 000 × 1024 pixels of each channel (the values torchvision
    /// recipes quote; the also-common (0.2023, 0.1994, 0.2010) average per-image stds instead).
    /// [`channel_stats`] recomputes them from the data.
    pub const CIFAR10: Normalization = Normalization {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2470, 0.2435, 0.2616],
    };
    /// CIFAR-100 training-set statistics, computed the same way.
    pub const CIFAR100: Normalization = Normalization {
        mean: [0.5071, 0.4865, 0.4409],
        std: [0.2673, 0.2564, 0.2762],
    };
    /// ImageNet statistics, for ImageNet-pre-trained backbones used as is.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// Only scale to [0, 1].
    pub const UNIT: Normalization = Normalization {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// The dataset's own statistics.
    pub fn for_kind(kind: CifarKind) -> Self {
        match kind {
            CifarKind::Cifar10 => Self::CIFAR10,
            _ => Self::CIFAR100,
        }
    }
}

/// Images and labels, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct CifarSet {
    /// `len() × 3 × 32 × 32` normalised values, image-major, CHW within an image.
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub num_classes: usize,
}

impl CifarSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` (CHW, 3072 values).
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        self.images.get(i * IMAGE_LEN..(i + 1) * IMAGE_LEN)
    }
}

/// Raw u8 pixels before normalisation.
struct RawSet {
    pixels: Vec<u8>,
    labels: Vec<u32>,
}

impl RawSet {
    fn normalize(self, kind: CifarKind, norm: Normalization) -> CifarSet {
        let mut images = Vec::with_capacity(self.pixels.len());
        for img in self.pixels.chunks_exact(IMAGE_LEN) {
            for (c, chan) in img.chunks_exact(HW).enumerate() {
                let (m, s) = (norm.mean[c], norm.std[c]);
                images.extend(chan.iter().map(|&p| (f32::from(p) / 255.0 - m) / s));
            }
        }
        CifarSet {
            images,
            labels: self.labels,
            num_classes: kind.num_classes(),
        }
    }
}

fn check_label(
    path: &Path,
    index: usize,
    which: &'static str,
    label: i64,
    classes: usize,
) -> Result<u32, CifarError> {
    if (0..classes as i64).contains(&label) {
        Ok(label as u32)
    } else {
        Err(CifarError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            which,
            label,
            classes,
        })
    }
}

/// Read binary batch files (concatenated in order).
pub fn read_binary(
    files: &[PathBuf],
    kind: CifarKind,
    norm: Normalization,
) -> Result<CifarSet, CifarError> {
    if files.is_empty() {
        return Err(CifarError::NoFiles);
    }
    let lb = kind.label_bytes();
    let record = lb + IMAGE_LEN;
    let mut raw = RawSet {
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| CifarError::Io {
            path: path.clone(),
            source,
        })?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(CifarError::BadLength {
                path: path.clone(),
                len: bytes.len(),
                record,
            });
        }
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            // CIFAR-100 records carry both labels; check both, keep the requested one.
            let label = match kind {
                CifarKind::Cifar10 => check_label(path, i, "label", rec[0].into(), 10)?,
                _ => {
                    let coarse = check_label(path, i, "coarse label", rec[0].into(), 20)?;
                    let fine = check_label(path, i, "fine label", rec[1].into(), 100)?;
                    if kind == CifarKind::Cifar100Fine {
                        fine
                    } else {
                        coarse
                    }
                }
            };
            raw.labels.push(label);
            raw.pixels.extend_from_slice(&rec[lb..]);
        }
    }
    Ok(raw.normalize(kind, norm))
}

/// Decode a 32×32 PNG to CHW u8 (RGB; grey, alpha and palettes converted).
pub fn decode_png_chw(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "PNG too large".to_string())?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    if (info.width, info.height) != (32, 32) {
        return Err(format!(
            "image is {}×{}, expected 32×32",
            info.width, info.height
        ));
    }
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("palette PNG was not expanded".into()),
    };
    let stride = info.line_size;
    let mut chw = vec![0u8; IMAGE_LEN];
    for y in 0..32 {
        for x in 0..32 {
            let px = &buf[y * stride + x * channels..];
            for c in 0..3 {
                // Grey (with or without alpha) repeats its one value in R, G and B.
                let v = if channels >= 3 { px[c] } else { px[0] };
                chw[c * HW + y * 32 + x] = v;
            }
        }
    }
    Ok(chw)
}

fn png_bytes(field: &Field) -> Option<&[u8]> {
    match field {
        Field::Bytes(b) => Some(b.data()),
        Field::Group(row) => row
            .get_column_iter()
            .find(|(k, _)| k.as_str() == "bytes")
            .and_then(|(_, v)| png_bytes(v)),
        _ => None,
    }
}

fn int_field(field: &Field) -> Option<i64> {
    match field {
        Field::Byte(v) => Some((*v).into()),
        Field::Short(v) => Some((*v).into()),
        Field::Int(v) => Some((*v).into()),
        Field::Long(v) => Some(*v),
        Field::UByte(v) => Some((*v).into()),
        Field::UShort(v) => Some((*v).into()),
        Field::UInt(v) => Some((*v).into()),
        _ => None,
    }
}

/// Read the hub's parquet files (concatenated in order).
pub fn read_parquet(
    files: &[PathBuf],
    kind: CifarKind,
    norm: Normalization,
) -> Result<CifarSet, CifarError> {
    if files.is_empty() {
        return Err(CifarError::NoFiles);
    }
    let (label_col, classes) = (kind.label_column(), kind.num_classes());
    let mut raw = RawSet {
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for path in files {
        let pq = |source| CifarError::Parquet {
            path: path.clone(),
            source,
        };
        let bad = |index: usize, message: String| CifarError::BadRow {
            path: path.clone(),
            position: RowPosition::Row(index + 1),
            message,
        };
        let file = std::fs::File::open(path).map_err(|source| CifarError::Io {
            path: path.clone(),
            source,
        })?;
        let corrupt = |reason| CifarError::CorruptParquet {
            path: path.clone(),
            reason,
        };
        crate::rows::each_parquet_row(file, pq, corrupt, |i, row| {
            let get = |name: &str| {
                row.get_column_iter()
                    .find(|(k, _)| k.as_str() == name)
                    .map(|(_, v)| v)
            };
            let img = get("img")
                .or_else(|| get("image"))
                .and_then(png_bytes)
                .ok_or_else(|| bad(i, "no `img`/`image` column with PNG bytes".into()))?;
            let label = get(label_col)
                .and_then(int_field)
                .ok_or_else(|| bad(i, format!("no integer `{label_col}` column")))?;
            raw.labels
                .push(check_label(path, i, label_col, label, classes)?);
            raw.pixels
                .extend(decode_png_chw(img).map_err(|m| bad(i, format!("PNG: {m}")))?);
            Ok(())
        })?;
    }
    Ok(raw.normalize(kind, norm))
}

/// Per-channel mean and population std of a set's values (in whatever space it was loaded:
/// load with [`Normalization::UNIT`] to get the statistics of pixels in [0, 1]). f64 sums.
pub fn channel_stats(set: &CifarSet) -> ([f64; 3], [f64; 3]) {
    let mut sum = [0f64; 3];
    let mut sq = [0f64; 3];
    for img in set.images.chunks_exact(IMAGE_LEN) {
        for (c, chan) in img.chunks_exact(HW).enumerate() {
            for &v in chan {
                sum[c] += f64::from(v);
                sq[c] += f64::from(v) * f64::from(v);
            }
        }
    }
    let n = (set.len() * HW).max(1) as f64;
    let mean = sum.map(|s| s / n);
    let std = [0, 1, 2].map(|c| (sq[c] / n - mean[c] * mean[c]).max(0.0).sqrt());
    (mean, std)
}
