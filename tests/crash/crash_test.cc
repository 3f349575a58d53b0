// Crash test (reliability target "kill -9 of the engine at random points"):
//
// A real `agentos serve` process (embedded log, fsync on) is put under load by one client
// thread per tenant, then SIGKILLed at a random moment, restarted on the same data dir
// (new port), and so on for AGENTOS_CRASH_ROUNDS rounds (default 10; the design target is
// 100). Clients retry every failed or unanswered request with the same ids until it is
// acknowledged, so retries cross crashes and exercise idempotency on (source, id).
// After a clean restart, every tenant's events are read back and checked:
//   - every acknowledged event is there exactly once, at the position of its receipt;
//   - no (source, id) appears twice, acknowledged or not;
//   - a tenant's ids appear in send order (contiguous seq 0..M, M >= last acknowledged);
//   - every request's events are all there or none (batches are atomic);
//   - re-sending an acknowledged request answers Idempotent-Replayed with the same receipts.
//
// Nothing sleeps: waits are on condition variables or `wait_until`, each with a deadline,
// so a server that does not come back fails the test instead of hanging it. Every HTTP
// call has a timeout. The engine child gets PR_SET_PDEATHSIG and is SIGKILLed by the
// harness destructor, so no process outlives the test.
//
// Environment: AGENTOS_CRASH_ROUNDS (default 10; 100 is the design target),
// AGENTOS_CRASH_SEED (default 20261124), AGENTOS_CRASH_BIN (binary to test instead of
// the build's agentos).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/crash/engine_process.h"
#include "tests/support/test_util.h"


namespace agentos::crash_test {
namespace {


constexpr const char* kSource = "/crash";
constexpr auto kFirstAckTimeout = 20s;    // restart to first acknowledged write

// ---------------------------------------------------------------------------------------
// Client side bookkeeping.

struct Receipt {
  int partition = -1;
  int64_t offset = -1;
};

struct Request {
  int64_t first_seq = 0;
  int n = 0;
  bool batch = false;
  std::string body;
  bool acked = false;
  bool in_doubt = false;  // an attempt ended without an answer (killed mid-request)
  std::vector<Receipt> receipts;
};

struct TenantState {
  std::string tenant;
  std::string key;
  std::vector<Request> requests;  // in send order; only the owning client thread writes
  // Stats (owning thread only; read after join).
  int64_t retries = 0;
  int64_t in_doubt = 0;
  int64_t in_doubt_durable = 0;  // in-doubt requests answered Idempotent-Replayed later
  int64_t timeouts = 0;
  int64_t status_retries = 0;    // 409 / 429 / 5xx answers
  int64_t acked_events = 0;
};

std::string event_id(const std::string& tenant, int64_t seq) { return tenant + "-" + std::to_string(seq); }

std::string event_json(const std::string& tenant, int64_t seq) {
  return R"({"specversion":"1.0","id":")" + event_id(tenant, seq) + R"(","source":")" + kSource +
         R"(","type":"session.progress","data":{"sessionId":"s-)" + tenant + R"(","step":"step-)" +
         std::to_string(seq) + R"(","pct":0.5}})";
}

// Parses a 201 answer into receipts and checks they name the request's ids.
bool parse_receipts(const Request& r, const std::string& tenant, const std::string& body,
                    std::vector<Receipt>* out, std::string* err) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) return *err = "receipt is not JSON: " + body, false;
  std::vector<simdjson::dom::element> items;
  if (r.batch) {
    simdjson::dom::array arr;
    if (root["receipts"].get_array().get(arr) != simdjson::SUCCESS) return *err = "no receipts: " + body, false;
    for (auto e : arr) items.push_back(e);
  } else {
    items.push_back(root);
  }
  if (static_cast<int>(items.size()) != r.n) return *err = "receipt count mismatch: " + body, false;
  out->clear();
  for (int i = 0; i < r.n; ++i) {
    std::string_view id, source;
    int64_t p = -1, o = -1;
    if (items[i]["id"].get_string().get(id) != simdjson::SUCCESS ||
        items[i]["source"].get_string().get(source) != simdjson::SUCCESS ||
        items[i]["partition"].get_int64().get(p) != simdjson::SUCCESS ||
        items[i]["offset"].get_int64().get(o) != simdjson::SUCCESS)
      return *err = "malformed receipt: " + body, false;
    if (id != event_id(tenant, r.first_seq + i) || source != kSource)
      return *err = "receipt names the wrong event: " + body, false;
    out->push_back({static_cast<int>(p), o});
  }
  return true;
}

