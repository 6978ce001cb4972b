//! How two neighbours of a ring open their link. The rank that dials says who it is; when the
//! job has a secret (`CORNET_JOB_SECRET`), each end proves that it knows it, so that neither a
//! stranger who reaches a rank's ring port nor a ring address forged in an open store
//! (torchrun's, which asks no proof) can take a rank's place. The secret never crosses the wire
//! ([`crate::distributed::auth`]).
//!
//! ```text
//! dialler:  its rank (u32), PROVES or NO_PROOF (u8) [, its challenge (32 bytes)]
//! listener: PROVES or NO_PROOF (u8) [, its challenge (32 bytes), its proof (32 bytes)]
//! dialler:  [its proof (32 bytes)]
//! listener: [ACCEPTED (u8)]
//! ```
//!
//! Without a secret on either end the link is as before: anyone who reaches the port can
//! claim a rank. A listener with a secret ignores connections that do not prove it and waits
//! on for its neighbour.

use crate::distributed::auth::{self, Exchange, Secret, Side, CHALLENGE_LEN, PROOF_LEN};
use crate::distributed::error::{DistributedError::Rendezvous, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const NO_PROOF: u8 = 0;
const PROVES: u8 = 1;
const ACCEPTED: u8 = 1;

/// The longest one handshake may take, within the ring's own deadline: a silent stranger on
/// the port delays the ring by this much at most.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One link of a ring: rank `from` dials rank `to`.
pub struct Link<'a> {
    /// The ring's name (its store keys), in the proofs so that one ring's are no other's.
    pub ring: &'a str,
    pub from: usize,
    pub to: usize,
    /// The job's secret, if it has one.
    pub secret: Option<&'a Secret>,
}

impl Link<'_> {
    fn proves(&self) -> u8 {
        match self.secret {
            Some(_) => PROVES,
            None => NO_PROOF,
        }
    }
}

/// Dials `addr`, rank `link.to`'s published ring address, retrying until `deadline`, and opens
/// the link as rank `link.from`.
pub fn dial(addr: SocketAddr, link: &Link, deadline: Instant) -> Result<TcpStream> {
    let stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Err(Rendezvous(
                    format!("cannot connect to the next rank at {addr}: {e}"),
                    None,
                ))
            }
        }
    };
    stream.set_nodelay(true)?;
    within(&stream, deadline, || greet_listener(&stream, addr, link))?;
    Ok(stream)
}

fn greet_listener(mut stream: &TcpStream, addr: SocketAddr, link: &Link) -> Result<()> {
    let (to, from) = (link.to, link.from);
    let broke_off = |e: std::io::Error| {
        Rendezvous(
            format!("the peer at {addr} (rank {to}'s ring address) broke off the handshake: {e}"),
            None,
        )
    };
    let challenge = auth::challenge()?;
    let mut hello = (from as u32).to_le_bytes().to_vec();
    hello.push(link.proves());
    if link.secret.is_some() {
        hello.extend_from_slice(&challenge);
    }
    stream.write_all(&hello).map_err(broke_off)?;
    let mut proves = [0u8];
    stream.read_exact(&mut proves).map_err(broke_off)?;
    let mismatch = match (link.secret.is_some(), proves[0] == PROVES) {
        (false, false) => return Ok(()),
        (true, true) => None,
        (false, true) => Some(("asks for proof of CORNET_JOB_SECRET", "has none")),
        (true, false) => Some(("has no CORNET_JOB_SECRET", "has one")),
    };
    if let Some((theirs, ours)) = mismatch {
        return Err(Rendezvous(
            format!(
                "rank {to} at {addr} {theirs}, and this rank ({from}) {ours}: set the same \
                 secret for every rank"
            ),
            None,
        ));
    }
    let mut answer = [0u8; CHALLENGE_LEN + PROOF_LEN];
    stream.read_exact(&mut answer).map_err(broke_off)?;
    let (theirs, proof) = answer.split_at(CHALLENGE_LEN);
    let theirs = theirs.try_into().expect("split at a challenge's length");
    let secret = link.secret.expect("this rank proves");
    let exchange = Exchange::new(secret, purpose(link.ring, from, to), challenge, theirs);
    if !exchange.verify(Side::Acceptor, proof) {
        return Err(Rendezvous(
            format!(
                "the peer at {addr}, published as rank {to}'s ring address, could not prove it \
                 knows CORNET_JOB_SECRET: the secrets differ, or it is no rank of this job"
            ),
            None,
        ));
    }
    stream
        .write_all(&exchange.proof(Side::Connector))
        .map_err(broke_off)?;
    let mut accepted = [0u8];
    match stream.read_exact(&mut accepted) {
        Ok(()) if accepted[0] == ACCEPTED => Ok(()),
        _ => Err(Rendezvous(
            format!("rank {to} at {addr} refused this rank's proof of CORNET_JOB_SECRET"),
            None,
        )),
    }
}

