//! Where the leadership lease is kept: [`LeaseStore`], one record with
//! conditional writes, as the DynamoDB lock client keeps it.
//!
//! Two implementations: [`crate::cloud::aws::DynamoLease`] (a DynamoDB
//! table, `ballast run --lease-table`) and [`MemoryLease`] (in memory, for
//! tests). The rules of the election itself (when to take the lease, how
//! long it is valid, when to stop writing) are in
//! [`crate::controller::leader`]; a store only guarantees that a write
//! conditioned on a version fails once someone else wrote.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds it: an ECS task ARN, or `host:pid`.
    pub holder: String,
    /// Changes with every write (acquire or renew); a conditional write
    /// names the version it expects to replace. Unique per write.
    pub version: String,
    /// When the holder's lease runs out, by the holder's wall clock.
    /// Informative (status, DynamoDB's TTL): nobody decides on it, since
    /// clocks differ; a contender times the version on its own clock.
    pub expires_at: SystemTime,
}

/// Why a lease operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The condition failed: the record is not the version expected (or
    /// exists when it was expected absent). Someone else wrote it.
    #[error("the lease is no longer the version this daemon expected (someone else wrote it)")]
    Conflict,
    /// The store could not be asked (network, throttling, timeout,
    /// permissions). Nothing is known about the record.
    #[error("the lease table cannot be used: {0}")]
    Unavailable(String),
}

/// One lease record with conditional writes.
pub trait LeaseStore: Send + Sync + 'static {
    /// The record as it is now (a strongly consistent read); `None` when
    /// nobody holds the lease.
    fn read(&self) -> impl Future<Output = Result<Option<LeaseRecord>, LeaseError>> + Send;

    /// Take the lease: write `next` if the record is absent (`expected`
    /// `None`) or still the version `expected` (one seen unchanged for a
    /// whole lease duration). [`LeaseError::Conflict`] otherwise.
    fn acquire(
        &self,
        expected: Option<&str>,
        next: &LeaseRecord,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Extend the lease: write `next` if the record is still the version
    /// `held`. [`LeaseError::Conflict`] when someone else took it.
    fn renew(&self, held: &str, next: &LeaseRecord) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Give the lease up: delete the record if it is still the version
    /// `held` (a conflict means it was no longer ours to give).
    fn release(&self, held: &str) -> impl Future<Output = Result<(), LeaseError>> + Send;
}

/// A [`LeaseStore`] in memory, shared by the electors of one test; it can
/// be made unavailable and counts its writes.
#[derive(Debug, Default)]
pub struct MemoryLease {
    record: Mutex<Option<LeaseRecord>>,
    down: AtomicBool,
    writes: AtomicU64,
    reads: AtomicU64,
}

impl MemoryLease {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer every call with [`LeaseError::Unavailable`] while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The record as stored.
    pub fn record(&self) -> Option<LeaseRecord> {
        self.record.lock().unwrap().clone()
    }

    /// Writes (acquire, renew, release) attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Reads attempted so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    fn up(&self) -> Result<(), LeaseError> {
        if self.down.load(Ordering::SeqCst) { Err(LeaseError::Unavailable("the store is down".into())) } else { Ok(()) }
    }

    /// Replace the record with `next` (or delete it) if it is `expected`.
    fn swap(&self, expected: Option<&str>, next: Option<&LeaseRecord>) -> Result<(), LeaseError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.up()?;
        let mut record = self.record.lock().unwrap();
        if record.as_ref().map(|r| r.version.as_str()) != expected {
            return Err(LeaseError::Conflict);
        }
        *record = next.cloned();
        Ok(())
    }
}

impl LeaseStore for MemoryLease {
    async fn read(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.up()?;
        Ok(self.record())
    }

    async fn acquire(&self, expected: Option<&str>, next: &LeaseRecord) -> Result<(), LeaseError> {
        self.swap(expected, Some(next))
    }

    async fn renew(&self, held: &str, next: &LeaseRecord) -> Result<(), LeaseError> {
        self.swap(Some(held), Some(next))
    }

    async fn release(&self, held: &str) -> Result<(), LeaseError> {
        self.swap(Some(held), None)
    }
}

impl<S: LeaseStore> LeaseStore for std::sync::Arc<S> {
    fn read(&self) -> impl Future<Output = Result<Option<LeaseRecord>, LeaseError>> + Send {
        (**self).read()
    }

    fn acquire(
        &self,
        expected: Option<&str>,
        next: &LeaseRecord,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).acquire(expected, next)
    }

    fn renew(&self, held: &str, next: &LeaseRecord) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).renew(held, next)
    }

    fn release(&self, held: &str) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).release(held)
    }
}
