//! The published weights by name (`--weights S`): fetched from a local server standing in for
//! the original's bucket into a temporary hub cache, and never cached unless whole, of the
//! named hash and loadable.

use crate::util::{fixture, run_in, start_with_env, stderr_of_failure, stdout_of_success, text};
use crate::weights_server::{Reply, WeightsServer};
use cornet_model::{Arch, Model};
use cornet_trainer::published::{DownloadLimits, PublishedWeights, PublishedWeightsError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant, SystemTime};

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

/// A server of the Z fixture under its published-style name, as `reply` makes of its bytes;
/// and the hash prefix in that name.
fn serving_z(reply: impl FnOnce(Vec<u8>) -> Reply) -> (WeightsServer, String) {
    let (bytes, hash) = z_weights();
    let name = format!("cornet_z-{hash}.pth");
    (
        WeightsServer::start(HashMap::from([(name, reply(bytes))])),
        hash,
    )
}

#[test]
fn an_interrupted_transfer_leaves_nothing_under_the_real_name() {
    let (server, hash) = serving_z(|file| {
        let sent = file.len() / 2;
        Reply::CutAfter { file, sent }
    });
    let name = format!("cornet_z-{hash}.pth");
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
    // Where a copy fetched by hand would be taken from, not a claim that one was.
    assert!(
        err.contains("nothing was cached (to work offline, save a copy fetched by hand as"),
        "{err}"
    );
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

/// Limits that tests can reach in a moment: a second of silence, a megabyte of body.
fn quick_limits() -> DownloadLimits {
    DownloadLimits {
        stall: Duration::from_secs(1),
        max_bytes: 1 << 20,
    }
}

#[test]
fn a_body_that_stops_arriving_is_abandoned_naming_the_url() {
    let (server, hash) = serving_z(|file| {
        let sent = file.len() / 3;
        Reply::StallAfter { file, sent }
    });
    let s = setup(&server, Arch::Z, &hash);
    let weights = s.weights.clone().with_limits(quick_limits());

    let started = Instant::now();
    let err = chain(&weights.fetch(Arch::Z).unwrap_err());
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert!(err.contains(&weights.file(Arch::Z).unwrap().url), "{err}");
    assert!(err.contains("sent nothing for 1s"), "{err}");
    assert_eq!(files_in(&s.cache), Vec::<String>::new(), "{err}");
}

#[test]
fn a_body_longer_than_a_published_file_can_be_is_refused() {
    let cases = [
        (None, "it sent more"),
        (Some(10 << 30), "its Content-Length says 10737418240 bytes"),
    ];
    for (announced, expected) in cases {
        let name = "cornet_s-1d3f7974.pth".to_owned();
        let server = WeightsServer::start(HashMap::from([(name, Reply::Endless { announced })]));
        let s = setup(&server, Arch::S, "1d3f7974");
        let weights = s.weights.clone().with_limits(quick_limits());

        let err = chain(&weights.fetch(Arch::S).unwrap_err());
        assert!(err.contains(&weights.file(Arch::S).unwrap().url), "{err}");
        assert!(
            err.contains(expected) && err.contains("over 1048576 bytes"),
            "{err}"
        );
        assert_eq!(files_in(&s.cache), Vec::<String>::new(), "{err}");
    }
    // The default is over the largest published file, CORnet-S's 214 MB.
    assert!(DownloadLimits::default().max_bytes > 214_000_000);
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

/// `cornet-trainer test --model Z --weights Z` in `dir`, its download served by `server` into
/// the hub cache under `dir/torch`, left running.
fn start_test_z(dir: &Path, server: &WeightsServer) -> Child {
    let (input, out) = (small_input(dir), dir.join("out"));
    let torch_home = dir.join("torch");
    let args = [
        "test",
        "--model",
        "Z",
        "--weights",
        "Z",
        "-o",
        out.to_str().unwrap(),
        "--input-npy",
        input.to_str().unwrap(),
    ];
    let vars = [
        ("TORCH_HOME", torch_home.to_str().unwrap()),
        ("CORNET_WEIGHTS_BASE_URL", server.base_url()),
    ];
    start_with_env(&args, &vars)
}

/// The hub cache of [`start_test_z`] in `dir`.
fn cache_of(dir: &Path) -> PathBuf {
    dir.join("torch").join("hub").join("checkpoints")
}

/// A server whose CORnet-Z (under its published name) falls silent after a third of the file.
fn stalling_server() -> WeightsServer {
    let file = std::fs::read(fixture("z.pth")).unwrap();
    let sent = file.len() / 3;
    WeightsServer::start(HashMap::from([(
        "cornet_z-5c427c9c.pth".to_owned(),
        Reply::StallAfter { file, sent },
    )]))
}

/// Waits until the download's partial file is in `cache`; returns its name.
fn wait_for_partial(cache: &Path, process: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let partial = files_in(cache)
            .into_iter()
            .find(|n| n.ends_with(".partial"));
        if let Some(name) = partial {
            return name;
        }
        assert!(
            process.try_wait().unwrap().is_none(),
            "the download ended early"
        );
        assert!(
            Instant::now() < deadline,
            "no partial file in {}",
            cache.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-C, SIGTERM or a hang-up during a download: the process ends by that signal, as it
/// would have, and its partial file is gone.
#[test]
fn a_signal_during_a_download_removes_its_partial_file() {
    let server = stalling_server();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // Children inherit an ignored signal (tests started in the background by a script
        // ignore SIGINT), and the trainer rightly leaves those alone: this is about the
        // default action, which a terminal's shell gives a command.
        // SAFETY: restores the default action; no handler of this process is replaced.
        unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) }.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut process = start_test_z(dir.path(), &server);
        wait_for_partial(&cache_of(dir.path()), &mut process);

        kill(Pid::from_raw(process.id() as i32), signal).unwrap();
        let output = process.wait_with_output().unwrap();
        let (status, stderr) = (output.status, text(&output.stderr));
        assert_eq!(
            status.signal(),
            Some(signal as i32),
            "{signal}: {status}: {stderr}"
        );
        assert_eq!(
            files_in(&cache_of(dir.path())),
            Vec::<String>::new(),
            "{signal}"
        );
    }
}

/// Off a terminal (a pipe here, as Slurm's output file or nohup's) log lines carry no colour
/// codes: the download's line, here.
#[test]
fn log_lines_off_a_terminal_carry_no_colour_codes() {
    let server = WeightsServer::start(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let output = start_test_z(dir.path(), &server)
        .wait_with_output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("downloading"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

/// SIGKILL leaves the partial file; the next fetch removes it once it is stale, and keeps a
/// fresh one (another process's download, for all it knows).
#[test]
fn a_partial_file_left_by_a_killed_download_is_swept_by_the_next_fetch() {
    let server = stalling_server();
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_of(dir.path());
    let mut process = start_test_z(dir.path(), &server);
    let left = wait_for_partial(&cache, &mut process);
    process.kill().unwrap();
    process.wait().unwrap();
    assert_eq!(files_in(&cache), [left.as_str()]);

    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let stale = std::fs::File::options().write(true).open(cache.join(&left));
    stale.unwrap().set_modified(an_hour_ago).unwrap();
    let live = "cornet_z-5c427c9c.pth.other1.partial";
    std::fs::write(cache.join(live), b"a download under way elsewhere").unwrap();

    let missing = WeightsServer::start(HashMap::new());
    let weights = PublishedWeights::new(
        missing.base_url(),
        [(Arch::Z, "5c427c9c".to_owned())],
        &cache,
    );
    weights.fetch(Arch::Z).unwrap_err();
    assert_eq!(files_in(&cache), [live]);
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
