//! Password checks on threads of their own. An argon2 check needs its memory cost (19 MiB by
//! default): allocated per check on the runtime's blocking pool, or even on a few threads of
//! our own, such blocks were not reused and a burst of logins (a shift starting) left hundreds
//! of megabytes resident. A few long-lived threads each keep one block for every check.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use super::auth::{self, User};

/// The permit travels with the job and is released when the check is done, not when the
/// client that asked hangs up: queued checks stay bounded by the permits.
type Job = (
    User,
    String,
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::oneshot::Sender<bool>,
);

pub struct Hashers {
    jobs: Mutex<Sender<Job>>,
}

impl Hashers {
    /// `threads` checks at a time; more wait their turn (the caller bounds how many wait).
    pub fn start(threads: usize) -> Hashers {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("hotline-hash-{n}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "no password-check thread");
            }
        }
        Hashers {
            jobs: Mutex::new(tx),
        }
    }

    /// Whether `password` is the user's; false also when no thread could check it.
    pub async fn verify(
        &self,
        user: User,
        password: String,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((user, password, permit, reply));
        sent.is_ok() && answer.await.unwrap_or(false)
    }
}

/// Ends when the `Hashers` (the only sender) is dropped.
fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((user, password, permit, reply)) = job else {
            return;
        };
        let good = auth::verify(&user, &password, &mut memory);
        drop(permit);
        let _ = reply.send(good);
    }
}
