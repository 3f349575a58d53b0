#include "events/rocks_crc32c.h"

#include <dlfcn.h>
#include <nmmintrin.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "events/logging.h"

// Exported by librocksdb (util/crc32c.h is not installed): "Supported on x86" where its
// build has a fast CRC32C, "Not supported on x86" where it computes it with tables.
namespace rocksdb::crc32c {
std::string IsFastCrc32Supported();
}  // namespace rocksdb::crc32c

namespace agentos {
namespace {

// The mangled name of rocksdb::crc32c::Extend(unsigned int, char const*, unsigned long).
constexpr const char* kExtendSymbol = "_ZN7rocksdb6crc32c6ExtendEjPKcm";

bool has_sse42() {
  __builtin_cpu_init();  // libgcc's own constructor may not have run yet
  return __builtin_cpu_supports("sse4.2");
}

// Resolved once: RTLD_NEXT finds the definition after this executable's, librocksdb's.
RocksCrc32cFn library_extend() {
  static const RocksCrc32cFn fn = [] {
    auto* f = reinterpret_cast<RocksCrc32cFn>(dlsym(RTLD_NEXT, kExtendSymbol));
    if (f == nullptr) {
      log_line(LogLevel::kError, "rocksdb crc32c: librocksdb's own function not found", {{"symbol", kExtendSymbol}});
      std::abort();
    }
    return f;
  }();
  return fn;
}

// CRC32C (Castagnoli, reflected, pre- and post-inverted, as RocksDB computes it) with
// SSE4.2's crc32: the bytes up to an 8-byte boundary one at a time, then 8 at a time
// (little-endian loads, as RocksDB's DecodeFixed64), then the rest.
__attribute__((target("sse4.2"))) uint32_t extend_instruction(uint32_t crc, const char* p, size_t n) {
  uint64_t c = crc ^ 0xffffffffu;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), static_cast<uint8_t>(*p++));
    --n;
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  for (; n > 0; --n) c = _mm_crc32_u8(static_cast<uint32_t>(c), static_cast<uint8_t>(*p++));
  return static_cast<uint32_t>(c) ^ 0xffffffffu;
}

// The instruction, unless the CPU lacks it or librocksdb's own is fast already (a build
// with SSE4.2 and PCLMUL interleaves three streams, faster than this one).
RocksCrc32cFn chosen_extend() {
  static const RocksCrc32cFn fn = [] {
    const bool library_fast = rocksdb::crc32c::IsFastCrc32Supported().starts_with("Supported");
    return has_sse42() && !library_fast ? &extend_instruction : library_extend();
  }();
  return fn;
}

uint32_t choose_and_extend(uint32_t crc, const char* p, size_t n);

// What RocksDB's calls run: this chooser until the first call, then the chosen function.
// Constant-initialised, so a store opened by another static constructor finds it set.
constinit std::atomic<RocksCrc32cFn> g_extend{&choose_and_extend};

uint32_t choose_and_extend(uint32_t crc, const char* p, size_t n) {
  RocksCrc32cFn expected = &choose_and_extend;
  g_extend.compare_exchange_strong(expected, chosen_extend(), std::memory_order_acq_rel);
  return g_extend.load(std::memory_order_acquire)(crc, p, n);
}

}  // namespace

RocksCrc32cFn rocks_crc32c_chosen() { return chosen_extend(); }

RocksCrc32c rocks_crc32c() {
  const RocksCrc32cFn chosen = chosen_extend();
  if (g_extend.load(std::memory_order_acquire) == &choose_and_extend) return RocksCrc32c::not_called;
  return chosen == &extend_instruction ? RocksCrc32c::instruction : RocksCrc32c::library;
}

const char* to_string(RocksCrc32c which) {
  switch (which) {
    case RocksCrc32c::instruction: return "sse4.2";
    case RocksCrc32c::library: return "librocksdb";
    case RocksCrc32c::not_called: break;
  }
  return "librocksdb, not bound";
}

uint32_t rocks_crc32c_library(uint32_t crc, const char* data, size_t n) { return library_extend()(crc, data, n); }

RocksCrc32cFn exchange_rocks_crc32c_for_test(RocksCrc32cFn fn) {
  RocksCrc32cFn before = g_extend.exchange(fn != nullptr ? fn : &choose_and_extend, std::memory_order_acq_rel);
  return before == &choose_and_extend ? nullptr : before;
}

}  // namespace agentos

// The definition librocksdb's calls bind to (rocks_crc32c.h): default visibility, so the
// linker exports it from the executable.
namespace rocksdb::crc32c {
__attribute__((visibility("default"))) uint32_t Extend(uint32_t crc, const char* buf, size_t size);
uint32_t Extend(uint32_t crc, const char* buf, size_t size) {
  return agentos::g_extend.load(std::memory_order_acquire)(crc, buf, size);
}
}  // namespace rocksdb::crc32c
