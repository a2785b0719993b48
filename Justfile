# lockvmm recipes (the same commands the README gives; `just` is optional).

# Install what a fresh machine needs for the guest kernel.
setup:
    rustup target add x86_64-unknown-none

# The headline scenario (seed 000's hard lockup on 64 vCPUs).
run scenario="scenarios/lbr_gfp.toml":
    cargo run --release -- run {{scenario}}

# Every test (boots real VMs on /dev/kvm).
test:
    cargo test --workspace

# Format and lint host and guest.
lint:
    cargo fmt --all -- --check
    cd guest && cargo fmt -- --check
    cargo clippy --all-targets -- -D warnings
    cd guest && cargo clippy --release --target-dir ../target/guest -- -D warnings

# Boot time and memory for 1, 8 and 64 vCPUs; wall time of every scenario.
bench:
    cargo run --release -- bench boot
    cargo run --release -- bench scenarios

# What CI runs.
ci:
    bash .ci/run
