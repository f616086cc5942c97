//! argon2id verification, for client secrets and user passwords alike.
//!
//! - [`PasswordCheck`]: a small pool of dedicated threads
//!   (`OAUTH_ARGON2_THREADS`, default [`DEFAULT_THREADS`]) that runs every
//!   verification. Not tokio's blocking pool: there each verification may
//!   land on a different one of up to 512 threads, and the allocator keeps a
//!   freed 19 MiB block per thread arena; under a token load of argon2
//!   clients the oauth-server's RSS reached 514–670 MB (issue 13). The
//!   threads' memory buffers (one `m` cost each: 19 MiB by default) are
//!   reused from one verification to the next, and freed once no
//!   verification has started for [`KEEP_IDLE`]: with [`SecretMemo`] a busy
//!   client is verified once per [`MEMO_TTL`], and buffers kept for the life
//!   of the process made up 38 of the 54 MiB an oauth-server serving the dev
//!   clients held (issue 15). Freeing after every verification instead
//!   would fault 19 MiB in again for each one (4,864 page faults; sign-in
//!   p50 measured the same within this VM's noise either way, 62–79 ms
//!   freeing, 65 ms reusing, so the reuse is not claimed as a gain). A
//!   buffer is reserved above 32 MiB so that freeing it gives its pages
//!   back without changing glibc's thresholds ([`RESERVE_BLOCKS`]). Callers
//!   wait (asynchronously) for a free thread; the count of verifications and
//!   the bytes held are kept for tests ([`PasswordCheck::verifications`],
//!   [`PasswordCheck::held_bytes`]).
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
/// How long the argon2 threads keep their memory buffers after the last
/// verification started: a burst of sign-ins or first token requests reuses
/// them, an idle server gives them back.
pub const KEEP_IDLE: Duration = Duration::from_secs(5);
/// At most this many remembered (client, secret) pairs; when full, expired
/// entries are dropped and, if none has expired, nothing new is remembered.
pub const MEMO_CAPACITY: usize = 4096;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
    permits: Semaphore,
    count: AtomicU64,
    buffers: Arc<Buffers>,
}

/// The threads' memory buffers between verifications, and the bytes held.
#[derive(Default)]
struct Buffers {
    /// Buffers of finished verifications, for the next ones; at most one
    /// per thread.
    spare: Mutex<Vec<Vec<Block>>>,
    /// Bytes reserved by every buffer, spare or in use.
    held: AtomicUsize,
}

impl Buffers {
    fn take(&self) -> Vec<Block> {
        self.spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default()
    }

    fn park(&self, memory: Vec<Block>) {
        if memory.capacity() == 0 {
            return;
        }
        match self.spare.lock() {
            Ok(mut spare) => spare.push(memory),
            Err(_) => self.free(&memory),
        }
    }

    fn free_spares(&self) {
        let spares = self.spare.lock().map(|mut s| std::mem::take(&mut *s));
        for memory in spares.unwrap_or_default() {
            self.free(&memory);
        }
    }

