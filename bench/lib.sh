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
