//! Ranks on CPUs over TCP: a ring, each rank sending to the next and receiving from the
//! previous, with the bandwidth-optimal ring all-reduce (reduce-scatter, then all-gather: each
//! rank sends and receives 2 (N-1)/N of the buffer).

use super::communicator::Communicator;
use super::env::{Launcher, RankEnv};
use super::error::{
    DistributedError::{Collective, Rendezvous},
    Explain, Result,
};
use super::rendezvous;
use bytemuck::Pod;

mod handshake;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{AddAssign, Range};
use std::time::Instant;

/// A rank's place in the TCP ring: connections to the next and from the previous rank.
pub struct TcpRing {
    rank: usize,
    world_size: usize,
    to_next: TcpStream,
    from_prev: TcpStream,
    /// The chunk being received, kept between exchanges: f64 storage, so that its bytes are
    /// aligned for the f32 or f64 values that travel and are added in place.
    received: Vec<f64>,
    /// Held for the life of the ring: on rank 0 it may serve the store.
    _rendezvous: rendezvous::Rendezvous,
}

impl TcpRing {
    /// Meets the other ranks through rank 0's store and connects the ring. Fails, naming the
    /// rank, if one does not arrive within the timeout or was started with another world size.
    pub fn connect(env: &RankEnv) -> Result<Self> {
        let rendezvous = rendezvous::Rendezvous::join(env)?;
        Self::connect_among(rendezvous, env, "ring", 0..env.world_size)
    }

    /// A ring of the consecutive ranks `members` alone (this rank among them), meeting under
    /// the store keys `<name>/<rank>`: each of a job's subgroups connects its own. The store
    /// must be served already (by the agent, or by rank 0's ring, connected first). Its
    /// [`Communicator::rank`] and [`Communicator::world_size`] are this rank's place in it
    /// and its size.
    pub fn connect_group(env: &RankEnv, name: &str, members: Range<usize>) -> Result<Self> {
        if !members.contains(&env.rank) || members.end > env.world_size {
            return Err(Rendezvous(
                format!(
                    "ring {name}: rank {} of {} cannot join ranks {members:?}",
                    env.rank, env.world_size
                ),
                None,
            ));
        }
        let rendezvous = rendezvous::Rendezvous::join_served(env)?;
        Self::connect_among(rendezvous, env, name, members)
    }

    fn connect_among(
        mut rendezvous: rendezvous::Rendezvous,
        env: &RankEnv,
        name: &str,
        members: Range<usize>,
    ) -> Result<Self> {
        let deadline = Instant::now() + env.timeout;
        let listener = TcpListener::bind((rendezvous.local_ip()?, 0))
            .explain(Rendezvous, || "opening this rank's ring port".into())?;
        let my_addr = listener.local_addr()?;
        tracing::debug!("rank {} accepts its {name} peer on {my_addr}", env.rank);
        let entry = format!("{} {my_addr}", env.world_size);
        rendezvous.publish(&format!("{name}/{}", env.rank), entry.as_bytes())?;

        let mut addrs = Vec::with_capacity(members.len());
        for rank in members.clone() {
            let left = deadline.saturating_duration_since(Instant::now());
            let entry = rendezvous
                .fetch(&format!("{name}/{rank}"), left)?
                .explain(Rendezvous, || missing_rank(env, rank))?;
            let entry =
                String::from_utf8(entry).explain(Rendezvous, || "malformed ring entry".into())?;
            let (world, addr) = entry
                .split_once(' ')
                .explain(Rendezvous, || "malformed ring entry".into())?;
            if world != env.world_size.to_string() {
                return Err(Rendezvous(
                    format!(
                        "rank {rank} was started with WORLD_SIZE={world}, this rank ({}) with WORLD_SIZE={}",
                        env.rank, env.world_size
                    ),
                    None,
                ));
            }
            addrs.push(
                addr.parse::<SocketAddr>()
                    .explain(Rendezvous, || "malformed ring address".into())?,
            );
        }

        let (size, position) = (members.len(), env.rank - members.start);
        let next_addr = addrs[(position + 1) % size];
        let prev_rank = members.start + (position + size - 1) % size;
        let from_prev = handshake::Link {
            ring: name,
            from: prev_rank,
            to: env.rank,
            secret: env.secret.as_ref(),
        };
        let to_next = handshake::Link {
            ring: name,
            from: env.rank,
            to: members.start + (position + 1) % size,
            secret: env.secret.as_ref(),
        };
        let (to_next, from_prev) = std::thread::scope(|s| {
            let accept = s.spawn(|| handshake::accept(&listener, &from_prev, deadline));
            let to_next = handshake::dial(next_addr, &to_next, deadline);
            let from_prev = accept
                .join()
                .map_err(|_| Rendezvous("ring accept thread panicked".into(), None))?;
            Ok::<_, super::error::DistributedError>((to_next?, from_prev?))
        })?;
        Ok(TcpRing {
            rank: position,
            world_size: size,
            to_next,
            from_prev,
            received: Vec::new(),
            _rendezvous: rendezvous,
        })
    }

