//! The published weights by name (`--weights S`): fetched from a local server standing in for
//! the original's bucket into a temporary hub cache, and never cached unless whole, of the
//! named hash and loadable.

use crate::util::{fixture, run_in, stderr_of_failure, stdout_of_success};
use crate::weights_server::{Reply, WeightsServer};
use cornet_model::{Arch, Model};
use cornet_trainer::published::{PublishedWeights, PublishedWeightsError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The hash prefix that names `file`, as the published names carry theirs.
fn hash_prefix(file: &[u8]) -> String {
    hex::encode(Sha256::digest(file))[..8].to_owned()
}

/// The Z fixture's bytes and the hash prefix its published-style name needs.
fn z_weights() -> (Vec<u8>, String) {
    let bytes = std::fs::read(fixture("z.pth")).unwrap();
    let hash = hash_prefix(&bytes);
    (bytes, hash)
}

/// The error with its causes on one line, as the command line prints it.
fn chain(err: &PublishedWeightsError) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    out
}

/// The names in a folder (none when it does not exist).
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A hub cache in a fresh temporary folder and the published table of one model.
struct Setup {
    _dir: tempfile::TempDir,
    cache: PathBuf,
    weights: PublishedWeights,
}

fn setup(server: &WeightsServer, arch: Arch, hash: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub").join("checkpoints");
    // A trailing slash, as the original's base URL has.
    let base = format!("{}/", server.base_url());
    let weights = PublishedWeights::new(base, [(arch, hash.to_owned())], &cache);
    Setup {
        _dir: dir,
        cache,
        weights,
    }
}

#[test]
fn a_fresh_download_is_cached_loads_and_is_then_reused() {
    let (bytes, hash) = z_weights();
    let name = format!("cornet_z-{hash}.pth");
    let server = WeightsServer::start(HashMap::from([(name.clone(), Reply::Whole(bytes.clone()))]));
    let s = setup(&server, Arch::Z, &hash);

    let path = s.weights.fetch(Arch::Z).unwrap();
    assert_eq!(path, s.cache.join(&name));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(
        files_in(&s.cache),
        [name.as_str()],
        "no partial file is left"
    );
    Model::from_checkpoint(&path, Some(Arch::Z), None, &candle_core::Device::Cpu).unwrap();
    assert_eq!(server.requests(), 1);

    assert_eq!(s.weights.fetch(Arch::Z).unwrap(), path);
    assert_eq!(server.requests(), 1, "the cached file is used");
}

#[test]
fn a_file_already_in_the_cache_is_used_without_a_request() {
    let server = WeightsServer::start(HashMap::new());
    let s = setup(&server, Arch::S, "1d3f7974");
    std::fs::create_dir_all(&s.cache).unwrap();
    // As `cornet.cornet_s(pretrained=True)` would have left it.
    let cached = s.cache.join("cornet_s-1d3f7974.pth");
    std::fs::copy(fixture("s_mini.pth"), &cached).unwrap();

    assert_eq!(s.weights.fetch(Arch::S).unwrap(), cached);
    assert_eq!(server.requests(), 0);
}

#[test]
fn an_interrupted_transfer_leaves_nothing_under_the_real_name() {
    let (bytes, hash) = z_weights();
    let name = format!("cornet_z-{hash}.pth");
    let sent = bytes.len() / 2;
    let server = WeightsServer::start(HashMap::from([(
        name.clone(),
        Reply::CutAfter { file: bytes, sent },
    )]));
    let s = setup(&server, Arch::Z, &hash);

    let err = chain(&s.weights.fetch(Arch::Z).unwrap_err());
    assert!(err.contains(&s.weights.file(Arch::Z).unwrap().url), "{err}");
    assert!(
        err.contains(&s.cache.join(&name).display().to_string()),
        "{err}"
    );
    assert_eq!(files_in(&s.cache), Vec::<String>::new(), "{err}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn a_missing_file_names_the_url_and_the_cache_path() {
    let server = WeightsServer::start(HashMap::new());
    let s = setup(&server, Arch::RT, "933c001c");

    let err = chain(&s.weights.fetch(Arch::RT).unwrap_err());
    let url = format!("{}/cornet_rt-933c001c.pth", server.base_url());
    let cache_path = s.cache.join("cornet_rt-933c001c.pth");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains(&cache_path.display().to_string()), "{err}");
    assert!(err.contains("404"), "{err}");
    assert_eq!(files_in(&s.cache), Vec::<String>::new());
}

#[test]
fn an_unreachable_server_names_the_url_and_the_cache_path() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let weights = PublishedWeights::new(&base, [(Arch::Z, "5c427c9c".into())], dir.path());

    let err = chain(&weights.fetch(Arch::Z).unwrap_err());
    assert!(
        err.contains(&format!("{base}/cornet_z-5c427c9c.pth")),
        "{err}"
    );
    let cache_path = dir.path().join("cornet_z-5c427c9c.pth");
    assert!(err.contains(&cache_path.display().to_string()), "{err}");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