// One page of GET /v1/tenants/{t}/events.
struct Item {
  int partition = -1;
  int64_t offset = -1;
  std::string id;
  std::string source;
};

::testing::AssertionResult read_page(int port, const TenantState& ts, int64_t from, std::vector<Item>* items,
                                     int64_t* next) {
  Response r = call(port, "GET", "/v1/tenants/" + ts.tenant + "/events?from=" + std::to_string(from) + "&limit=1000",
                    ts.key, "", "");
  if (r.outcome != Outcome::kOk) return ::testing::AssertionFailure() << "GET events: " << r.error;
  if (r.status != 200) return ::testing::AssertionFailure() << "GET events: HTTP " << r.status << " " << r.body;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(r.body);
  simdjson::dom::element root;
  simdjson::dom::array events;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS || root["events"].get_array().get(events) != simdjson::SUCCESS ||
      root["next"].get_int64().get(*next) != simdjson::SUCCESS)
    return ::testing::AssertionFailure() << "GET events: malformed page " << r.body.substr(0, 500);
  items->clear();
  for (auto e : events) {
    Item it;
    int64_t p = -1;
    std::string_view id, source;
    if (e["partition"].get_int64().get(p) != simdjson::SUCCESS || e["offset"].get_int64().get(it.offset) != simdjson::SUCCESS ||
        e["event"]["id"].get_string().get(id) != simdjson::SUCCESS ||
        e["event"]["source"].get_string().get(source) != simdjson::SUCCESS)
      return ::testing::AssertionFailure() << "GET events: malformed item in " << r.body.substr(0, 500);
    it.partition = static_cast<int>(p);
    it.id = std::string(id);
    it.source = std::string(source);
    items->push_back(std::move(it));
  }
  if (!items->empty() && *next <= from) return ::testing::AssertionFailure() << "GET events: next does not advance";
  return ::testing::AssertionSuccess();
}

// Seq of one of our ids ("<tenant>-<seq>"), or -1.
int64_t seq_of(const TenantState& ts, const Item& it) {
  if (it.source != kSource || !it.id.starts_with(ts.tenant + "-")) return -1;
  return std::atoll(it.id.c_str() + ts.tenant.size() + 1);
}

// ---------------------------------------------------------------------------------------
// The harness: engine + clients + killer (the test's main thread).

struct LoadOptions {
  int tenants = 6;
  int min_batch = 1;  // 1 = single-event POST /events
  int max_batch = 5;
  std::string prefix = "ct";
};

class Harness {
 public:
  Harness(LoadOptions o, uint64_t seed)
      : opts_(std::move(o)),
        seed_(seed),
        // Signed heads every 100 ms: each kill lands among them, and none may cover a
        // record that the kill takes back (checked by `audit verify` at the end).
        engine_(dir_.sub("data"), dir_.sub("engine.log"), /*partitions=*/4, {"--audit-head-interval-ms", "100"}) {}

