#!/usr/bin/env bash
# Builds and runs the README's embedded snippet the way a user would: in a fresh crate outside
# this repository that depends on thorstream by path, with its own dependency resolution (no
# lockfile, no [patch] of ours). A `[patch]` in our manifest never reaches such a crate, so
# this is the only test that sees what a dependent gets.
#
# The snippet is cut from README.md ("## Embedded use", the first ```rust block), unchanged,
# and wrapped in a main that checks the one record it returns.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

snippet="$(awk '/^## Embedded use/{s=1} s && /^```rust/{b=1; next} b && /^```/{exit} b' "$repo/README.md")"
if [ -z "$snippet" ]; then
    echo "external crate: no rust block under '## Embedded use' in README.md" >&2
    exit 1
fi

mkdir -p "$work/app/src"
cat > "$work/app/Cargo.toml" <<TOML
[package]
name = "thorstream-external-app"
version = "0.0.0"
edition = "2021"

[dependencies]
thorstream = { path = "$repo" }
TOML
{
    echo 'fn main() -> Result<(), Box<dyn std::error::Error>> {'
    echo "$snippet"
    cat <<'RS'
    assert_eq!(records.len(), 1, "the snippet's poll returns the record it sent");
    assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    println!("external crate: README snippet ran, {} record polled", records.len());
    Ok(())
}
RS
} > "$work/app/src/main.rs"

# The second rust block there: transactions in-process, as its own binary in its own directory.
txn_snippet="$(awk '/^## Embedded use/{s=1} s && /^```rust/{n++; if (n==2) {b=1; next}} b && /^```/{exit} b' "$repo/README.md")"
if [ -z "$txn_snippet" ]; then
    echo "external crate: no second rust block (transactions) under '## Embedded use'" >&2
    exit 1
fi
mkdir -p "$work/app/src/bin"
{
    echo 'fn main() -> Result<(), Box<dyn std::error::Error>> {'
    echo "$txn_snippet"
    cat <<'RS'
    let values: Vec<_> = committed.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, vec![Some(b"kept".to_vec())], "read_committed sees the commit only");
    let offset = broker.committed_offset("my-group", "orders", 0).map(|c| c.offset);
    assert_eq!(offset, Some(1), "the offsets committed with the transaction");
    println!("external crate: README transactions snippet ran");
    Ok(())
}
RS
} > "$work/app/src/bin/txn.rs"

# Build artifacts are kept under our target dir between runs (CI starts without them).
export CARGO_TARGET_DIR="$repo/target/external-crate"
cd "$work/app"
cargo build --quiet
mkdir -p "$work/run"
cd "$work/run"
"$CARGO_TARGET_DIR/debug/thorstream-external-app"
test -f "$work/run/data/events-0/00000000000000000000.log"
mkdir -p "$work/run-txn"
cd "$work/run-txn"
"$CARGO_TARGET_DIR/debug/txn"