    /// Sends `data[send]` to the next rank while receiving as many values as `recv` holds
    /// from the previous one, then adds them into `data[recv]` (or overwrites it).
    fn exchange<T: Pod + AddAssign>(
        &mut self,
        data: &mut [T],
        send: Range<usize>,
        recv: Range<usize>,
        add: bool,
    ) -> Result<()> {
        let bytes = std::mem::size_of_val(&data[recv.clone()]);
        self.received
            .resize(bytes.div_ceil(std::mem::size_of::<f64>()), 0.0);
        let received = &mut bytemuck::cast_slice_mut::<f64, u8>(&mut self.received)[..bytes];
        let (to_next, from_prev) = (&mut self.to_next, &mut self.from_prev);
        let outgoing: &[u8] = bytemuck::cast_slice(&data[send]);
        std::thread::scope(|s| {
            let writer = s.spawn(move || to_next.write_all(outgoing));
            let read = from_prev.read_exact(received);
            let written = writer
                .join()
                .map_err(|_| Collective("ring writer panicked".into(), None))?;
            written.explain(Collective, || "sending to the next rank".into())?;
            read.explain(Collective, || "receiving from the previous rank".into())
        })?;
        let incoming: &[T] =
            bytemuck::cast_slice(&bytemuck::cast_slice::<f64, u8>(&self.received)[..bytes]);
        let target = &mut data[recv];
        if add {
            target.iter_mut().zip(incoming).for_each(|(d, &r)| *d += r);
        } else {
            target.copy_from_slice(incoming);
        }
        Ok(())
    }

    /// The ring all-reduce of values of any plain type: BatchNorm statistics travel in f64.
    pub fn all_reduce_sum_of<T: Pod + AddAssign>(&mut self, data: &mut [T]) -> Result<()> {
        let (w, r, n) = (self.world_size, self.rank, data.len());
        // Reduce-scatter: after w - 1 steps this rank holds the full sum of chunk r + 1.
        for step in 0..w - 1 {
            let send = self.chunk(r + w - step, n);
            let recv = self.chunk(r + w - step - 1, n);
            self.exchange(data, send, recv, true)?;
        }
        // All-gather: pass the finished chunks around the ring.
        for step in 0..w - 1 {
            let send = self.chunk(r + 1 + w - step, n);
            let recv = self.chunk(r + w - step, n);
            self.exchange(data, send, recv, false)?;
        }
        Ok(())
    }

    /// The `i`-th of `world_size` nearly equal parts of `0..len`.
    fn chunk(&self, i: usize, len: usize) -> Range<usize> {
        let i = i % self.world_size;
        i * len / self.world_size..(i + 1) * len / self.world_size
    }
}

impl Communicator for TcpRing {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        self.all_reduce_sum_of(data)
    }

    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        let w = self.world_size;
        let position = (self.rank + w - root) % w;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(data);
        if position > 0 {
            self.from_prev
                .read_exact(bytes)
                .explain(Collective, || "receiving a broadcast".into())?;
        }
        if position < w - 1 {
            self.to_next
                .write_all(bytes)
                .explain(Collective, || "forwarding a broadcast".into())?;
        }
        Ok(())
    }
}

