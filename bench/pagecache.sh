#!/usr/bin/env bash
# bench/pagecache.sh: what the kernel charges a process, per GB, for writing into the page cache
# on this machine -- the floor under any broker's produce CPU that writes through it (Thorstream
# and Kafka both do). dd writes GB gigabytes of zeros to a new file on the bench disk (pages the
# guest takes fresh), then the same again over the cached file (pages already in the cache),
# and prints each one's system CPU seconds per GB. The page-reporting settings show whether the
# guest hands freed memory back to its host: then every page a broker writes after a fresh
# start (or after a dropped cache) is new to the host as well, and costs the first figure.
#
#   bash bench/pagecache.sh [GB=3]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GB=${1:-3}
DIR=${BENCH_DIR:-$ROOT/bench/data}/pagecache
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
for f in /sys/module/page_reporting/parameters/*; do
    [ -e "$f" ] && echo "page_reporting.$(basename "$f") = $(cat "$f")"
done
grep -o 'page_reporting[^ ]*' /proc/cmdline || true
run() { # label dd-args...
    local label=$1 t
    shift
    /usr/bin/time -o "$DIR/time" -f '%S %e' dd if=/dev/zero of="$DIR/f" bs=1M \
        count=$((GB * 1024)) "$@" 2>/dev/null
    t=$(tail -1 "$DIR/time")
    python3 -c 'import sys; s, e = map(float, sys.argv[2].split()); gb = float(sys.argv[3]) * 1.073741824
print(f"{sys.argv[1]:<36} {s / gb:.2f} system CPU-s/GB  ({gb / e:.2f} GB/s)")' "$label" "$t" "$GB"
}
drop_page_cache
sleep 5 # let the guest report the freed pages, as between a benchmark's cells
run "new file (pages new to the cache)"
run "same file again (pages cached)" conv=notrunc
