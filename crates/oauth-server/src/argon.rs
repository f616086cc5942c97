//! argon2id verification, for client secrets and user passwords alike.
//!
//! - [`PasswordCheck`]: a small pool of dedicated threads
//!   (`OAUTH_ARGON2_THREADS`, default [`DEFAULT_THREADS`]) that runs every
//!   verification, each thread reusing one memory buffer while jobs are
//!   waiting and freeing it when none is. Not tokio's blocking pool: there
//!   each verification may land on a different one of up to 512 threads,
//!   and the allocator keeps a freed 19 MiB block per thread arena; under a
//!   token load of argon2 clients the oauth-server's RSS reached 514–670 MB
//!   (issue 13). Here memory is bounded by threads × the largest `m` cost
//!   seen (2 × 19 MiB by default) during a burst of verifications, and is
//!   returned after it: with [`SecretMemo`] a busy client is verified once
//!   per [`MEMO_TTL`], and two idle buffers kept for the life of the process
//!   made up 38 of the 54 MiB an oauth-server serving the dev clients held
//!   (issue 15). A buffer is reserved above 32 MiB so that freeing it gives
//!   its pages back without changing glibc's thresholds ([`RESERVE_BLOCKS`]). Callers wait (asynchronously) for a free thread; the
//!   count of verifications and the bytes held are kept for tests
//!   ([`PasswordCheck::verifications`], [`PasswordCheck::held_bytes`]).
//! - [`dummy_phc`]: a PHC string with given parameters, a random salt and a
//!   random output, made without running argon2. An unknown user or client
//!   is verified against it: the verification costs exactly what a real
//!   hash with those parameters costs and compares with 32 random bytes no
//!   secret hashes to, so neither the answer nor its cost tells an unknown
//!   id from a wrong secret. Hashing a random secret instead (as before
//!   issue 15) ran argon2 at start-up on a pool thread, whose 19 MiB buffer
//!   then stayed for the life of the process: 21.6 MiB of anonymous RSS on
//!   an oauth-server that never checks a password (token-es256 bench).
//! - [`SecretMemo`]: a successful client-secret verification is remembered
//!   for [`MEMO_TTL`] under a keyed hash (HMAC-SHA256 with a process-random
//!   key over client id, stored hash and secret; never the secret), so a busy
//!   client does not pay argon2 on every token. A memo belongs to one loaded
//!   registry ([`ClientSecrets`]): a new registry starts with an empty one,
//!   and the stored hash is part of the key, so a changed hash never matches
//!   an old entry. Failures are never remembered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, Block};
use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

use crate::clients::{Registry, SecretHash};

/// `OAUTH_ARGON2_THREADS` default: two verifications at a time.
pub const DEFAULT_THREADS: usize = 2;
/// How long a verified client secret is remembered.
pub const MEMO_TTL: Duration = Duration::from_secs(300);
/// At most this many remembered (client, secret) pairs; when full, expired
/// entries are dropped and, if none has expired, nothing new is remembered.
pub const MEMO_CAPACITY: usize = 4096;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
    permits: Semaphore,
    count: AtomicU64,
    /// Bytes of argon2 memory the threads hold now.
    held: Arc<AtomicUsize>,
}

/// Runs argon2id verifications on the dedicated threads, bounded, and counts them.
#[derive(Clone)]
pub struct PasswordCheck {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheck")
            .field("verifications", &self.verifications())
            .finish_non_exhaustive()
    }
}

