#include "tests/support/test_util.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace agentos::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "agentos-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  // Polls the condition until the deadline. The first polls only yield (most waits end
  // within microseconds); after that the poll backs off to 1 ms so that a long wait does
  // not keep one of the machine's two cores busy while the engine under test needs it.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int polls = 0; !cond(); ++polls) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    if (polls < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return true;
}

std::string make_event(const std::string& tenant, const std::string& id, int step) {
  std::string json = R"({"specversion":"1.0","type":"session.progress","source":"/test","id":")" + id +
                     R"(","tenantid":")" + tenant + R"(","time":"2026-11-24T10:00:00Z","data":{"sessionId":"s-1","step":"step-)" +
                     std::to_string(step) + R"(","pct":0.5}})";
  DecodeOptions opts;
  opts.path_tenant = TenantId(tenant);
  auto r = decode_structured(json, opts);
  if (!r.ok()) throw std::runtime_error("make_event: " + r.status().to_string());
  return std::move(r->bytes);
}

std::string event_id(const std::string& bytes) { return std::string(read_header(bytes).id); }

std::vector<std::vector<StoredRecord>> all_records(Log& log) {
  std::vector<std::vector<StoredRecord>> out(static_cast<size_t>(log.partition_count()));
  for (int32_t p = 0; p < log.partition_count(); ++p)
    for (Offset at(0);;) {
      auto recs = log.read(Partition(p), at);
      if (!recs.ok()) throw std::runtime_error("all_records: " + recs.status().to_string());
      if (recs->empty()) break;
      at = recs->back().pos.offset.next();
      for (auto& r : *recs) out[static_cast<size_t>(p)].push_back(std::move(r));
    }
  return out;
}

int64_t median_append_us(const std::vector<std::vector<StoredRecord>>& records) {
  std::vector<int64_t> times;
  for (const auto& part : records)
    for (const auto& r : part) times.push_back(r.append_us);
  if (times.empty()) throw std::runtime_error("median_append_us: no records");
  std::nth_element(times.begin(), times.begin() + static_cast<long>(times.size() / 2), times.end());
  return times[times.size() / 2];
}

std::string all_file_bytes(const std::string& dir) {
  std::string all;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  return all;
}

bool file_bytes_hold(const std::string& files, std::string_view value) {
  constexpr size_t kWindow = 16;
  if (value.size() < kWindow) throw std::invalid_argument("file_bytes_hold: a value of fewer than 16 bytes");
  for (size_t i = 0; i + kWindow <= value.size(); ++i)
    if (files.find(value.substr(i, kWindow)) != std::string::npos) return true;
  return false;
}

}  // namespace agentos::test