  ~Harness() {
    // Whatever happened, no thread and no child outlives the test.
    {
      std::lock_guard lk(mu_);
      stop_ = abort_ = true;
    }
    cv_.notify_all();
    engine_.kill_hard();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  // Starts the engine, creates tenants (enterprise plan), starts one client per tenant.
  ::testing::AssertionResult setup() {
    if (auto r = engine_.start(); !r) return r;
    publish_port();
    operator_token_ = read_first_line(engine_.data_dir() + "/admin.token");
    if (operator_token_.empty()) return ::testing::AssertionFailure() << "no admin.token";
    tenants_.resize(opts_.tenants);
    for (int i = 0; i < opts_.tenants; ++i) {
      TenantState& t = tenants_[i];
      t.tenant = opts_.prefix + std::to_string(i);
      Response r = call(engine_.port(), "POST", "/v1/admin/tenants", operator_token_, "application/json",
                        R"({"slug":")" + t.tenant + R"(","plan":"enterprise"})");
      if (r.outcome != Outcome::kOk || r.status != 201)
        return ::testing::AssertionFailure() << "create tenant " << t.tenant << ": " << r.error << " " << r.status
                                             << " " << r.body;
      const size_t k = r.body.find("\"api_key\":\"");
      if (k == std::string::npos) return ::testing::AssertionFailure() << "no api_key in " << r.body;
      t.key = r.body.substr(k + 11, r.body.find('"', k + 11) - (k + 11));
    }
    acked_upto_.assign(opts_.tenants, 0);
    cursor_.assign(opts_.tenants, 0);
    present_upto_.assign(opts_.tenants, 0);
    cuts_.assign(opts_.tenants, {});
    for (int i = 0; i < opts_.tenants; ++i) threads_.emplace_back([this, i] { client(i, seed_ + 1000 + i); });
    return ::testing::AssertionSuccess();
  }

  // One round: let load run for a random time after the engine took its first write, then
  // SIGKILL it and restart it on the same data dir.
  ::testing::AssertionResult crash_round(std::mt19937_64& rng, int round) {
    std::uniform_int_distribution<int> delay_ms(20, 300);
    const bool early = round % 5 == 4;  // every 5th kill hits the engine right after it listens
    const int delay = delay_ms(rng);
    if (!early) {
      std::unique_lock lk(mu_);
      const uint64_t base = acks_;
      if (!cv_.wait_until(lk, Clock::now() + kFirstAckTimeout, [&] { return acks_ > base || abort_; }) || abort_)
        return ::testing::AssertionFailure() << "round " << round << ": no write acknowledged within "
                                             << std::chrono::duration_cast<std::chrono::seconds>(kFirstAckTimeout).count()
                                             << " s after restart" << failure_text_locked() << "\nengine log:\n"
                                             << file_tail(engine_.log_path());
      // Bounded wait: the deadline is the random kill moment; only an abort ends it early.
      cv_.wait_until(lk, Clock::now() + std::chrono::milliseconds(delay), [&] { return abort_; });
      if (abort_) return ::testing::AssertionFailure() << failure_text_locked();
    } else {
      ++early_kills_;
    }
    {
      std::lock_guard lk(mu_);
      up_ = false;  // clients that fail now wait for the next generation
    }
    engine_.kill_hard();
    ++kills_;
    std::vector<int64_t> acked;
    {
      std::lock_guard lk(mu_);
      acked = acked_upto_;  // every 201 received before the kill
    }
    if (auto r = engine_.start(); !r) return r;
    // Clients still hold the old port, so nothing is written until publish_port(): the
    // log is exactly what survived the kill.
    if (auto r = check_tail(acked, round); !r) return r;
    publish_port();
    return ::testing::AssertionSuccess();
  }

  // Reads what each tenant got since the last round: our ids continue the sequence with
  // no gap and no duplicate, and every event acknowledged before the kill is there.
  // Remembers the cut (number of events present) to check batch atomicity later.
  ::testing::AssertionResult check_tail(const std::vector<int64_t>& acked, int round) {
    for (size_t i = 0; i < tenants_.size(); ++i) {
      const TenantState& ts = tenants_[i];
      for (int page = 0;; ++page) {
        std::vector<Item> items;
        int64_t next = 0;
        if (auto r = read_page(engine_.port(), ts, cursor_[i], &items, &next); !r) return r;
        if (items.empty()) break;
        for (const auto& it : items) {
          const int64_t seq = seq_of(ts, it);
          if (seq < 0) continue;
          if (seq != present_upto_[i])
            return ::testing::AssertionFailure()
                   << "round " << round << ", tenant " << ts.tenant << ": found " << it.id << " at offset " << it.offset
                   << ", expected seq " << present_upto_[i] << (seq < present_upto_[i] ? " (duplicate)" : " (gap)");
          ++present_upto_[i];
          ++tail_events_;
        }
        cursor_[i] = next;
      }
      if (present_upto_[i] < acked[i])
        return ::testing::AssertionFailure() << "round " << round << ", tenant " << ts.tenant << ": "
                                             << acked[i] - present_upto_[i] << " acknowledged events lost by the kill "
                                             << "(acked up to seq " << acked[i] << ", log has " << present_upto_[i] << ")";
      durable_unacked_ += present_upto_[i] - acked[i];
      cuts_[i].push_back(present_upto_[i]);
    }
    return ::testing::AssertionSuccess();
  }

  // Waits for some load on the current engine, stops the clients (each finishes its
  // in-flight request), then stops the engine cleanly and starts it again for checking.
  ::testing::AssertionResult finish() {
    {
      std::unique_lock lk(mu_);
      const uint64_t base = acks_;
      if (!cv_.wait_until(lk, Clock::now() + kFirstAckTimeout, [&] { return acks_ > base || abort_; }) || abort_)
        return ::testing::AssertionFailure() << "no write acknowledged after the last restart" << failure_text_locked();
      stop_ = true;
    }
    cv_.notify_all();
    {
      std::unique_lock lk(mu_);
      if (!cv_.wait_until(lk, Clock::now() + kStopTimeout, [&] { return running_clients_ == 0; })) {
        abort_ = true;
        cv_.notify_all();
        return ::testing::AssertionFailure() << running_clients_ << " clients did not finish";
      }
      if (!failures_.empty()) return ::testing::AssertionFailure() << failure_text_locked();
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (auto r = engine_.stop_clean(); !r) return r;
    if (auto r = engine_.start(); !r) return r;
    publish_port();
    return ::testing::AssertionSuccess();
  }

  // Reads every tenant back and checks the invariants listed at the top of this file.
  void verify(bool check_replay) {
    for (size_t i = 0; i < tenants_.size(); ++i) verify_tenant(i, check_replay);
  }

  ::testing::AssertionResult stop() { return engine_.stop_clean(); }
  std::string data_dir() const { return dir_.sub("data"); }

  std::string summary(double wall_s) const {
    int64_t requests = 0, acked_req = 0, acked_ev = 0, retries = 0, in_doubt = 0, durable = 0, timeouts = 0,
            status_retries = 0;
    for (const auto& t : tenants_) {
      requests += static_cast<int64_t>(t.requests.size());
      for (const auto& r : t.requests) acked_req += r.acked;
      acked_ev += t.acked_events;
      retries += t.retries;
      in_doubt += t.in_doubt;
      durable += t.in_doubt_durable;
      timeouts += t.timeouts;
      status_retries += t.status_retries;
    }
    std::ostringstream s;
    s << "kills=" << kills_ << " (early " << early_kills_ << ") starts=" << engine_.starts()
      << " tenants=" << tenants_.size() << " requests=" << requests << " acked_requests=" << acked_req
      << " acked_events=" << acked_ev << " retries=" << retries << " in_doubt=" << in_doubt
      << " in_doubt_durable=" << durable << " retry_statuses=" << status_retries << " timeouts=" << timeouts
      << " tail_events_checked=" << tail_events_ << " durable_unacked_at_kill=" << durable_unacked_
      << " unacked_present=" << unacked_present_ << " partitions_shared=" << shared_partitions()
      << " start_ms(avg/max)=" << engine_.avg_start_ms() << "/" << engine_.max_start_ms() << " wall_s=" << wall_s;
    return s.str();
  }

  std::string engine_log() const { return file_tail(engine_.log_path()); }

 private:
  void publish_port() {
    {
      std::lock_guard lk(mu_);
      port_ = engine_.port();
      ++generation_;
      up_ = true;
    }
    cv_.notify_all();
  }

  void fail(const std::string& what) {
    {
      std::lock_guard lk(mu_);
      failures_.push_back(what);
      abort_ = true;
    }
    cv_.notify_all();
  }

  std::string failure_text_locked() const {
    std::string s;
    for (const auto& f : failures_) s += "\n  client: " + f;
    return s;
  }

  // One producer per tenant: sends requests of consecutive ids; each is retried with the
  // same body until acknowledged, so per-tenant order is well defined.
  void client(int index, uint64_t seed) {
    TenantState& ts = tenants_[index];
    {
      std::lock_guard lk(mu_);
      ++running_clients_;
    }
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> size(opts_.min_batch, opts_.max_batch);
    int64_t next_seq = 0;
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (stop_ || abort_) break;
      }
      Request req;
      req.first_seq = next_seq;
      req.n = size(rng);
      req.batch = req.n > 1 || opts_.min_batch > 1;
      if (req.batch) {
        req.body = "[";
        for (int i = 0; i < req.n; ++i) req.body += (i ? "," : "") + event_json(ts.tenant, next_seq + i);
        req.body += "]";
      } else {
        req.body = event_json(ts.tenant, next_seq);
      }
      next_seq += req.n;
      ts.requests.push_back(std::move(req));
      if (!send_until_acked(index, ts, ts.requests.back())) break;
    }
    {
      std::lock_guard lk(mu_);
      --running_clients_;
    }
    cv_.notify_all();
  }