impl PasswordCheck {
    /// Starts `threads` (at least 1) verification threads. They end when the
    /// last clone of this handle is dropped.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let held = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (rx, held) = (rx.clone(), held.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx, &held))?;
        }
        Ok(Self {
            pool: Arc::new(Pool {
                jobs: Mutex::new(tx),
                permits: Semaphore::new(threads),
                count: AtomicU64::new(0),
                held,
            }),
        })
    }

    /// How many argon2id verifications ran (tests compare paths with it).
    pub fn verifications(&self) -> u64 {
        self.pool.count.load(Ordering::Relaxed)
    }

    /// Bytes of argon2 memory the threads hold now (reserved; resident is
    /// what the `m` cost touches): 0 once they are idle.
    pub fn held_bytes(&self) -> usize {
        self.pool.held.load(Ordering::Relaxed)
    }

    /// Verifies `secret` against an argon2id PHC string on a pool thread;
    /// `None` when the check could not run (shutting down).
    pub async fn verify(&self, phc: Arc<str>, secret: &[u8]) -> Option<bool> {
        // One permit per thread: a job sent always finds a thread soon, and
        // waiting callers queue here, as tasks, not as buffered jobs.
        let _permit = self.pool.permits.acquire().await.ok()?;
        self.pool.count.fetch_add(1, Ordering::Relaxed);
        let secret = secret.to_vec();
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = tx.send(verify_phc(&phc, &secret, memory));
        });
        self.pool.jobs.lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, held: &AtomicUsize) {
    // Grown to the largest `m` cost seen, reused while jobs are waiting,
    // freed when none is.
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // Another thread holding the lock is waiting for a job (so none is
        // queued) or taking one: either way this thread is idle.
        let waiting = match rx.try_lock() {
            Ok(rx) => rx.try_recv(),
            Err(std::sync::TryLockError::WouldBlock) => Err(mpsc::TryRecvError::Empty),
            Err(std::sync::TryLockError::Poisoned(_)) => return,
        };
        let job = match waiting {
            Ok(job) => Ok(job),
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {
                if memory.capacity() > 0 {
                    held.fetch_sub(bytes_of(&memory), Ordering::Relaxed);
                    memory = Vec::new();
                }
                match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                }
            }
        };
        let Ok(job) = job else {
            return; // every sender dropped: the server is gone
        };
        // A job only grows the buffer (`blocks`).
        let before = bytes_of(&memory);
        job(&mut memory);
        held.fetch_add(bytes_of(&memory).saturating_sub(before), Ordering::Relaxed);
    }
}

fn bytes_of(memory: &Vec<Block>) -> usize {
    memory.capacity() * std::mem::size_of::<Block>()
}

/// The smallest buffer, in blocks, whose freeing leaves glibc's malloc
/// settings alone: just over 32 MiB (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit
/// Linux).
///
/// glibc serves a request of 128 KiB or more with its own `mmap`, and when
/// such a block of at most 32 MiB is freed it raises its process-wide
/// `mmap` threshold to that size (and its trim threshold to twice it). Had
/// the 19 MiB buffer of the default parameters been freed as it is, every
/// later allocation under 19 MiB, in every thread, would come from the
/// arenas, which keep up to 38 MiB each: measured, an oauth-server serving
/// the dev clients grew to 437 MiB. A reservation above 32 MiB is freed
/// with `munmap` and changes nothing; only the pages the blocks touch (the
/// `m` cost) are ever resident.
const RESERVE_BLOCKS: usize = (32 << 20) / std::mem::size_of::<Block>() + 1;

/// `memory` grown to `params`' block count; the blocks to work in.
fn blocks<'m>(params: &argon2::Params, memory: &'m mut Vec<Block>) -> Option<&'m mut [Block]> {
    let n = params.block_count();
    if memory.len() < n {
        if memory.capacity() == 0 {
            memory.reserve_exact(n.max(RESERVE_BLOCKS));
        }
        memory.resize(n, Block::default());
    }
    memory.get_mut(..n)
}

/// What `argon2`'s `verify_password` does, with caller-owned memory blocks.
fn verify_phc(phc: &str, secret: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    let Some(work) = blocks(&params, memory) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret, salt.as_ref(), &mut out, work)
        .is_ok()
        && bool::from(out.ct_eq(expected))
}