/// Accepts on `listener` until rank `link.from` opens the link to this rank (`link.to`), or
/// `deadline`. With a secret, connections that do not prove it are closed and counted, and
/// the wait goes on.
pub fn accept(listener: &TcpListener, link: &Link, deadline: Instant) -> Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let mut ignored: Option<(usize, String)> = None;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                let ignored = ignored.map_or(String::new(), |(count, last)| {
                    format!(
                        " ({count} connections that did not prove CORNET_JOB_SECRET were \
                         closed, the last {last})"
                    )
                });
                return Err(Rendezvous(
                    format!(
                        "rank {} never connected to this rank: {e}{ignored}",
                        link.from
                    ),
                    None,
                ));
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        match within(&stream, deadline, || greet_dialler(&stream, link)) {
            Ok(Greeting::Neighbour) => return Ok(stream),
            Ok(Greeting::Stranger(what)) => {
                tracing::warn!(
                    "ring {}: closed a connection from {peer} that {what}",
                    link.ring
                );
                let count = ignored.map_or(1, |(count, _)| count + 1);
                ignored = Some((count, format!("from {peer} {what}")));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the dialler turned out to be.
enum Greeting {
    /// The rank expected, proven if the job has a secret.
    Neighbour,
    /// A connection that did not prove the secret (what it did instead).
    Stranger(String),
}

/// The dialler's hello, then: without a secret, its word; with one, its proof.
fn greet_dialler(mut stream: &TcpStream, link: &Link) -> Result<Greeting> {
    let mut hello = [0u8; 5];
    let read = stream.read_exact(&mut hello);
    let Some(secret) = link.secret else {
        read?;
        return take_at_its_word(stream, link, hello);
    };
    let proven = read.and_then(|()| check_proof(stream, link, secret, hello));
    match proven {
        Err(e) => Ok(Greeting::Stranger(format!("broke off its handshake: {e}"))),
        Ok(Claim::Unproven(what)) => Ok(Greeting::Stranger(what.into())),
        // A rank of this job in another place than expected: a bug, not an attack.
        Ok(Claim::Proven(rank)) if rank != link.from => Err(Rendezvous(
            format!("expected rank {} to connect, got rank {rank}", link.from),
            None,
        )),
        Ok(Claim::Proven(_)) => {
            stream.write_all(&[ACCEPTED])?;
            Ok(Greeting::Neighbour)
        }
    }
}

/// A job without a secret takes the dialler at its word, as before secrets were.
fn take_at_its_word(mut stream: &TcpStream, link: &Link, hello: [u8; 5]) -> Result<Greeting> {
    let claimed = claimed_rank(hello);
    stream.write_all(&[NO_PROOF])?;
    if hello[4] == PROVES {
        return Err(Rendezvous(
            format!(
                "rank {claimed} has CORNET_JOB_SECRET, this rank ({}) has none: set the same \
                 secret for every rank",
                link.to
            ),
            None,
        ));
    }
    if claimed != link.from {
        return Err(Rendezvous(
            format!("expected rank {} to connect, got rank {claimed}", link.from),
            None,
        ));
    }
    Ok(Greeting::Neighbour)
}

/// What a dialler's proof showed.
enum Claim {
    /// It knows the secret, and is this rank.
    Proven(usize),
    /// It does not (why).
    Unproven(&'static str),
}

/// This end's challenge and proof, for the rank the dialler claims to be; then its proof.
fn check_proof(
    mut stream: &TcpStream,
    link: &Link,
    secret: &Secret,
    hello: [u8; 5],
) -> std::io::Result<Claim> {
    stream.write_all(&[PROVES])?;
    if hello[4] != PROVES {
        return Ok(Claim::Unproven("offered no proof of CORNET_JOB_SECRET"));
    }
    let mut theirs = [0u8; CHALLENGE_LEN];
    stream.read_exact(&mut theirs)?;
    let claimed = claimed_rank(hello);
    let ours = auth::challenge().map_err(std::io::Error::other)?;
    let exchange = Exchange::new(secret, purpose(link.ring, claimed, link.to), theirs, ours);
    stream.write_all(&[ours, exchange.proof(Side::Acceptor)].concat())?;
    let mut proof = [0u8; PROOF_LEN];
    stream.read_exact(&mut proof)?;
    Ok(match exchange.verify(Side::Connector, &proof) {
        true => Claim::Proven(claimed),
        false => Claim::Unproven("answered with a wrong proof of CORNET_JOB_SECRET"),
    })
}

fn claimed_rank(hello: [u8; 5]) -> usize {
    u32::from_le_bytes([hello[0], hello[1], hello[2], hello[3]]) as usize
}

/// What the proofs of the link from rank `from` to rank `to` of `ring` are for.
fn purpose(ring: &str, from: usize, to: usize) -> String {
    format!("ring {ring}: rank {from} to rank {to}")
}

/// Runs `handshake` on `stream` with reads and writes that give up at `deadline`, or after
/// [`HANDSHAKE_TIMEOUT`]; the stream then blocks again, as collectives expect.
fn within<T>(
    stream: &TcpStream,
    deadline: Instant,
    handshake: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(1), HANDSHAKE_TIMEOUT);
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    let result = handshake();
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    result
}