  // Returns false when the run is aborted.
  bool send_until_acked(int index, TenantState& ts, Request& req) {
    const std::string target = "/v1/tenants/" + ts.tenant + (req.batch ? "/events:batch" : "/events");
    const std::string ct = req.batch ? "application/cloudevents-batch+json" : "application/cloudevents+json";
    for (int attempt = 0;; ++attempt) {
      int port;
      uint64_t gen;
      {
        std::lock_guard lk(mu_);
        if (abort_) return false;
        port = port_;
        gen = generation_;
      }
      if (attempt > 0) ++ts.retries;
      Response r = call(port, "POST", target, ts.key, ct, req.body);
      if (r.outcome == Outcome::kOk && r.status == 201) {
        std::string err;
        if (!parse_receipts(req, ts.tenant, r.body, &req.receipts, &err)) return fail(ts.tenant + ": " + err), false;
        req.acked = true;
        ts.acked_events += req.n;
        if (req.in_doubt && r.replayed) ++ts.in_doubt_durable;
        {
          std::lock_guard lk(mu_);
          acks_ += static_cast<uint64_t>(req.n);
          acked_upto_[index] = req.first_seq + req.n;
        }
        cv_.notify_all();
        return true;
      }
      if (r.outcome == Outcome::kOk) {
        // 409 (same ids in flight), 429, 5xx: the engine answered; retry shortly.
        if (r.status == 409 || r.status == 429 || r.status >= 500) {
          ++ts.status_retries;
          std::unique_lock lk(mu_);
          cv_.wait_for(lk, 5ms, [&] { return abort_; });
          continue;
        }
        return fail(ts.tenant + ": unexpected HTTP " + std::to_string(r.status) + " for seq " +
                    std::to_string(req.first_seq) + ": " + r.body),
               false;
      }
      // No answer. Refused: the engine is down (or not yet back). Reset / EOF / timeout:
      // the request may or may not have been appended: it is now in doubt.
      if (r.outcome != Outcome::kRefused && !req.in_doubt) {
        req.in_doubt = true;
        ++ts.in_doubt;
      }
      if (r.outcome == Outcome::kTimeout) ++ts.timeouts;
      std::unique_lock lk(mu_);
      // Wait for a new engine generation; the short bound covers the window between the
      // kill and the killer marking the engine down.
      cv_.wait_for(lk, 20ms, [&] { return abort_ || (generation_ != gen && up_); });
    }
  }

