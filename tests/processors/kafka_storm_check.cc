// The storm's checker (kafka_storm.h, THE CHECK): every record of the mirror against what
// the producers were told, and Pulse's derived events against the reference run's.
#include <algorithm>
#include <map>
#include <unordered_map>

#include "events/codec.h"
#include "tests/processors/kafka_storm.h"

namespace agentos::test::storm {

uint64_t hash_bytes(std::string_view s) { return std::hash<std::string_view>{}(s); }

void check_log(const CheckInput& in, StormReport& r, const std::function<void(std::string)>& finding) {
  // The checker's input: every record of the mirror, in log order.
  struct Seen {
    int32_t partition;
    int64_t offset;
    std::string id;
    uint64_t hash;
  };
  std::vector<Seen> seen;
  std::unordered_map<std::string, std::pair<int, uint64_t>> derived;  // id -> (count, hash of the bytes)
  for (int32_t p = 0; p < in.partitions; ++p) {
    Offset from(0);
    for (;;) {
      auto recs = in.log->read(Partition(p), from);
      if (!recs.ok()) return finding("mirror read: " + recs.status().to_string());
      if (recs->empty()) break;
      for (auto& rec : *recs) {
        const EventHeader h = read_header(rec.value);
        if (h.source == in.derived_source) {
          auto& d = derived[std::string(h.id)];
          ++d.first;
          d.second = hash_bytes(rec.value);
        } else {
          seen.push_back(Seen{p, rec.pos.offset.value(), std::string(h.id), hash_bytes(rec.value)});
        }
      }
      from = recs->back().pos.offset.next();
    }
  }

  const std::vector<const AckedEvent*>& acked = in.acked;
  std::unordered_map<std::string_view, size_t> by_id;
  for (size_t i = 0; i < acked.size(); ++i) by_id.emplace(acked[i]->id, i);
  if (by_id.size() != acked.size()) finding("two acknowledgements for one event id");

  // The self-check: corrupt the checker's input as a broken log would.
  auto first_acked = [&]() -> size_t {
    for (size_t i = 0; i < seen.size(); ++i)
      if (by_id.count(seen[i].id)) return i;
    return seen.size();
  };
  switch (in.brk) {
    case StormOptions::Break::kNone:
      break;
    case StormOptions::Break::kDrop:
      if (size_t i = first_acked(); i < seen.size()) seen.erase(seen.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    case StormOptions::Break::kResend:
      if (size_t i = first_acked(); i < seen.size()) seen.insert(seen.begin() + static_cast<std::ptrdiff_t>(i) + 1, seen[i]);
      break;
    case StormOptions::Break::kReorder: {
      // Two consecutive acknowledged events of one producer on one partition change places.
      std::map<std::pair<int, int32_t>, size_t> last;
      for (size_t i = 0; i < seen.size(); ++i) {
        auto it = by_id.find(seen[i].id);
        if (it == by_id.end()) continue;
        const auto key = std::make_pair(acked[it->second]->producer, seen[i].partition);
        if (auto prev = last.find(key); prev != last.end()) {
          std::swap(seen[prev->second], seen[i]);
          break;
        }
        last[key] = i;
      }
      break;
    }
  }

  std::vector<uint32_t> count(acked.size(), 0);
  std::map<std::pair<int, int32_t>, uint64_t> last_seq;
  std::unordered_map<std::string, int> unacked;
  for (const Seen& s : seen) {
    auto it = by_id.find(s.id);
    if (it == by_id.end()) {
      if (++unacked[s.id] == 2) {
        ++r.duplicated;
        finding("unacknowledged event twice in the log: " + s.id);
      }
      continue;
    }
    const AckedEvent& a = *acked[it->second];
    if (++count[it->second] > 1) {
      ++r.duplicated;
      finding("in the log twice: " + s.id + " (" + std::to_string(s.partition) + "@" + std::to_string(s.offset) + ")");
      continue;
    }
    if (s.partition != a.partition || s.offset != a.offset) {
      ++r.misplaced;
      finding(s.id + " acknowledged at " + std::to_string(a.partition) + "@" + std::to_string(a.offset) + ", found at " +
              std::to_string(s.partition) + "@" + std::to_string(s.offset));
    }
    if (s.hash != a.hash) {
      ++r.altered;
      finding(s.id + ": bytes differ from what was appended");
    }
    auto& last = last_seq[{a.producer, a.partition}];
    if (a.seq < last) {
      ++r.reordered;
      finding(s.id + " (producer " + std::to_string(a.producer) + ", seq " + std::to_string(a.seq) +
              ") after seq " + std::to_string(last) + " on partition " + std::to_string(a.partition));
    }
    last = std::max(last, a.seq);
  }
  for (size_t i = 0; i < acked.size(); ++i)
    if (count[i] == 0) {
      ++r.lost;
      finding("lost: " + acked[i]->id + " (acknowledged at " + std::to_string(acked[i]->partition) + "@" +
              std::to_string(acked[i]->offset) + ")");
    }
  r.unacked_visible = static_cast<int64_t>(unacked.size());
  r.acked = static_cast<int64_t>(acked.size());

  // Pulse's derived events: exactly the reference's, each once, the same bytes.
  r.derived = static_cast<int64_t>(derived.size());
  for (auto& [id, d] : derived) {
    if (d.first > 1) finding("derived event in the log " + std::to_string(d.first) + " times: " + id);
    auto w = in.reference_derived.find(id);
    if (w == in.reference_derived.end()) finding("derived event not derived by the reference run: " + id);
    else if (w->second != d.second) finding("derived event differs from the reference's: " + id);
  }
  for (auto& [id, hash] : in.reference_derived)
    if (!derived.count(id)) finding("derived event missing from the log: " + id);
}

}  // namespace agentos::test::storm
