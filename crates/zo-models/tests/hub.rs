//! Hub resolution without a network: a loopback HTTP server speaks the part of the hub's
//! protocol hf-hub uses (`GET /{repo}/resolve/{revision}/{file}` with Range, ETag and
//! X-Repo-Commit headers, 404 for absent files), and cache directories laid out as the hub's.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};
use common::*;
use zo_models::hub::{fetch_model, HubOptions};
use zo_models::tokenizer::Tokenizer;
use zo_models::{Error, OptModel};

/// revision → (commit hash, file name → bytes)
type Files = HashMap<String, (String, HashMap<String, Vec<u8>>)>;
/// (file name, bytes) pairs.
type FileList = Vec<(String, Vec<u8>)>;

struct FakeHub {
    url: String,
    auth: Arc<Mutex<Vec<Option<String>>>>,
}

fn commit_for(rev: &str) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in rev.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
    }
    format!("{h:016x}{h:016x}{:08x}", h as u32)
}

fn etag(data: &[u8]) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
    }
    format!("{h:016x}")
}

fn percent_decode(s: &str) -> String {
    s.replace("%2F", "/").replace("%2f", "/")
}

fn serve(stream: TcpStream, repo: &str, files: &Files, auth: &Mutex<Vec<Option<String>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let (k, v) = line.split_once(':').unwrap_or(("", ""));
        match k.to_ascii_lowercase().as_str() {
            "range" => range = Some(v.trim().to_string()),
            "authorization" => authorization = Some(v.trim().to_string()),
            _ => {}
        }
    }
    auth.lock().unwrap().push(authorization);
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let prefix = format!("/{repo}/resolve/");
    let found = path.strip_prefix(&prefix).and_then(|rest| {
        let rest = percent_decode(rest);
        // the revision may itself contain '/': try every split
        files.iter().find_map(|(rev, (commit, map))| {
            let file = rest.strip_prefix(&format!("{rev}/"))?;
            map.get(file).map(|d| (commit.clone(), d.clone()))
        })
    });
    let mut out = stream;
    match found {
        None => {
            let _ = write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-Error-Code: EntryNotFound\r\nConnection: close\r\n\r\n"
            );
        }
        Some((commit, data)) => {
            let size = data.len();
            let (a, b) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                Some(r) => {
                    let (a, b) = r.split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b: usize = if b.is_empty() {
                        size - 1
                    } else {
                        b.parse().unwrap()
                    };
                    (a, b.min(size - 1))
                }
                None => (0, size - 1),
            };
            let body = &data[a..=b];
            let _ = write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{size}\r\nETag: \"{}\"\r\nX-Repo-Commit: {commit}\r\nConnection: close\r\n\r\n",
                body.len(),
                etag(&data)
            );
            let _ = out.write_all(body);
        }
    }
    let _ = out.flush();
    // drain anything left so the client sees a clean close
    let mut sink = [0u8; 64];
    let _ = reader.get_mut().set_nonblocking(true);
    let _ = reader.read(&mut sink);
}

fn start(repo: &'static str, revisions: Vec<(&str, FileList)>) -> FakeHub {
    let files: Files = revisions
        .into_iter()
        .map(|(rev, fs)| (rev.to_string(), (commit_for(rev), fs.into_iter().collect())))
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let auth = Arc::new(Mutex::new(Vec::new()));
    let auth2 = auth.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            serve(stream, repo, &files, &auth2);
        }
    });
    FakeHub { url, auth }
}

/// The files of fixture folder `name` (minus golden.json), plus the built-in tokenizer's.
fn fixture_files(name: &str) -> FileList {
    let mut v: FileList = std::fs::read_dir(fixture(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "golden.json")
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.extend(Tokenizer::builtin_tiny().files().iter().cloned());
    v
}

fn opts(hub: &FakeHub, cache: &Path) -> HubOptions {
    HubOptions {
        revision: "main".into(),
        cache_dir: cache.to_path_buf(),
        endpoint: hub.url.clone(),
        token: Some("hf_test_token".into()),
        offline: false,
        progress: false,
    }
}

fn params_equal(a: &OptModel, b: &OptModel) -> bool {
    a.params().names() == b.params().names()
        && a.params()
            .tensors()
            .iter()
            .zip(b.params().tensors())
            .all(|(x, y)| {
                (x - y)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
            })
}

#[test]
fn downloads_into_the_standard_cache_layout_with_the_token() {
    let hub = start("org/tiny-opt", vec![("main", fixture_files("postln"))]);
    let cache = tempfile::tempdir().unwrap();
    let dir = fetch_model("org/tiny-opt", &opts(&hub, cache.path())).unwrap();
    let repo_dir = cache.path().join("models--org--tiny-opt");
    assert_eq!(dir, repo_dir.join("snapshots").join(commit_for("main")));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        commit_for("main")
    );
    let m = OptModel::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    let want = OptModel::from_dir(&fixture("postln"), DType::F32, &Device::Cpu).unwrap();
    assert!(params_equal(&m, &want));
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 2048);
    let auth = hub.auth.lock().unwrap();
    assert!(!auth.is_empty());
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some("Bearer hf_test_token")),
        "{auth:?}"
    );
}

