//! Locking primitives (Linux's `kernel/locking`).
pub mod lockdep;
pub mod mutex;
pub mod qrwlock;
pub mod qspinlock;
pub mod semaphore;
pub mod spinlock;
pub mod ticket_spinlock;
