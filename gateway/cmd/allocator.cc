// jemalloc's options for the engine binary (and agentos_bench, whose in-process rows run
// the engine's code): read by jemalloc at its first allocation; MALLOC_CONF in the
// environment applies on top (MALLOC_CONF=stats_print:true prints them at exit).
//
// muzzy_decay_ms:-1 — memory jemalloc has not reused for dirty_decay_ms (10 s, the
// default) is handed back to the kernel with MADV_FREE and left so, instead of being
// unmapped with MADV_DONTNEED (jemalloc's default, muzzy_decay_ms 0). The kernel takes
// MADV_FREE pages whenever it needs memory; until it does, an allocation that reuses them
// touches them without a page fault. The engine frees and allocates the same amounts all
// the time — each RocksDB memtable is freed after its flush and the next one allocated —
// and with the default every new memtable's pages were faulted in anew: under HTTP
// batches of 100 for 30 s, 5-7 thousand page faults per second, against 0.1-0.8
// thousand with this option (tests/bench/RESULTS.md, 2026-12-06; on that VM a page
// fault costs 12-16 us).
//
// background_thread:true — jemalloc's own thread does the decay. Without it, decay runs
// only inside allocations, so an engine gone idle after a burst would keep the burst's
// freed pages until it allocated again.
//
// What it costs: RSS counts lazily freed pages until the kernel takes them (`LazyFree`
// in /proc/PID/smaps_rollup) and so sits nearer the engine's peak than its current use;
// agentos_bench's memory rows report RSS less LazyFree (tests/bench/README.md).
extern "C" {
// The symbol jemalloc looks up (unprefixed, as Debian builds it); jemalloc declares it
// weak, so this definition replaces its null default.
const char* malloc_conf = "background_thread:true,muzzy_decay_ms:-1";
}
