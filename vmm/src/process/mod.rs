//! The host process itself, below everything that prints or runs a machine: standard output
//! that a reader may close or a full disk may refuse ([`stdout`]), and the signals that ask a
//! run to stop ([`signals`]), and what a running machine shows of itself ([`live`]).
pub mod live;
pub mod signals;
pub mod stdout;
