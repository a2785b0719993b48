//! Locking primitives (Linux's `kernel/locking`).
pub mod qspinlock;
pub mod spinlock;
