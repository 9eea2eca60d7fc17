//! CIFAR readers on tiny synthetic data: binary batches written here, parquet written by
//! tools/make_cifar_parquet.py (same pixel formula as `px` below).

use std::path::PathBuf;

use zo_tasks::cifar::{
    channel_stats, read_binary, read_parquet, CifarError, CifarKind, Normalization, HW, IMAGE_LEN,
};

fn px(i: usize, c: usize, y: usize, x: usize) -> u8 {
    ((37 * i + 71 * c + 5 * y + 3 * x) % 256) as u8
}

fn image_u8(i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(IMAGE_LEN);
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                v.push(px(i, c, y, x));
            }
        }
    }
    v
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn cifar10_binary_batches_concatenate_and_normalise() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (f, labels) in [[3u8, 7], [0, 9]].iter().enumerate() {
        let mut bytes = Vec::new();
        for (k, &l) in labels.iter().enumerate() {
            bytes.push(l);
            bytes.extend(image_u8(2 * f + k));
        }
        let p = dir.path().join(format!("data_batch_{}.bin", f + 1));
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    }
    let norm = Normalization::CIFAR10;
    let set = read_binary(&files, CifarKind::Cifar10, norm).unwrap();
    assert_eq!(set.labels, [3, 7, 0, 9]);
    assert_eq!(
        (set.len(), set.num_classes, set.images.len()),
        (4, 10, 4 * IMAGE_LEN)
    );
    let img = set.image(2).unwrap();
    // channel 1 (green), row 4, col 5 of image 2
    let want = (f32::from(px(2, 1, 4, 5)) / 255.0 - norm.mean[1]) / norm.std[1];
    assert!(close(img[HW + 4 * 32 + 5], want));
    assert!(set.image(4).is_none());
    assert_eq!(CifarKind::Cifar10.binary_files(true).len(), 5);
}