/// Why rank `rank` is missing, with the usual cause under Slurm.
fn missing_rank(env: &RankEnv, rank: usize) -> String {
    let hint = match env.launcher {
        Launcher::Slurm => " (under Slurm, start every task with srun)",
        Launcher::Torchrun => "",
    };
    format!(
        "rank {rank} did not arrive within {:?} (this is rank {}){hint}",
        env.timeout, env.rank
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::auth::Secret;
    use crate::distributed::store::{StoreClient, StoreConfig, StoreServer};
    use std::time::Duration;

    const LONG: Duration = Duration::from_secs(10);

    fn env(rank: usize, world_size: usize, port: u16) -> RankEnv {
        RankEnv::on_this_machine(rank, world_size, port)
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Runs `body` on `world` ranks, each a thread with its own ring.
    fn on_ranks<T: Send>(world: usize, body: impl Fn(&mut TcpRing) -> T + Sync) -> Vec<T> {
        let port = free_port();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..world)
                .map(|rank| {
                    let body = &body;
                    s.spawn(move || body(&mut TcpRing::connect(&env(rank, world, port)).unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn all_reduce_sums_over_ranks_for_awkward_lengths() {
        for world in [2, 3] {
            for len in [1, 2, 7, 1000] {
                let results = on_ranks(world, |ring| {
                    let mut data: Vec<f32> =
                        (0..len).map(|i| (i * (ring.rank() + 1)) as f32).collect();
                    ring.all_reduce_sum(&mut data).unwrap();
                    data
                });
                let factor: usize = (1..=world).sum();
                let expected: Vec<f32> = (0..len).map(|i| (i * factor) as f32).collect();
                for data in results {
                    assert_eq!(data, expected, "world {world}, length {len}");
                }
            }
        }
    }

    /// f64 values keep the digits an f32 transport would drop.
    #[test]
    fn all_reduce_of_f64_keeps_double_precision() {
        let results = on_ranks(3, |ring| {
            let mut data = vec![1.0 + 1e-12 * (ring.rank() + 1) as f64; 5];
            ring.all_reduce_sum_of(&mut data).unwrap();
            data
        });
        for data in results {
            for sum in data {
                assert!((sum - (3.0 + 6e-12)).abs() < 1e-15, "{sum}");
            }
        }
    }

    /// Rings of ranks {0, 1} and {2, 3}, joined after the job's ring, sum within themselves.
    #[test]
    fn group_rings_sum_over_their_members_only() {
        let port = free_port();
        let sums: Vec<(usize, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|rank| {
                    s.spawn(move || {
                        let env = env(rank, 4, port);
                        let mut job = TcpRing::connect(&env).unwrap();
                        let first = rank / 2 * 2;
                        let mut group =
                            TcpRing::connect_group(&env, "pair", first..first + 2).unwrap();
                        let mut data = vec![(rank + 1) as f32; 3];
                        group.all_reduce_sum(&mut data).unwrap();
                        job.barrier().unwrap();
                        (group.rank(), data)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            sums,
            [
                (0, vec![3.0; 3]),
                (1, vec![3.0; 3]),
                (0, vec![7.0; 3]),
                (1, vec![7.0; 3])
            ]
        );
    }

    #[test]
    fn broadcast_copies_the_root_everywhere() {
        let results = on_ranks(3, |ring| {
            let mut data = vec![ring.rank() as f32; 5];
            ring.broadcast(&mut data, 1).unwrap();
            ring.barrier().unwrap();
            data
        });
        assert!(results.iter().all(|d| d == &[1.0; 5]));
    }

    #[test]
    fn a_missing_rank_or_a_mismatched_world_size_fails_with_its_name() {
        let port = free_port();
        let mut lonely = env(0, 2, port);
        lonely.timeout = Duration::from_millis(500);
        let err = TcpRing::connect(&lonely).err().unwrap().to_string();
        assert!(err.contains("rank 1 did not arrive"), "{err}");

        let port = free_port();
        let errors = std::thread::scope(|s| {
            let a = s.spawn(|| {
                TcpRing::connect(&env(0, 2, port))
                    .err()
                    .map(|e| e.to_string())
            });
            let b = s.spawn(|| {
                let mut e = env(1, 3, port);
                e.timeout = Duration::from_secs(3);
                TcpRing::connect(&e).err().map(|e| e.to_string())
            });
            [a.join().unwrap(), b.join().unwrap()]
        });
        let all = format!("{errors:?}");
        assert!(
            all.contains("WORLD_SIZE=3") || all.contains("WORLD_SIZE=2"),
            "{all}"
        );
    }

    fn job_secret() -> Secret {
        Secret::from_user("CORNET_JOB_SECRET", "the-secret-of-this-job".into()).unwrap()
    }

    /// A rank under torchrun: the store is the agent's, PyTorch's, which asks no proof of
    /// anyone; the ring checks the job's secret if it has one.
    fn under_torchrun(rank: usize, world: usize, port: u16, secret: Option<&Secret>) -> RankEnv {
        let mut env = env(rank, world, port);
        env.agent_store = true;
        env.secret = secret.cloned();
        env
    }

    /// An open store, as torchrun's agent serves.
    fn open_store() -> StoreServer {
        StoreServer::start(&StoreConfig::local(0)).unwrap()
    }

    #[test]
    fn ranks_with_the_job_secret_prove_it_to_the_store_and_to_each_other() {
        let (port, job) = (free_port(), job_secret());
        let sums = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let mut env = env(rank, 3, port);
                    env.secret = Some(job.clone());
                    s.spawn(move || {
                        let mut ring = TcpRing::connect(&env).unwrap();
                        let mut data = vec![(rank + 1) as f32; 4];
                        ring.all_reduce_sum(&mut data).unwrap();
                        data
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert!(sums.iter().all(|sum| sum == &[6.0; 4]), "{sums:?}");
    }

    /// #24's attack under torchrun, whose store is open: a stranger sets the next rank's ring
    /// address to its own before that rank arrives. Rank 0 dials it, gets no proof of the
    /// secret, and stops saying so; what it sent holds nothing of the secret.
    #[test]
    fn a_forged_ring_address_is_refused_for_want_of_proof() {
        let (store, job) = (open_store(), job_secret());
        let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
        let forged = format!("2 {}", impostor.local_addr().unwrap());
        let mut stranger = StoreClient::connect("127.0.0.1", store.port(), LONG, None).unwrap();
        stranger
            .set("cornet/none/attempt_0/ring/1", forged.as_bytes())
            .unwrap();
        let heard = std::thread::spawn(move || {
            let (mut socket, _) = impostor.accept().unwrap();
            socket.set_read_timeout(Some(LONG)).unwrap();
            // It claims to prove, with bytes it cannot make right.
            socket.write_all(&[1u8; 65]).unwrap();
            let mut heard = Vec::new();
            let _ = socket.read_to_end(&mut heard);
            heard
        });
        let mut rank_0 = under_torchrun(0, 2, store.port(), Some(&job));
        rank_0.timeout = Duration::from_secs(2);
        let err = TcpRing::connect(&rank_0).err().unwrap().to_string();
        assert!(
            err.contains("could not prove it knows CORNET_JOB_SECRET"),
            "{err}"
        );
        let heard = heard.join().unwrap();
        let secret = job.expose().as_bytes();
        assert!(!heard.is_empty() && !heard.windows(secret.len()).any(|w| w == secret));
    }

    /// Strangers who reach a rank's ring port before its neighbour, claiming to be it, are
    /// closed (one offers no proof, one a wrong one); the neighbour that proves the secret is
    /// taken and the ring sums.
    #[test]
    fn strangers_on_a_ranks_ring_port_are_closed_and_the_neighbour_taken() {
        let (store, job) = (open_store(), job_secret());
        let port = store.port();
        std::thread::scope(|s| {
            let rank_1 = s.spawn(|| {
                let mut ring = TcpRing::connect(&under_torchrun(1, 2, port, Some(&job))).unwrap();
                let mut data = vec![2.0f32; 3];
                ring.all_reduce_sum(&mut data).unwrap();
                data
            });
            let mut store_client = StoreClient::connect("127.0.0.1", port, LONG, None).unwrap();
            let entry = store_client
                .get("cornet/none/attempt_0/ring/1", LONG)
                .unwrap()
                .unwrap();
            let addr = String::from_utf8(entry).unwrap();
            let addr = addr.split_once(' ').unwrap().1.to_owned();
            // Both connect before rank 0 does: rank 1 takes them first.
            let strangers: Vec<_> = [false, true]
                .map(|proves| {
                    let mut socket = TcpStream::connect(&addr).unwrap();
                    socket.set_read_timeout(Some(LONG)).unwrap();
                    s.spawn(move || {
                        // Claims rank 0; the second offers a challenge and a made-up proof.
                        socket.write_all(&[0, 0, 0, 0, u8::from(proves)]).unwrap();
                        if proves {
                            socket.write_all(&[9u8; 32]).unwrap();
                            socket.read_exact(&mut [0u8; 65]).unwrap();
                            socket.write_all(&[9u8; 32]).unwrap();
                        }
                        let mut rest = Vec::new();
                        let _ = socket.read_to_end(&mut rest);
                        rest
                    })
                })
                .into_iter()
                .collect();
            let mut ring = TcpRing::connect(&under_torchrun(0, 2, port, Some(&job))).unwrap();
            let mut data = vec![1.0f32; 3];
            ring.all_reduce_sum(&mut data).unwrap();
            assert_eq!(data, [3.0; 3]);
            assert_eq!(rank_1.join().unwrap(), [3.0; 3]);
            for stranger in strangers {
                // At most the listener's PROVES byte; never ACCEPTED after it.
                let rest = stranger.join().unwrap();
                assert!(rest.len() <= 1, "{rest:?}");
            }
        });
    }

    #[test]
    fn ranks_that_disagree_on_having_a_secret_say_so() {
        let (store, job) = (open_store(), job_secret());
        let port = store.port();
        let errors = std::thread::scope(|s| {
            let ranks: Vec<_> = [Some(&job), None]
                .into_iter()
                .enumerate()
                .map(|(rank, secret)| {
                    let mut env = under_torchrun(rank, 2, port, secret);
                    env.timeout = Duration::from_secs(2);
                    s.spawn(move || TcpRing::connect(&env).err().unwrap().to_string())
                })
                .collect();
            ranks
                .into_iter()
                .map(|r| r.join().unwrap())
                .collect::<Vec<_>>()
        });
        for err in errors {
            assert!(err.contains("set the same secret for every rank"), "{err}");
        }
    }
}