#[test]
fn a_file_whose_hash_is_not_its_names_is_refused_and_not_cached() {
    let (bytes, hash) = z_weights();
    let server = WeightsServer::start(HashMap::from([(
        "cornet_z-00000000.pth".to_owned(),
        Reply::Whole(bytes),
    )]));
    let s = setup(&server, Arch::Z, "00000000");

    let err = chain(&s.weights.fetch(Arch::Z).unwrap_err());
    assert!(err.contains(&s.weights.file(Arch::Z).unwrap().url), "{err}");
    assert!(err.contains("00000000") && err.contains(&hash), "{err}");
    assert_eq!(files_in(&s.cache), Vec::<String>::new());
}

#[test]
fn a_file_that_is_not_a_checkpoint_of_its_model_is_refused_and_not_cached() {
    let cases = [
        (Arch::Z, "not_an_image.jpg", "not a checkpoint"),
        (Arch::S, "z.pth", "not CORnet-S"),
    ];
    for (arch, served, expected) in cases {
        let bytes = std::fs::read(fixture(served)).unwrap();
        let hash = hash_prefix(&bytes);
        let name = format!("cornet_{}-{hash}.pth", arch.name().to_ascii_lowercase());
        let server = WeightsServer::start(HashMap::from([(name, Reply::Whole(bytes))]));
        let s = setup(&server, arch, &hash);

        let err = chain(&s.weights.fetch(arch).unwrap_err());
        assert!(
            err.contains(&s.weights.file(arch).unwrap().url),
            "{served}: {err}"
        );
        assert!(err.contains(expected), "{served}: {err}");
        assert_eq!(files_in(&s.cache), Vec::<String>::new(), "{served}");
    }
}

/// Writes a small input for `test` into `dir`, returning its path.
fn small_input(dir: &Path) -> PathBuf {
    let input = dir.join("x.npy");
    let cpu = candle_core::Device::Cpu;
    candle_core::Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &cpu)
        .unwrap()
        .write_npy(&input)
        .unwrap();
    input
}

/// `cornet-trainer test --model Z --weights <weights>` on [`small_input`] in `dir`, features
/// into `dir/<out>`, with `vars` in the environment.
fn test_z(dir: &Path, weights: &str, out: &str, vars: &[(&str, &str)]) -> Output {
    let input = small_input(dir);
    let args = ["test", "--model", "Z", "--weights", weights, "-o", out];
    run_in(
        dir,
        &[&args[..], &["--input-npy", input.to_str().unwrap()]].concat(),
        vars,
    )
}

/// The features `test_z` wrote into `dir/<out>`.
fn features(dir: &Path, out: &str) -> Vec<u8> {
    std::fs::read(dir.join(out).join("CORnet-Z_decoder_avgpool_feats.npy")).unwrap()
}

/// The command line resolves `--weights Z` through the environment: `TORCH_HOME` for the
/// cache, `CORNET_WEIGHTS_BASE_URL` for the server. (The fixture cannot carry the published
/// hash, so the download itself is tested above; here the cache serves it.)
#[test]
fn the_test_command_takes_published_weights_by_name() {
    let server = WeightsServer::start(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let torch_home = dir.join("torch");
    let cached = torch_home.join("hub/checkpoints/cornet_z-5c427c9c.pth");
    let env = [
        ("TORCH_HOME", torch_home.to_str().unwrap()),
        ("CORNET_WEIGHTS_BASE_URL", server.base_url()),
    ];

    // Nothing cached: the server is asked, and the failure says where a file fetched by hand
    // is picked up.
    let stderr = stderr_of_failure(&test_z(dir, "Z", "missing", &env));
    let url = format!("{}/cornet_z-5c427c9c.pth", server.base_url());
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains(&cached.display().to_string()), "{stderr}");
    assert_eq!(server.requests(), 1);

    // Cached: used as it is, with no request, giving the features of the file itself.
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::copy(fixture("z.pth"), &cached).unwrap();
    stdout_of_success(&test_z(dir, "Z", "by_name", &env));
    assert_eq!(server.requests(), 1);
    stdout_of_success(&test_z(dir, cached.to_str().unwrap(), "by_path", &env));
    assert_eq!(features(dir, "by_name"), features(dir, "by_path"));
}

/// A file named `Z` in the current folder is that file, not the published CORnet-Z.
#[test]
fn an_existing_file_named_like_a_model_is_a_path() {
    let server = WeightsServer::start(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::copy(fixture("z.pth"), dir.join("Z")).unwrap();
    let torch_home = dir.join("empty_torch_home");
    let env = [
        ("TORCH_HOME", torch_home.to_str().unwrap()),
        ("CORNET_WEIGHTS_BASE_URL", server.base_url()),
    ];

    stdout_of_success(&test_z(dir, "Z", "out", &env));
    assert_eq!(server.requests(), 0);
    assert!(!torch_home.exists());
}

/// `--model Z --weights S` is refused before anything is downloaded: S's 200 MB would only be
/// refused once fetched.
#[test]
fn another_models_published_weights_are_refused_before_any_download() {
    let server = WeightsServer::start(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let torch_home = dir.join("torch");
    let env = [
        ("TORCH_HOME", torch_home.to_str().unwrap()),
        ("CORNET_WEIGHTS_BASE_URL", server.base_url()),
    ];
    let stderr = stderr_of_failure(&test_z(dir, "S", "out", &env));
    assert!(
        stderr.contains("--weights S names CORnet-S's published weights, and --model is Z"),
        "{stderr}"
    );
    assert_eq!(server.requests(), 0);
    assert!(!torch_home.exists());
}
