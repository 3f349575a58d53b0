// RocksDB's CRC32C on the CPU's instruction.
//
// RocksDB checksums every WAL record with CRC32C (`rocksdb::crc32c::Extend`). Debian's
// librocksdb 7.8 is built for any x86-64 CPU, so it computes CRC32C with lookup tables:
// `rocksdb::crc32c::IsFastCrc32Supported()` answers "Not supported on x86". Under HTTP
// batches that table loop is the largest single function of the engine's profile, in the
// log's committer and in every processor's commit (tests/bench/RESULTS.md).
//
// This engine defines `rocksdb::crc32c::Extend` itself: librocksdb calls it through its
// procedure linkage table, so the dynamic linker binds those calls to the executable's
// definition, as it does for any symbol an executable defines (`operator new` the same
// way). On a CPU with SSE4.2 it runs the `crc32` instruction (about 8 GB/s here against
// 1.3 GB/s); on one without, it calls librocksdb's own function. CRC32C is one function:
// the result is the same bit for bit, so files written either way read either way
// (tests/events/rocks_crc32c_test.cc compares the two on every length and alignment).
#pragma once

#include <cstddef>
#include <cstdint>

namespace agentos {

enum class RocksCrc32c {
  instruction,  // SSE4.2's crc32, in this process
  library,      // librocksdb's own (a CPU without SSE4.2)
};

// Which implementation RocksDB's checksums run in this process. Every binary that opens a
// store calls it (use_rocks_budget): that is also what links the definition in, since
// nothing else in the engine names it.
RocksCrc32c rocks_crc32c();

// `crc` extended over `n` bytes at `data`, as `rocksdb::crc32c::Extend` computes it: `crc`
// is the unmasked checksum of the bytes before (0 for none).
using RocksCrc32cFn = uint32_t (*)(uint32_t crc, const char* data, size_t n);

// librocksdb's own CRC32C, bypassing this process's definition (for the tests).
uint32_t rocks_crc32c_library(uint32_t crc, const char* data, size_t n);

// For the tests: makes RocksDB's calls run `fn` from now on and returns what they ran
// before (the implementation chosen, once one call has chosen it).
RocksCrc32cFn exchange_rocks_crc32c_for_test(RocksCrc32cFn fn);

}  // namespace agentos
