// RocksDB's CRC32C on the CPU's instruction.
//
// RocksDB checksums every WAL record (and every MANIFEST record) with CRC32C
// (`rocksdb::crc32c::Extend`). Debian's librocksdb 7.8 is built for any x86-64 CPU, so
// it computes CRC32C with lookup tables: `rocksdb::crc32c::IsFastCrc32Supported()`
// answers "Not supported on x86". Under HTTP batches that table loop was the largest
// single function of the engine's profile, in the log's committer and in every
// processor's commit (tests/bench/RESULTS.md, 2026-12-07 06:19).
//
// This engine defines `rocksdb::crc32c::Extend` itself: librocksdb calls it through its
// procedure linkage table (none of its 37 calls is direct), so the dynamic linker binds
// those calls to the executable's definition, as it does for any symbol an executable
// defines (`operator new` the same way). On a CPU with SSE4.2 it runs the `crc32`
// instruction (about 8 GB/s here against 1.3 GB/s); on one without, or with a
// librocksdb whose own CRC32C is already fast, it calls librocksdb's. CRC32C is one
// function: the result is the same bit for bit, so files written either way read either
// way (tests/events/rocks_crc32c_test.cc compares the two on lengths 0–300 at every
// alignment and on long buffers, and round-trips a store between them). What librocksdb
// still computes itself is `Crc32cCombine`'s shift of a record's checksum past its type
// byte (a few operations per record).
#pragma once

#include <cstddef>
#include <cstdint>

namespace agentos {

enum class RocksCrc32c {
  instruction,  // RocksDB's calls reach this definition, which runs SSE4.2's crc32
  library,      // they reach it, and it calls librocksdb's own (no SSE4.2, or a fast build)
  not_called,   // RocksDB has not called it: no store opened yet, or a librocksdb that
                // binds its own calls (linked with -Bsymbolic) runs its own
};

// What RocksDB's checksums run in this process. The first call also resolves the
// implementation (librocksdb's own, where it is chosen, is looked up now, so a failure
// stops the process at start rather than inside a store's write). Every store opened
// with use_rocks_budget calls it first: that is also what links the definition into each
// binary, since nothing else in the engine names it.
RocksCrc32c rocks_crc32c();
// "sse4.2", "librocksdb" or "librocksdb, not bound" (the engine's `log opened` line).
const char* to_string(RocksCrc32c which);

// `crc` extended over `n` bytes at `data`, as `rocksdb::crc32c::Extend` computes it: `crc`
// is the unmasked checksum of the bytes before (0 for none).
using RocksCrc32cFn = uint32_t (*)(uint32_t crc, const char* data, size_t n);

// The implementation this process's definition runs: the instruction's loop or
// librocksdb's own function (never the definition itself, so it can be called from a
// function that replaces it).
RocksCrc32cFn rocks_crc32c_chosen();

// librocksdb's own CRC32C, bypassing this process's definition (for the tests).
uint32_t rocks_crc32c_library(uint32_t crc, const char* data, size_t n);

// For the tests: makes RocksDB's calls run `fn` from now on (a function that chooses at
// the first call if `fn` is null) and returns what they ran before (null: they had not
// called yet).
RocksCrc32cFn exchange_rocks_crc32c_for_test(RocksCrc32cFn fn);

}  // namespace agentos
