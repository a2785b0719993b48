//! Locking primitives.
pub mod spinlock;
