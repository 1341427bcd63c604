//! Argon2id password hashing on a pool of its own threads.

use std::alloc::System;
use std::cell::RefCell;
use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version, ARGON2ID_IDENT};
use tokio::sync::{oneshot, OnceCell};
use uuid::Uuid;

use super::{UserError, MAX_PASSWORD_BYTES};

/// Argon2id hashing on a fixed set of worker threads, one hash per core at a time, so a
/// login flood queues instead of exhausting memory (each hash takes 19 MiB). Fixed threads
/// also keep the allocator from spreading those 19 MiB blocks over ever more arenas.
/// The queue is bounded: beyond it a request is refused at once (503) instead of waiting
/// behind a backlog, and a queued request whose caller has gone is dropped unhashed.
pub struct Passwords {
    jobs: Mutex<mpsc::SyncSender<HashJob>>,
    /// Verified against when the user does not exist, so that costs the same time.
    dummy_hash: OnceCell<String>,
}

type HashJob = Box<dyn FnOnce() + Send>;

/// OWASP's minimum: 19 MiB, 2 iterations, 1 lane.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default()
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// Each hashing thread allocates its Argon2 memory once and reuses it for every hash:
    /// allocating 19 MiB per hash made the process grow with every sign-in. It comes from the
    /// system allocator, which unmaps it when the thread ends; the global allocator (mimalloc)
    /// would keep it resident until other allocations happened to purge it.
    static MEMORY: RefCell<SystemVec<Block>> = const { RefCell::new(SystemVec::new_in(System)) };
}

type SystemVec<T> = allocator_api2::vec::Vec<T, System>;

fn with_memory<T>(params: &Params, work: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with_borrow_mut(|blocks| {
        if blocks.len() != params.block_count() {
            *blocks = allocator_api2::vec![in System; Block::default(); params.block_count()];
        }
        work(blocks)
    })
}

fn hash_blocking(password: &[u8]) -> Result<String, UserError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| UserError::Hashing(e);
    let params = params();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buffer)
        .map_err(|e| failed(e.into()))?;
    let mut output = [0u8; 32];
    with_memory(&params, |blocks| {
        argon2(params.clone()).hash_password_into_with_memory(
            password,
            salt_bytes,
            &mut output,
            blocks,
        )
    })
    .map_err(|e| failed(e.into()))?;
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(e.into()))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|e| failed(e.into()))?),
    };
    Ok(hash.to_string())
}

/// Recomputes the hash with the stored salt and parameters; compares in constant time.
fn verify_blocking(password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let mut output = vec![0u8; expected.len()];
    let computed = with_memory(&params, |blocks| {
        argon2(params.clone()).hash_password_into_with_memory(password, salt, &mut output, blocks)
    });
    computed.is_ok() && Output::new(&output).is_ok_and(|output| output == expected)
}

/// Hashes waiting per hashing thread at most: about a second of work at OWASP's parameters.
const QUEUED_PER_WORKER: usize = 16;

impl Passwords {
    /// Starts one hashing thread per core; they end when this is dropped.
    pub async fn new() -> Result<Passwords, UserError> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (jobs, queue) = mpsc::sync_channel::<HashJob>(workers * QUEUED_PER_WORKER);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || loop {
                    let job = queue
                        .lock()
                        .map_err(|_| ())
                        .and_then(|queue| queue.recv().map_err(|_| ()));
                    match job {
                        Ok(job) => job(),
                        Err(()) => break,
                    }
                })
                .map_err(|e| UserError::Hashing(e.into()))?;
        }
        Ok(Passwords {
            jobs: Mutex::new(jobs),
            dummy_hash: OnceCell::new(),
        })
    }

    /// Runs `work` on a hashing thread, after the hashes queued before it, unless the caller
    /// has stopped waiting by then (client gone, request timed out). `Busy` if the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, UserError> {
        let (done, result) = oneshot::channel();
        let job: HashJob = Box::new(move || {
            if done.is_closed() {
                metrics::counter!("tollgate_password_hashes_total", "outcome" => "abandoned")
                    .increment(1);
                return;
            }
            metrics::counter!("tollgate_password_hashes_total", "outcome" => "hashed").increment(1);
            let _ = done.send(work());
        });
        let stopped = || UserError::Hashing("the hashing threads have stopped".into());
        match self.jobs.lock().map_err(|_| stopped())?.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                metrics::counter!("tollgate_password_hashes_total", "outcome" => "refused")
                    .increment(1);
                return Err(UserError::Busy);
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        result.await.map_err(|_| stopped())
    }

    pub async fn hash(&self, password: String) -> Result<String, UserError> {
        validate_password(&password)?;
        self.run(move || hash_blocking(password.as_bytes())).await?
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, UserError> {
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash,
            None => self
                .dummy_hash
                .get_or_try_init(|| async {
                    self.run(|| hash_blocking(Uuid::new_v4().as_bytes()))
                        .await?
                })
                .await?
                .clone(),
        };
        let matches = self
            .run(move || verify_blocking(password.as_bytes(), &hash))
            .await?;
        Ok(known && matches)
    }
}

fn validate_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::Invalid("the password must not be empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::Invalid("the password is longer than 1024 bytes"));
    }
    Ok(())
}