  void verify_tenant(size_t index, bool check_replay) {
    const TenantState& ts = tenants_[index];
    SCOPED_TRACE("tenant " + ts.tenant);
    struct Found {
      int partition;
      int64_t offset;
    };
    std::map<int64_t, Found> by_seq;  // seq -> where
    std::vector<int64_t> order;       // seqs in offset order
    std::set<std::string> seen_ids;   // every (source, id) of this tenant, ours or not
    int64_t from = 0;
    int64_t prev_offset = -1;
    int partition = -1;
    for (int page = 0;; ++page) {
      ASSERT_LT(page, 100000) << "paging does not end";
      std::vector<Item> items;
      int64_t next = 0;
      ASSERT_TRUE(read_page(engine_.port(), ts, from, &items, &next));
      if (items.empty()) break;
      for (const auto& it : items) {
        ASSERT_GT(it.offset, prev_offset) << "offsets not increasing";
        prev_offset = it.offset;
        if (partition < 0) partition = it.partition;
        ASSERT_EQ(it.partition, partition) << "tenant's events on two partitions";
        EXPECT_TRUE(seen_ids.insert(it.source + '\0' + it.id).second)
            << "duplicate (source,id) " << it.source << " " << it.id << " at offset " << it.offset;
        const int64_t seq = seq_of(ts, it);
        if (seq < 0) continue;  // engine-authored (tenant created, key created)
        if (by_seq.count(seq)) continue;  // already reported as duplicate
        by_seq[seq] = {it.partition, it.offset};
        order.push_back(seq);
      }
      from = next;
    }
    // Order: seqs in offset order are exactly 0, 1, 2, ... (send order, no gap).
    for (size_t i = 0; i < order.size(); ++i)
      ASSERT_EQ(order[i], static_cast<int64_t>(i)) << "events out of order or missing at position " << i;
    const int64_t present = static_cast<int64_t>(order.size());
    for (const auto& req : ts.requests) {
      int n_present = 0;
      for (int i = 0; i < req.n; ++i) n_present += by_seq.count(req.first_seq + i) ? 1 : 0;
      if (req.acked) {
        // Acknowledged: all there, at the receipts' positions, contiguous (atomic append).
        ASSERT_EQ(n_present, req.n) << "acknowledged request at seq " << req.first_seq << " lost " << req.n - n_present
                                    << " of " << req.n << " events";
        for (int i = 0; i < req.n; ++i) {
          const Found& f = by_seq[req.first_seq + i];
          EXPECT_EQ(f.partition, req.receipts[i].partition) << "seq " << req.first_seq + i;
          EXPECT_EQ(f.offset, req.receipts[i].offset) << "seq " << req.first_seq + i << ": receipt offset differs";
          if (i > 0) {
            EXPECT_EQ(req.receipts[i].offset, req.receipts[i - 1].offset + 1)
                << "batch at seq " << req.first_seq << " not contiguous in the log";
          }
        }
      } else {
        EXPECT_TRUE(n_present == 0 || n_present == req.n)
            << "torn batch at seq " << req.first_seq << ": " << n_present << " of " << req.n << " events present";
        if (n_present == req.n) unacked_present_ += req.n;
      }
      // Right after each kill the log held a prefix of `cut` events: no request may
      // straddle a cut (that would be half a batch surviving a crash).
      for (size_t r = 0; r < cuts_[index].size(); ++r) {
        const int64_t cut = cuts_[index][r];
        EXPECT_FALSE(req.first_seq < cut && cut < req.first_seq + req.n)
            << "kill " << r << " left a torn batch: seqs " << req.first_seq << ".." << req.first_seq + req.n - 1
            << ", only up to " << cut - 1 << " survived";
      }
    }
    int64_t sent = 0;
    for (const auto& req : ts.requests) sent += req.n;
    EXPECT_LE(present, sent) << "more events than were ever sent";
    if (partition >= 0) partitions_[partition].insert(ts.tenant);

    // Idempotency survives restarts: the last acknowledged request is answered from the
    // index with its original receipts.
    if (check_replay) {
      for (auto it = ts.requests.rbegin(); it != ts.requests.rend(); ++it) {
        if (!it->acked) continue;
        Response r = call(engine_.port(), "POST", "/v1/tenants/" + ts.tenant + (it->batch ? "/events:batch" : "/events"),
                          ts.key, it->batch ? "application/cloudevents-batch+json" : "application/cloudevents+json",
                          it->body);
        ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
        ASSERT_EQ(r.status, 201) << r.body;
        EXPECT_TRUE(r.replayed) << "retry of an acknowledged request after restart was not a replay";
        std::vector<Receipt> again;
        std::string err;
        ASSERT_TRUE(parse_receipts(*it, ts.tenant, r.body, &again, &err)) << err;
        for (int i = 0; i < it->n; ++i) EXPECT_EQ(again[i].offset, it->receipts[i].offset);
        break;
      }
    }
  }

