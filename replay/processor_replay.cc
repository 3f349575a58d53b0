// Replay of a processor's state into a shadow (contract in processor_replay.h, the
// procedure in REPLAY.md §7).
#include "replay/processor_replay.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "events/logging.h"

namespace agentos {
namespace {

using Offsets = std::map<int32_t, int64_t>;
constexpr size_t kMaxDifferences = 10;
constexpr size_t kScanPage = 1024;

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

int64_t gap(const Offsets& to, const Offsets& from) {
  int64_t n = 0;
  for (const auto& [p, o] : to) n += std::max<int64_t>(0, o - (from.count(p) ? from.at(p) : 0));
  return n;
}

// The first kMaxDifferences keys whose values differ between the two runtimes' states, in
// key order (a merge of both key spaces, a page at a time).
Status differing_keys(const ProcessorRuntime& live, const ProcessorRuntime& rebuilt,
                      std::vector<std::pair<std::string, std::string>>& out) {
  const std::string end(64, '\xff');  // above every key a processor writes
  std::string from_l, from_r;
  std::vector<std::pair<std::string, std::string>> l, r;
  size_t li = 0, ri = 0;
  bool l_done = false, r_done = false;
  auto refill = [&](const ProcessorRuntime& rt, std::string& from, std::vector<std::pair<std::string, std::string>>& v,
                    size_t& i, bool& done) -> Status {
    if (i < v.size() || done) return Status::ok();
    auto page = rt.scan(from, end, kScanPage);
    if (!page.ok()) return page.status();
    v = std::move(*page);
    i = 0;
    if (v.size() < kScanPage) done = true;
    if (!v.empty()) from = v.back().first + '\0';  // the next key after the last
    return Status::ok();
  };
  while (out.size() < kMaxDifferences) {
    if (Status s = refill(live, from_l, l, li, l_done); !s.is_ok()) return s;
    if (Status s = refill(rebuilt, from_r, r, ri, r_done); !s.is_ok()) return s;
    const bool has_l = li < l.size(), has_r = ri < r.size();
    if (!has_l && !has_r) break;
    if (has_l && (!has_r || l[li].first < r[ri].first)) {
      out.emplace_back(hex(l[li++].first), "only live");
    } else if (has_r && (!has_l || r[ri].first < l[li].first)) {
      out.emplace_back(hex(r[ri++].first), "only rebuilt");
    } else {
      if (l[li].second != r[ri].second) out.emplace_back(hex(l[li].first), "differs");
      ++li;
      ++ri;
    }
  }
  return Status::ok();
}

class Run {
 public:
  Run(Log& log, ProcessorRuntime& live, Processor& shadow, const ProcessorReplayOptions& opts,
      const std::function<void(const ProcessorReplayStatus&)>& progress, const std::atomic<bool>* cancel)
      : log_(log), live_(live), shadow_proc_(shadow), opts_(opts), progress_(progress), cancel_(cancel) {
    st_.processor = std::string(shadow.name());
    for (int32_t p = 0; p < log.partition_count(); ++p) parts_.emplace_back(p);
    if (!opts.partitions.empty()) parts_ = opts.partitions;
  }

  ProcessorReplayStatus go() {
    Status s = steps();
    shadow_.reset();
    if (paused_) {
      if (Status r = live_.start(); !r.is_ok())
        log_line(LogLevel::kError, "replay: the live runtime did not start again",
                 {{"processor", st_.processor}, {"error", r.to_string()}});
      st_.live_pause_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - pause_at_).count();
    }
    std::error_code ec;
    if (!st_.applied) std::filesystem::remove_all(opts_.shadow_dir, ec);
    st_.error = s;
    st_.phase = s.is_ok() ? "done" : "failed";
    st_.finished = true;
    if (!s.is_ok()) log_line(LogLevel::kWarn, "processor replay failed", {{"processor", st_.processor}, {"error", s.to_string()}});
    return st_;
  }

 private:
  Offsets live_offsets() const {
    Offsets o;
    for (Partition p : parts_) o[p.value()] = live_.committed_offset(p).value();
    return o;
  }