/// The argon2 parameters of a PHC string, if it is one.
pub fn params_of(phc: &str) -> Option<argon2::Params> {
    PasswordHash::new(phc)
        .ok()
        .and_then(|h| argon2::Params::try_from(&h).ok())
}

/// An argon2id PHC string with `params`, a random 16-byte salt and a random
/// output of the parameters' length (32 bytes by default): the stand-in
/// verified for unknown ids. No secret hashes to it (a match means guessing
/// the output), and verifying against it costs what any hash with `params`
/// costs. Nothing runs argon2 here, so no worker grows its buffer for it.
pub fn dummy_phc(params: &argon2::Params) -> Result<String, String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let out_len = params
        .output_len()
        .unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
    let mut salt = [0u8; 16];
    let mut out = vec![0u8; out_len];
    aws_lc_rs::rand::fill(&mut salt)
        .and_then(|()| aws_lc_rs::rand::fill(&mut out))
        .map_err(|_| "random generator failed".to_owned())?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(&out)
    ))
}

/// Successful client-secret verifications, remembered for [`MEMO_TTL`] under
/// a keyed hash.
pub struct SecretMemo {
    key: hmac::Key,
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

impl SecretMemo {
    /// An empty memo with a fresh process-random key.
    pub fn new() -> Result<Self, String> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| "random generator failed".to_owned())?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// HMAC(key, len‖client_id ‖ len‖stored hash ‖ secret): length prefixes
    /// keep the parts from sliding into each other.
    fn tag(&self, client_id: &str, stored: &str, secret: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [client_id.as_bytes(), stored.as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.update(secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn remembers(&self, tag: &[u8; 32], now: Instant) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        match seen.get(tag) {
            Some(until) if *until > now => true,
            Some(_) => {
                seen.remove(tag);
                false
            }
            None => false,
        }
    }

    fn remember(&self, tag: [u8; 32], now: Instant) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MEMO_CAPACITY {
            seen.retain(|_, until| *until > now);
            if seen.len() >= MEMO_CAPACITY {
                return;
            }
        }
        seen.insert(tag, now + MEMO_TTL);
    }

    /// How many pairs are remembered (tests).
    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.len())
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Client-secret checks for one loaded registry: the pool, the registry's
/// dummy hash and the memo.
pub struct ClientSecrets {
    check: PasswordCheck,
    /// Verified for an unknown client (or one that has no secret): an
    /// argon2id hash with the parameters of the registry's first argon2id
    /// secret, or nothing when the registry has none (then every known
    /// secret is a fast SHA-256 compare and so is the dummy's).
    dummy: SecretHash,
    memo: SecretMemo,
}

impl ClientSecrets {
    /// Prepares the checks for `registry` (one argon2id hash when it has
    /// argon2id secrets).
    pub async fn for_registry(registry: &Registry, check: PasswordCheck) -> Result<Self, String> {
        let argon2 = registry.argon2_hashes();
        let dummy = match argon2.first().and_then(|phc| params_of(phc)) {
            Some(params) => {
                if argon2
                    .iter()
                    .any(|phc| params_of(phc) != Some(params.clone()))
                {
                    tracing::warn!(
                        "client secrets' argon2id parameters differ: an unknown client costs what \
                         the first one's hash costs; rehash with `oauth-server hash-secret` to even them out"
                    );
                }
                SecretHash::Argon2id(Arc::from(dummy_phc(&params)?))
            }
            None => {
                let mut random = [0u8; 32];
                aws_lc_rs::rand::fill(&mut random)
                    .map_err(|_| "random generator failed".to_owned())?;
                SecretHash::Sha256(random)
            }
        };
        Ok(Self {
            check,
            dummy,
            memo: SecretMemo::new()?,
        })
    }