#[test]
fn pull_request_revision_with_sharded_safetensors() {
    // Like facebook/opt-*: main has only pytorch_model.bin shards, refs/pr/N the safetensors.
    let hub = start(
        "facebook/opt-fake",
        vec![
            ("main", fixture_files("nobias-bin-sharded")),
            ("refs/pr/7", fixture_files("postln-sharded")),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&hub, cache.path());
    let pr = OptModel::from_hub(
        "facebook/opt-fake",
        &o.clone().with_revision("refs/pr/7"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert!(params_equal(
        &pr,
        &OptModel::from_dir(&fixture("postln"), DType::F32, &Device::Cpu).unwrap()
    ));
    let main = OptModel::from_hub("facebook/opt-fake", &o, DType::F32, &Device::Cpu).unwrap();
    assert!(params_equal(
        &main,
        &OptModel::from_dir(&fixture("nobias-bin"), DType::F32, &Device::Cpu).unwrap()
    ));
    assert!(cache
        .path()
        .join("models--facebook--opt-fake/refs/refs/pr/7")
        .is_file());
}

#[test]
fn offline_mode_reads_the_cache_and_names_what_is_missing() {
    let hub = start("org/tiny-opt", vec![("main", fixture_files("postln"))]);
    let cache = tempfile::tempdir().unwrap();
    let online = fetch_model("org/tiny-opt", &opts(&hub, cache.path())).unwrap();
    // Offline, with an endpoint nobody listens on: served from the cache.
    let mut off = opts(&hub, cache.path());
    off.offline = true;
    off.endpoint = "http://127.0.0.1:9".into();
    assert_eq!(fetch_model("org/tiny-opt", &off).unwrap(), online);
    // A repo that was never downloaded.
    let e = fetch_model("org/other", &off).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Hub(_)));
    for part in [
        "offline",
        "config.json",
        "org/other",
        "main",
        &cache.path().display().to_string(),
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    // A revision that was never downloaded.
    let e = fetch_model("org/tiny-opt", &off.clone().with_revision("v2")).unwrap_err();
    assert!(e.to_string().contains("`v2`"), "{e}");
}

#[test]
fn offline_mode_with_a_hand_made_cache() {
    // models--org--name/refs/main + snapshots/<commit>/<files>, as huggingface_hub writes it
    // (regular files here instead of symlinks into blobs/, which readers do not care about).
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--org--cached");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for (name, data) in fixture_files("nobias-bin") {
        std::fs::write(snap.join(name), data).unwrap();
    }
    let o = HubOptions {
        revision: "main".into(),
        cache_dir: cache.path().to_path_buf(),
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        offline: true,
        progress: false,
    };
    let dir: PathBuf = fetch_model("org/cached", &o).unwrap();
    assert_eq!(dir, snap);
    OptModel::from_hub("org/cached", &o, DType::F32, &Device::Cpu).unwrap();
    // The same cache without weights: the error lists what was looked for.
    std::fs::remove_file(snap.join("pytorch_model.bin")).unwrap();
    let e = fetch_model("org/cached", &o).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("pytorch_model.bin.index.json"),
        "{e}"
    );
}

#[test]
fn absent_repo_or_weights_are_named_errors() {
    let hub = start(
        "org/config-only",
        vec![("main", vec![("config.json".into(), b"{}".to_vec())])],
    );
    let cache = tempfile::tempdir().unwrap();
    let e = fetch_model("org/nope", &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.json") && e.contains("org/nope") && e.contains("not found"),
        "{e}"
    );
    let e = fetch_model("org/config-only", &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("pytorch_model.bin"),
        "{e}"
    );
}
