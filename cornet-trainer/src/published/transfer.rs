//! One HTTP(S) transfer of a published file into its partial file, within limits: a server that
//! does not answer, a body that stops arriving, and a body longer than any published file (or
//! than its own Content-Length) are errors naming the URL, never a hang or a full disk.

use super::error::{cache_error, PublishedWeightsError, Result};
use super::file::PublishedFile;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::time::Duration;

/// The longest a published file can be: CORnet-S, the largest, is 214 MB (its tensors alone
/// are 213.8 MB: `tests/fixtures/state_dict_manifest.tsv`).
const MAX_PUBLISHED_BYTES: u64 = 256 << 20;

/// How long a server may stay silent: before accepting the connection, before its answer, and
/// between two reads of the body.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a transfer may take: how long the server may stay silent, how many bytes it may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadLimits {
    /// The longest silence (connecting, awaiting the answer, between reads of the body).
    pub stall: Duration,
    /// The most bytes a body may hold.
    pub max_bytes: u64,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        DownloadLimits {
            stall: STALL_TIMEOUT,
            max_bytes: MAX_PUBLISHED_BYTES,
        }
    }
}

/// Writes the body at `file.url` into `out` with a progress bar; returns its SHA-256 (hex).
pub fn transfer(
    file: &PublishedFile,
    limits: DownloadLimits,
    out: &mut std::fs::File,
) -> Result<String> {
    let failed = |source: ureq::Error| match source {
        ureq::Error::Timeout(_) => PublishedWeightsError::Stalled {
            url: file.url.clone(),
            cache_path: file.cache_path.clone(),
            stall: limits.stall,
        },
        source => PublishedWeightsError::Download {
            url: file.url.clone(),
            cache_path: file.cache_path.clone(),
            source,
        },
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.stall))
        .timeout_recv_response(Some(limits.stall))
        .timeout_per_read(Some(limits.stall))
        .user_agent(concat!("cornet-rs/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let body = agent.get(&file.url).call().map_err(failed)?.into_body();
    let expected = body.content_length();
    let too_long = |announced| PublishedWeightsError::TooLong {
        url: file.url.clone(),
        announced,
        limit: limits.max_bytes,
    };
    if let Some(announced) = expected.filter(|&length| length > limits.max_bytes) {
        return Err(too_long(Some(announced)));
    }
    let progress = download_progress(expected);
    let mut reader = body.into_reader();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(ureq::Error::from(e))),
        };
        received += n as u64;
        // A body with no Content-Length may be endless: stop at the longest a file can be.
        if received > limits.max_bytes {
            return Err(too_long(None));
        }
        out.write_all(&buffer[..n])
            .map_err(cache_error(&file.cache_path))?;
        hasher.update(&buffer[..n]);
        progress.inc(n as u64);
    }
    progress.finish_and_clear();
    // The reader already fails on a short body; the promise is this check, not its habits.
    if let Some(expected) = expected.filter(|&e| e != received) {
        return Err(PublishedWeightsError::Incomplete {
            url: file.url.clone(),
            cache_path: file.cache_path.clone(),
            received,
            expected,
        });
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A byte count on stderr, against the Content-Length where the server gave one.
fn download_progress(length: Option<u64>) -> ProgressBar {
    let (bar, template) = match length {
        Some(length) => (
            ProgressBar::new(length),
            "downloading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        ),
        None => (
            ProgressBar::no_length(),
            "downloading {bytes} ({bytes_per_sec})",
        ),
    };
    bar.with_style(ProgressStyle::with_template(template).expect("static template"))
}