#[test]
fn cifar100_binary_has_coarse_then_fine() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![19u8, 99];
    bytes.extend(image_u8(0));
    let p = dir.path().join("train.bin");
    std::fs::write(&p, &bytes).unwrap();
    let fine = read_binary(
        std::slice::from_ref(&p),
        CifarKind::Cifar100Fine,
        Normalization::UNIT,
    )
    .unwrap();
    let coarse = read_binary(
        std::slice::from_ref(&p),
        CifarKind::Cifar100Coarse,
        Normalization::UNIT,
    )
    .unwrap();
    assert_eq!((fine.labels[0], fine.num_classes), (99, 100));
    assert_eq!((coarse.labels[0], coarse.num_classes), (19, 20));
    assert!(close(fine.images[0], f32::from(px(0, 0, 0, 0)) / 255.0));
    // A fine label of 100 is out of range, and named.
    bytes[1] = 100;
    std::fs::write(&p, &bytes).unwrap();
    let e = read_binary(&[p], CifarKind::Cifar100Coarse, Normalization::UNIT).unwrap_err();
    assert!(
        matches!(
            e,
            CifarError::LabelOutOfRange {
                which: "fine label",
                label: 100,
                index: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn binary_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("short.bin");
    std::fs::write(&p, vec![0u8; 100]).unwrap();
    let e = read_binary(&[p], CifarKind::Cifar10, Normalization::UNIT).unwrap_err();
    assert!(
        matches!(
            e,
            CifarError::BadLength {
                len: 100,
                record: 3073,
                ..
            }
        ),
        "{e}"
    );
    let mut rec = vec![10u8];
    rec.extend(image_u8(0));
    let p = dir.path().join("label.bin");
    std::fs::write(&p, rec).unwrap();
    let e = read_binary(&[p], CifarKind::Cifar10, Normalization::UNIT).unwrap_err();
    assert!(e.to_string().contains("label 10"), "{e}");
    assert!(matches!(
        read_binary(&[], CifarKind::Cifar10, Normalization::UNIT),
        Err(CifarError::NoFiles)
    ));
}

#[test]
fn parquet_png_rows_decode_to_the_same_pixels() {
    let set = read_parquet(
        &[data("cifar10_tiny.parquet")],
        CifarKind::Cifar10,
        Normalization::UNIT,
    )
    .unwrap();
    assert_eq!(set.labels, [3, 9, 0]);
    for i in 0..2 {
        let want: Vec<f32> = image_u8(i).iter().map(|&p| f32::from(p) / 255.0).collect();
        assert_eq!(set.image(i).unwrap(), &want[..], "image {i}");
    }
    // Greyscale: channel 0's value in all three channels.
    let g = set.image(2).unwrap();
    for c in 0..3 {
        assert!(close(
            g[c * HW + 7 * 32 + 9],
            f32::from(px(2, 0, 7, 9)) / 255.0
        ));
    }
    let s100 = read_parquet(
        &[data("cifar100_tiny.parquet")],
        CifarKind::Cifar100Fine,
        Normalization::CIFAR100,
    )
    .unwrap();
    assert_eq!(s100.labels, [99, 42]);
    let c100 = read_parquet(
        &[data("cifar100_tiny.parquet")],
        CifarKind::Cifar100Coarse,
        Normalization::CIFAR100,
    )
    .unwrap();
    assert_eq!(c100.labels, [19, 7]);
}

#[test]
fn parquet_errors_name_the_row() {
    let e = read_parquet(
        &[data("cifar10_bad_label.parquet")],
        CifarKind::Cifar10,
        Normalization::UNIT,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CifarError::LabelOutOfRange {
                label: 10,
                index: 0,
                ..
            }
        ),
        "{e}"
    );
    let e = read_parquet(
        &[data("cifar10_small_image.parquet")],
        CifarKind::Cifar10,
        Normalization::UNIT,
    )
    .unwrap_err();
    assert!(e.to_string().contains("16×16"), "{e}");
    // A CIFAR-10 file read as CIFAR-100 lacks `fine_label`.
    let e = read_parquet(
        &[data("cifar10_tiny.parquet")],
        CifarKind::Cifar100Fine,
        Normalization::UNIT,
    )
    .unwrap_err();
    assert!(e.to_string().contains("fine_label"), "{e}");
}

#[test]
fn channel_stats_recover_the_normalisation() {
    let set = read_parquet(
        &[data("cifar10_tiny.parquet")],
        CifarKind::Cifar10,
        Normalization::UNIT,
    )
    .unwrap();
    let (mean, std) = channel_stats(&set);
    let norm = Normalization {
        mean: mean.map(|m| m as f32),
        std: std.map(|s| s as f32),
    };
    let z = read_parquet(&[data("cifar10_tiny.parquet")], CifarKind::Cifar10, norm).unwrap();
    let (m2, s2) = channel_stats(&z);
    for c in 0..3 {
        assert!(
            m2[c].abs() < 1e-5 && (s2[c] - 1.0).abs() < 1e-4,
            "channel {c}: {m2:?} {s2:?}"
        );
    }
}

/// Every one-byte corruption of a CIFAR parquet file and of a text task's parquet file is a
/// `Result` from the readers, never a panic (the parquet crate panics on some of them: an
/// index past a decoded page, a thrift field it expects; the readers catch those and report a
/// corrupt file). Byte 5657 of cifar10_tiny.parquet set to 116 is one the crate panics on.
#[test]
fn corrupt_parquet_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let cifar = std::fs::read(data("cifar10_tiny.parquet")).unwrap();
    let text = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tasks/sst2/fixture.parquet"),
    )
    .unwrap();
    let p = dir.path().join("x.parquet");
    let norm = Normalization::UNIT;
    let mut corrupt = 0;
    for (i, v) in (0..cifar.len())
        .step_by(7)
        .map(|i| (i, cifar[i] ^ 0x5a))
        .chain([(5657, 116)])
    {
        let mut b = cifar.clone();
        b[i] = v;
        std::fs::write(&p, &b).unwrap();
        if let Err(CifarError::CorruptParquet { .. }) =
            read_parquet(std::slice::from_ref(&p), CifarKind::Cifar10, norm)
        {
            corrupt += 1;
        }
    }
    assert!(corrupt > 0, "no mutation reached the crate's panics");
    for i in 0..text.len() {
        let mut b = text.clone();
        b[i] ^= 0xa5;
        std::fs::write(&p, &b).unwrap();
        let _ = zo_tasks::rows::for_each_row(&p, |_, _| Ok(()));
    }
}