  Status steps() {
    if (shadow_proc_.name() != live_.derived_source().substr(live_.derived_source().rfind('/') + 1))
      return Status(Code::kInvalidArgument, "replay: the shadow processor is not the live runtime's");
    std::error_code ec;
    std::filesystem::remove_all(opts_.shadow_dir, ec);
    if (ec) return Status(Code::kInternal, "replay: cannot empty " + opts_.shadow_dir + ": " + ec.message());
    st_.phase = "rebuilding";
    emit();
    if (opts_.to_time_us) return to_point(*opts_.to_time_us);
    // 1. Catch up with the live runtime while it runs.
    for (int round = 0; round < 4; ++round) {
      const Offsets w = live_offsets();
      if (round > 0 && gap(w, folded_) <= static_cast<int64_t>(opts_.max_batch_records)) break;
      if (Status s = fold_to(w); !s.is_ok()) return s;
    }
    // 2. The live runtime stops with its outbox relayed (so what it derived is in the
    //    log), then the shadow folds to exactly its offsets.
    if (Status s = pause_drained(); !s.is_ok()) return s;
    const Offsets w = live_offsets();
    if (Status s = fold_to(w); !s.is_ok()) return s;
    st_.compared_at = w;
    // 3. Compare.
    st_.phase = "verifying";
    emit();
    auto lh = live_.state_hash();
    if (!lh.ok()) return lh.status();
    auto rh = shadow_->state_hash();
    if (!rh.ok()) return rh.status();
    st_.live_hash = *lh;
    st_.rebuilt_hash = *rh;
    st_.equal = *lh == *rh;
    if (!st_.equal)
      if (Status s = differing_keys(live_, *shadow_, st_.differences); !s.is_ok()) return s;
    if (opts_.dry_run) return Status::ok();
    // 4. The republish horizon, then the swap.
    st_.phase = "swapping";
    emit();
    if (Status s = shadow_->discard_outbox(); !s.is_ok()) return s;
    shadow_.reset();  // closes its store
    if (Status s = live_.adopt_state(opts_.shadow_dir); !s.is_ok()) return s;
    st_.applied = true;
    return Status::ok();
  }

  // As of a point: fold what was appended before it, and its hash; the live runtime runs on.
  Status to_point(int64_t us) {
    if (!opts_.dry_run) return Status::invalid("dryRun", "a replay to a point is a dry run");
    Offsets target;
    for (Partition p : parts_) {
      auto at = log_.offset_for_time(p, us);
      if (!at.ok()) return at.status();
      target[p.value()] = at->value();
    }
    if (Status s = fold_to(target); !s.is_ok()) return s;
    st_.compared_at = target;
    st_.phase = "verifying";
    emit();
    auto rh = shadow_->state_hash();
    if (!rh.ok()) return rh.status();
    st_.rebuilt_hash = *rh;
    return Status::ok();
  }

  Status pause_drained() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (Partition p : parts_) {
        const Offset c = live_.committed_offset(p);
        if (c.value() > 0 && !live_.wait_relayed(p, Offset(c.value() - 1), deadline))
          return Status(Code::kTimeout, "replay: the live runtime did not relay partition " + std::to_string(p.value()));
      }
      live_.stop();
      if (!paused_) pause_at_ = std::chrono::steady_clock::now();
      paused_ = true;
      auto pending = live_.pending_outbox();
      if (!pending.ok()) return pending.status();
      if (*pending == 0) return Status::ok();
      // A commit slipped in between: let it relay, then stop again.
      if (Status s = live_.start(); !s.is_ok()) return s;
      paused_ = false;
    }
    return Status(Code::kTimeout, "replay: the live runtime kept deriving events; try again");
  }

  Status fold_to(const Offsets& target) {
    st_.records_total = gap(target, {});
    shadow_.reset();
    RuntimeOptions ro;
    ro.state_dir = opts_.shadow_dir;
    ro.partitions = parts_;
    ro.relay = false;
    ro.keep_derived = false;  // the log holds what the live runtime derived; the swap discards the rest
    ro.max_batch_records = opts_.max_batch_records;
    ro.stop_at = target;
    auto rt = open_processor_runtime(log_, shadow_proc_, ro);
    if (!rt.ok()) return rt.status();
    shadow_ = std::move(*rt);
    int idle = 0;
    while (true) {
      bool reached = true;
      for (const auto& [p, o] : target) {
        folded_[p] = shadow_->committed_offset(Partition(p)).value();
        reached &= folded_[p] >= o;
      }
      st_.records_done = gap(folded_, {});
      emit();
      if (reached) return Status::ok();
      if (cancel_ && cancel_->load()) return Status(Code::kUnavailable, "replay cancelled");
      auto r = shadow_->step();
      if (!r.ok()) return r.status();
      if (*r) {
        idle = 0;
        if (opts_.after_shadow_round) opts_.after_shadow_round(st_.records_done);
        continue;
      }
      // Nothing applied: a transient read error the runtime counted; again, bounded.
      if (++idle > 3000) return Status(Code::kTimeout, "replay: the shadow made no progress");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void emit() {
    if (progress_) progress_(st_);
  }

  Log& log_;
  ProcessorRuntime& live_;
  Processor& shadow_proc_;
  const ProcessorReplayOptions& opts_;
  const std::function<void(const ProcessorReplayStatus&)>& progress_;
  const std::atomic<bool>* cancel_;
  std::vector<Partition> parts_;
  std::unique_ptr<ProcessorRuntime> shadow_;
  Offsets folded_;
  bool paused_ = false;
  std::chrono::steady_clock::time_point pause_at_;
  ProcessorReplayStatus st_;
};

}  // namespace

ProcessorReplayStatus run_processor_replay(Log& log, ProcessorRuntime& live, Processor& shadow,
                                           const ProcessorReplayOptions& opts,
                                           const std::function<void(const ProcessorReplayStatus&)>& progress,
                                           const std::atomic<bool>* cancel) {
  return Run(log, live, shadow, opts, progress, cancel).go();
}

}  // namespace agentos