    /// Accounts for `memory`, which its caller drops.
    fn free(&self, memory: &Vec<Block>) {
        self.held.fetch_sub(bytes_of(memory), Ordering::Relaxed);
    }
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
        Self::start(threads, KEEP_IDLE)
    }

    /// [`Self::new`], keeping idle buffers for `keep_idle`.
    fn start(threads: usize, keep_idle: Duration) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let buffers = Arc::new(Buffers::default());
        for i in 0..threads {
            let (rx, buffers) = (rx.clone(), buffers.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx, &buffers, keep_idle))?;
        }
        Ok(Self {
            pool: Arc::new(Pool {
                jobs: Mutex::new(tx),
                permits: Semaphore::new(threads),
                count: AtomicU64::new(0),
                buffers,
            }),
        })
    }

    /// How many argon2id verifications ran (tests compare paths with it).
    pub fn verifications(&self) -> u64 {
        self.pool.count.load(Ordering::Relaxed)
    }

    /// Bytes of argon2 memory the threads hold now (reserved; resident is
    /// what the `m` cost touches): 0 once they have been idle for [`KEEP_IDLE`].
    pub fn held_bytes(&self) -> usize {
        self.pool.buffers.held.load(Ordering::Relaxed)
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

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, buffers: &Buffers, keep_idle: Duration) {
    loop {
        // One thread at a time waits on the queue; the others wait for the
        // lock, holding no buffer (theirs are spare). The waiting one frees
        // the spare buffers once no job has come for `keep_idle`.
        let job = {
            let Ok(queue) = rx.lock() else {
                return;
            };
            loop {
                match queue.recv_timeout(keep_idle) {
                    Ok(job) => break job,
                    Err(mpsc::RecvTimeoutError::Timeout) => buffers.free_spares(),
                    // Every sender dropped: the server is gone.
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        let mut memory = buffers.take();
        // A job only grows the buffer (`blocks`).
        let before = bytes_of(&memory);
        job(&mut memory);
        buffers
            .held
            .fetch_add(bytes_of(&memory).saturating_sub(before), Ordering::Relaxed);
        buffers.park(memory);
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
        // The dev registry's hashes verify too (the crate's default parameters).
        let dev = hash_default("openai-client-secret");
        assert_eq!(
            check.verify(Arc::from(dev), b"openai-client-secret").await,
            Some(true)
        );
    }

    /// Waits (up to 10 s) until `held` reads 0; true if it did.
    fn until_zero(held: impl Fn() -> usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while held() != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        held() == 0
    }

    /// A buffer is reused by the next job while jobs keep coming (spaced by
    /// less than `keep_idle`), and freed once none has come for `keep_idle`.
    #[test]
    fn buffers_are_reused_while_busy_and_freed_when_idle() {
        let keep_idle = Duration::from_secs(1);
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
        let buffers = Arc::new(Buffers::default());
        let worker_buffers = buffers.clone();
        let rx = Mutex::new(rx);
        let thread = std::thread::spawn(move || worker(&rx, &worker_buffers, keep_idle));
        tx.send(job()).unwrap();
        assert_eq!(seen_rx.recv().unwrap(), 0, "the first job starts empty");
        for _ in 0..3 {
            std::thread::sleep(keep_idle / 3);
            tx.send(job()).unwrap();
            assert_eq!(
                seen_rx.recv().unwrap(),
                RESERVE_BLOCKS,
                "the next job reuses it"
            );
        }
        // No job now: freed once `keep_idle` has passed (the reuses above
        // show it is not freed before).
        assert!(until_zero(|| buffers.held.load(Ordering::Relaxed)));
        tx.send(job()).unwrap();
        assert_eq!(
            seen_rx.recv().unwrap(),
            0,
            "a job after idling starts empty"
        );
        drop(tx);
        thread.join().unwrap();
    }

    /// Two threads verifying at once keep two buffers, and both are freed
    /// when the pool goes idle (a thread waiting for the queue's lock holds
    /// none).
    #[tokio::test]
    async fn every_buffer_is_freed_when_the_pool_is_idle() {
        let check = PasswordCheck::start(2, Duration::from_millis(200)).unwrap();
        let phc: Arc<str> = Arc::from(hash("right"));
        let (a, b) = tokio::join!(
            check.verify(phc.clone(), b"right"),
            check.verify(phc.clone(), b"right")
        );
        assert_eq!((a, b), (Some(true), Some(true)));
        assert!(check.held_bytes() >= RESERVE_BLOCKS * std::mem::size_of::<Block>());
        let held = check.clone();
        let freed = tokio::task::spawn_blocking(move || until_zero(|| held.held_bytes()));
        assert!(
            freed.await.unwrap(),
            "{} bytes still held",
            check.held_bytes()
        );
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
