# Shared by the bench scripts (sourced).

# Drops the page cache (as root; otherwise does nothing), so a cell starts from an empty cache:
# reads then come from the disk, and on this VM writes into a page cache that has grown over
# earlier cells cost several times more CPU (new guest pages).
drop_page_cache() {
    if [ "$(id -u)" = 0 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches || true
    fi
}

# Writes a CA (DIR/ca.pem) and a server certificate for 127.0.0.1 signed by it (DIR/server.pem,
# DIR/server.key), EC P-256 as most deployments choose today, valid 2 days.
make_certs() {
    local d=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=bench-ca" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext.cnf"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
}

# Prints its arguments after the first in run order: as given when the first (a round or cell
# number) is odd, reversed when it is even. On this VM the slot a run takes moves its figures
# (BENCHMARKS.md), so A/B scripts alternate the order instead of always running one side first.
run_order() {
    local n=$1 out= b
    shift
    if [ $((n % 2)) -eq 1 ]; then
        echo "$*"
        return
    fi
    for b in "$@"; do out="$b${out:+ $out}"; done
    echo "$out"
}
