//! A service sharing one store across concurrent tokio tasks.
//!
//! `SessionService` takes `Arc<dyn Store<_>>`s, so it neither knows nor cares whether data
//! lives in Redis or in memory. 64 tasks log users in and out at once; each session expires
//! on its own after an hour, a login never overwrites a live session, and a login counter
//! shared by all tasks is incremented with `update`, which loses no increment.
//!
//! ```text
//! cargo run -p typedkv-examples --example concurrent_service
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p typedkv-examples --example concurrent_service
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use typedkv::{SetOptions, Store, StoreExt, Update};
use typedkv_examples::{Backend, Failure};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
    logins: u32,
}

/// Application code: depends on the trait only.
#[derive(Clone)]
struct SessionService {
    sessions: Arc<dyn Store<Session>>,
    counters: Arc<dyn Store<u64>>,
}

impl SessionService {
    const TTL: Duration = Duration::from_secs(3600);

    /// Starts a session unless one is live; returns whether it was new.
    async fn login(&self, token: &str, user: &str) -> typedkv::Result<bool> {
        let session = Session {
            user: user.to_owned(),
            roles: vec!["reader".into()],
            logins: 1,
        };
        let options = SetOptions::new().if_absent().ttl(Self::TTL);
        let fresh = self.sessions.set_opts(token, &session, options).await?;
        if fresh {
            // Read-modify-write from 64 tasks at once: atomic, so no login is lost.
            self.counters
                .update_with("logins", |n| Update::Set(n.unwrap_or(0) + 1))
                .await?;
        }
        Ok(fresh)
    }

    async fn who(&self, token: &str) -> typedkv::Result<Option<String>> {
        Ok(self.sessions.get(token).await?.map(|s| s.user))
    }

    async fn logout(&self, token: &str) -> typedkv::Result<bool> {
        self.sessions.delete(token).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let backend = Backend::from_env("concurrent_service").await?;
    // A namespace of its own, so a run against a shared Redis touches nothing else.
    let service = SessionService {
        sessions: backend.store::<Session>("example-session")?,
        counters: backend.store::<u64>("example-counter")?,
    };
    service.counters.delete("logins").await?;

    const TASKS: usize = 64;
    const ROUNDS: usize = 100;
    let started = Instant::now();
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let service = service.clone();
            tokio::spawn(async move {
                // Counts answers other than expected (none, unless someone else uses the keys).
                let mut surprises = 0;
                for round in 0..ROUNDS {
                    let token = format!("t{task}-{round}");
                    let user = format!("user{task}");
                    surprises += usize::from(!service.login(&token, &user).await?);
                    surprises += usize::from(service.login(&token, "intruder").await?);
                    surprises += usize::from(service.who(&token).await?.as_deref() != Some(&user));
                    surprises += usize::from(!service.logout(&token).await?);
                }
                Ok::<usize, typedkv::Error>(surprises)
            })
        })
        .collect();
    let mut surprises = 0;
    for worker in workers {
        match worker.await {
            Ok(result) => surprises += result?,
            Err(join) => eprintln!("a worker stopped: {join}"),
        }
    }
    let ops = TASKS * ROUNDS * 5;
    let elapsed = started.elapsed();
    println!(
        "{TASKS} tasks did {ops} store calls in {elapsed:.2?} ({:.0} calls/s), {surprises} unexpected answers",
        ops as f64 / elapsed.as_secs_f64()
    );
    let logins = service.counters.get("logins").await?.unwrap_or(0);
    println!(
        "logins counted with update: {logins} (expected {})",
        TASKS * ROUNDS
    );
    service.counters.delete("logins").await?;
    Ok(())
}