  std::string shared_partitions() const {
    std::string s;
    for (const auto& [p, ts] : partitions_) {
      if (ts.size() < 2) continue;
      if (!s.empty()) s += ";";
      s += "p" + std::to_string(p) + ":";
      for (const auto& t : ts) s += t + (t == *ts.rbegin() ? "" : ",");
    }
    return s.empty() ? "none" : s;
  }

  LoadOptions opts_;
  uint64_t seed_;
  test::TempDir dir_;
  EngineProcess engine_;
  std::string operator_token_;
  std::vector<TenantState> tenants_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable cv_;
  int port_ = 0;
  uint64_t generation_ = 0;
  bool up_ = false;
  bool stop_ = false;
  bool abort_ = false;
  uint64_t acks_ = 0;
  int running_clients_ = 0;
  std::vector<std::string> failures_;

  int kills_ = 0;
  int early_kills_ = 0;
  int64_t unacked_present_ = 0;
  int64_t tail_events_ = 0;
  int64_t durable_unacked_ = 0;
  std::vector<int64_t> acked_upto_;                // per tenant, guarded by mu_
  std::vector<int64_t> cursor_, present_upto_;     // per tenant, main thread only
  std::vector<std::vector<int64_t>> cuts_;         // per tenant: events present after each kill
  std::map<int, std::set<std::string>> partitions_;
};

