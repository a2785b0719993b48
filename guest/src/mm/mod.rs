//! Memory management (Linux's `mm`): GFP flags, the page allocator, SLUB, vmalloc space.
pub mod gfp;
pub mod page_alloc;
pub mod slub;
pub mod vmalloc;