    /// Checks `secret` for `client_id` against `stored`, or against the
    /// dummy when `stored` is `None` (unknown client, no secret registered,
    /// method not allowed: the answer is then always `false`, at the same
    /// cost). `None` when the check could not run.
    pub async fn verify(
        &self,
        client_id: &str,
        stored: Option<&SecretHash>,
        secret: &[u8],
    ) -> Option<bool> {
        let hash = stored.unwrap_or(&self.dummy);
        let ok = match hash {
            SecretHash::Sha256(_) => hash.verify(secret),
            SecretHash::Argon2id(phc) => {
                let now = Instant::now();
                let tag = self.memo.tag(client_id, phc, secret);
                if stored.is_some() && self.memo.remembers(&tag, now) {
                    return Some(true);
                }
                let ok = self.check.verify(phc.clone(), secret).await?;
                if ok && stored.is_some() {
                    self.memo.remember(tag, now);
                }
                ok
            }
        };
        Some(ok && stored.is_some())
    }

    /// The memo (tests look at its size).
    pub fn memo(&self) -> &SecretMemo {
        &self.memo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher as _;

    fn cheap() -> argon2::Params {
        argon2::Params::new(256, 1, 1, None).unwrap()
    }

    fn hash(secret: &str) -> String {
        Argon2::from(cheap())
            .hash_password(secret.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn verifies_like_argon2_with_reused_memory() {
        let check = PasswordCheck::new(1).unwrap();
        let phc: Arc<str> = Arc::from(hash("right"));
        assert_eq!(check.verify(phc.clone(), b"right").await, Some(true));
        assert_eq!(check.verify(phc.clone(), b"wrong").await, Some(false));
        // A bigger m cost after a smaller one: the buffer grows.
        let big: Arc<str> = Arc::from(
            Argon2::from(argon2::Params::new(1024, 1, 1, None).unwrap())
                .hash_password(b"big")
                .unwrap()
                .to_string(),
        );
        assert_eq!(check.verify(big, b"big").await, Some(true));
        assert_eq!(check.verify(phc, b"right").await, Some(true));
        assert_eq!(
            check.verify(Arc::from("not a phc"), b"x").await,
            Some(false)
        );
        assert_eq!(check.verifications(), 5);
        // Idle: the thread gives its buffer back (right after it answers).
        let deadline = Instant::now() + Duration::from_secs(5);
        while check.held_bytes() != 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(check.held_bytes(), 0);
        // The dev registry's hashes verify too (the crate's default parameters).
        let dev = hash_default("openai-client-secret");
        assert_eq!(
            check.verify(Arc::from(dev), b"openai-client-secret").await,
            Some(true)
        );
    }

    /// The buffer is reused by a job that was already waiting, and freed
    /// once no job is.
    #[test]
    fn the_buffer_is_reused_within_a_burst_and_freed_when_idle() {
        let (tx, rx) = mpsc::channel::<Job>();
        let (seen_tx, seen_rx) = mpsc::channel::<usize>();
        // Each job reports the capacity it found, then asks for 1,000 blocks
        // (which reserves RESERVE_BLOCKS).
        let job = || -> Job {
            let seen_tx = seen_tx.clone();
            Box::new(move |memory: &mut Vec<Block>| {
                let _ = seen_tx.send(memory.capacity());
                blocks(&argon2::Params::new(1000, 1, 1, None).unwrap(), memory);
            })
        };
        tx.send(job()).unwrap();
        tx.send(job()).unwrap();
        let held = Arc::new(AtomicUsize::new(0));
        let worker_held = held.clone();
        let rx = Mutex::new(rx);
        let thread = std::thread::spawn(move || worker(&rx, &worker_held));
        assert_eq!(seen_rx.recv().unwrap(), 0, "the first job starts empty");
        assert_eq!(
            seen_rx.recv().unwrap(),
            RESERVE_BLOCKS,
            "the waiting job reuses it"
        );
        // Nothing waits now: the worker frees the buffer before it blocks.
        let deadline = Instant::now() + Duration::from_secs(5);
        while held.load(Ordering::Relaxed) != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(held.load(Ordering::Relaxed), 0);
        tx.send(job()).unwrap();
        assert_eq!(
            seen_rx.recv().unwrap(),
            0,
            "a job after idling starts empty"
        );
        drop(tx);
        thread.join().unwrap();
    }

    /// With two threads, the one that finishes while the other waits for
    /// a job (holding the queue's lock) frees its buffer too.
    #[tokio::test]
    async fn every_idle_thread_frees_its_buffer() {
        let check = PasswordCheck::new(2).unwrap();
        let phc: Arc<str> = Arc::from(hash("right"));
        let (a, b) = tokio::join!(
            check.verify(phc.clone(), b"right"),
            check.verify(phc.clone(), b"right")
        );
        assert_eq!((a, b), (Some(true), Some(true)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while check.held_bytes() != 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(check.held_bytes(), 0);
    }

    fn hash_default(secret: &str) -> String {
        Argon2::default()
            .hash_password(secret.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn dummy_has_the_given_parameters_and_verifies_like_any_hash() {
        let check = PasswordCheck::new(1).unwrap();
        let phc = dummy_phc(&cheap()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{phc}");
        let dummy = params_of(&phc).unwrap();
        assert_eq!(
            (dummy.m_cost(), dummy.t_cost(), dummy.p_cost()),
            (256, 1, 1)
        );
        // A well-formed hash: argon2's own parser reads a 16-byte salt and a
        // 32-byte output (what `hash_password` writes), and refuses a guess.
        let parsed = PasswordHash::new(&phc).unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let parts: Vec<&str> = phc.split('$').collect();
        assert_eq!(b64.decode(parts[4]).unwrap().len(), 16, "salt");
        assert_eq!(b64.decode(parts[5]).unwrap().len(), 32, "output");
        assert!(
            argon2::password_hash::PasswordVerifier::verify_password(
                &Argon2::from(cheap()),
                b"guess",
                &parsed
            )
            .is_err()
        );
        assert_eq!(check.verifications(), 0, "making it runs no argon2");
        assert_eq!(
            check.verify(Arc::from(phc.clone()), b"guess").await,
            Some(false)
        );
        assert_eq!(check.verifications(), 1, "verifying it is one verification");
        // Two dummies never share a salt or an output.
        assert_ne!(phc, dummy_phc(&cheap()).unwrap());
    }

    #[test]
    fn memo_keys_never_hold_the_secret_and_expire() {
        let memo = SecretMemo::new().unwrap();
        let now = Instant::now();
        let t = memo.tag("c", "$argon2id$h", b"s3cret");
        assert_ne!(t, memo.tag("c", "$argon2id$h", b"s3creT"));
        assert_ne!(t, memo.tag("c", "$argon2id$other", b"s3cret"));
        assert_ne!(t, memo.tag("d", "$argon2id$h", b"s3cret"));
        // The parts cannot slide into each other.
        assert_ne!(memo.tag("ab", "c", b""), memo.tag("a", "bc", b""));
        // Another process (key) gives another tag.
        assert_ne!(
            t,
            SecretMemo::new()
                .unwrap()
                .tag("c", "$argon2id$h", b"s3cret")
        );
        assert!(!memo.remembers(&t, now));
        memo.remember(t, now);
        assert!(memo.remembers(&t, now + MEMO_TTL - Duration::from_secs(1)));
        assert!(!memo.remembers(&t, now + MEMO_TTL));
        assert!(memo.is_empty(), "an expired entry is dropped when seen");
    }

    #[test]
    fn memo_is_bounded() {
        let memo = SecretMemo::new().unwrap();
        let now = Instant::now();
        for i in 0..MEMO_CAPACITY + 10 {
            memo.remember(memo.tag(&i.to_string(), "h", b"s"), now);
        }
        assert_eq!(memo.len(), MEMO_CAPACITY);
        // Once the old ones expired, new ones fit again.
        let later = now + MEMO_TTL + Duration::from_secs(1);
        memo.remember(memo.tag("new", "h", b"s"), later);
        assert_eq!(memo.len(), 1);
    }
}