void run(const LoadOptions& opts, int rounds, uint64_t seed, const char* name) {
  const auto t0 = Clock::now();
  Harness h(opts, seed);
  ASSERT_TRUE(h.setup());
  std::mt19937_64 rng(seed);
  for (int round = 0; round < rounds; ++round) ASSERT_TRUE(h.crash_round(rng, round)) << "round " << round;
  ASSERT_TRUE(h.finish());
  h.verify(/*check_replay=*/true);
  EXPECT_TRUE(h.stop());
  // The hash chain came through every kill: each partition's links recompute (the torn
  // tails RocksDB dropped took their links with them; the chain resumed from the last
  // record that stayed), and the notary's signed heads match (replay/AUDIT.md).
  {
    const std::string cmd = std::string(AGENTOS_BIN) + " audit verify --data-dir '" + h.data_dir() +
                            "' --output text 2>/dev/null";
    FILE* f = ::popen(cmd.c_str(), "r");
    ASSERT_NE(f, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    const int status = ::pclose(f);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_EQ(out.rfind("OK: ", 0), 0u) << out;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[crash] " << name << ": seed=" << seed << " rounds=" << rounds << " " << h.summary(wall) << std::endl;
  if (::testing::Test::HasFailure()) std::cout << "[crash] engine log tail:\n" << h.engine_log() << std::endl;
}

uint64_t seed() { return static_cast<uint64_t>(env_int("AGENTOS_CRASH_SEED", 20261124)); }
int rounds() { return std::max(1, env_int("AGENTOS_CRASH_ROUNDS", 10)); }

// Six tenants on four partitions (so some share one), one producer each, single events
// and batches of 2-5, SIGKILLed AGENTOS_CRASH_ROUNDS times.
TEST(CrashTest, AcknowledgedEventsSurviveSigkillExactlyOnceInOrder) {
  LoadOptions o;
  o.tenants = 6;
  o.min_batch = 1;
  o.max_batch = 5;
  o.prefix = "ct";
  run(o, rounds(), seed(), "exactly-once");
}

// Batches of exactly 5: after kills, every batch is all there or not at all, whether or
// not it was acknowledged.
TEST(CrashTest, TornTailAfterKillLeavesNoHalfBatch) {
  LoadOptions o;
  o.tenants = 3;
  o.min_batch = 5;
  o.max_batch = 5;
  o.prefix = "tb";
  run(o, std::max(3, rounds() / 2), seed() + 7, "torn-tail");
}

}  // namespace
}  // namespace agentos::crash_test
