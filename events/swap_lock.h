// SwapLock: readers share a resource that one writer now and then swaps (a store closed
// and reopened in place after a write failure), and the writer cannot be starved.
// std::shared_mutex alone cannot promise that: glibc's rwlock prefers readers, so readers
// that keep overlapping (followers, subscribers, the gateway) keep a writer out for ever
// — the swap, and everything waiting for it, hangs. Here the writer takes a turnstile
// first: readers arriving after it wait at the turnstile, the ones inside finish, the
// writer gets the lock. A reader pays one uncontended mutex more.
//
// Thread-safe. read() and write() return RAII guards.
#pragma once

#include <mutex>
#include <shared_mutex>

namespace agentos {

class SwapLock {
 public:
  std::shared_lock<std::shared_mutex> read() {
    { std::lock_guard turnstile(turnstile_); }
    return std::shared_lock<std::shared_mutex>(rw_);
  }
  std::unique_lock<std::shared_mutex> write() {
    std::lock_guard turnstile(turnstile_);
    return std::unique_lock<std::shared_mutex>(rw_);
  }

 private:
  std::mutex turnstile_;
  std::shared_mutex rw_;
};

}  // namespace agentos
