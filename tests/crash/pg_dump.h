// The read models as data, for the crash tests: every `agentos_rm` table of a database as
// sorted row_to_json texts (every row, every column) and the projector's watermarks, and
// a comparison that names what differs. Shared by projector_crash_test.cc and
// roles_crash_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/support/pg_cluster.h"

namespace agentos::crash_test {

using test::pg_query;

// Every agentos_rm table as sorted row_to_json texts, and the watermarks.
struct Dump {
  std::map<std::string, std::vector<std::string>> tables;
  std::vector<std::string> watermarks;  // "<partition>:<next offset>"
};

inline Dump dump(const std::string& admin_url) {
  Dump d;
  for (const auto& row : pg_query(admin_url,
                                  "SELECT table_name FROM information_schema.tables WHERE table_schema = 'agentos_rm' "
                                  "AND table_type = 'BASE TABLE' ORDER BY 1")) {
    auto& rows = d.tables[row[0]];
    for (const auto& r : pg_query(admin_url, "SELECT row_to_json(t)::text FROM agentos_rm.\"" + row[0] + "\" t"))
      rows.push_back(r[0]);
    std::sort(rows.begin(), rows.end());
  }
  for (const auto& r : pg_query(admin_url,
                                "SELECT log_partition || ':' || next_offset FROM agentos_meta.watermarks "
                                "WHERE projector = 'projector' ORDER BY log_partition"))
    d.watermarks.push_back(r[0]);
  return d;
}

// Equal dumps; otherwise, per differing table: the counts and the first rows missing from
// / extra in `got`, and any row that `got` holds twice.
inline ::testing::AssertionResult same_dump(const Dump& want, const Dump& got) {
  std::string diff;
  std::set<std::string> names;
  for (const auto& [t, _] : want.tables) names.insert(t);
  for (const auto& [t, _] : got.tables) names.insert(t);
  static const std::vector<std::string> kNone;
  for (const std::string& t : names) {
    auto wi = want.tables.find(t);
    auto gi = got.tables.find(t);
    const auto& w = wi == want.tables.end() ? kNone : wi->second;
    const auto& g = gi == got.tables.end() ? kNone : gi->second;
    if (w == g) continue;
    std::vector<std::string> missing, extra, twice;
    std::set_difference(w.begin(), w.end(), g.begin(), g.end(), std::back_inserter(missing));
    std::set_difference(g.begin(), g.end(), w.begin(), w.end(), std::back_inserter(extra));
    for (size_t i = 1; i < g.size(); ++i)
      if (g[i] == g[i - 1]) twice.push_back(g[i]);
    diff += "\n  table " + t + ": " + std::to_string(g.size()) + " rows, uninterrupted run " +
            std::to_string(w.size()) + " (" + std::to_string(missing.size()) + " missing, " +
            std::to_string(extra.size()) + " extra or different, " + std::to_string(twice.size()) + " twice)";
    for (size_t i = 0; i < std::min<size_t>(3, missing.size()); ++i) diff += "\n    missing: " + missing[i];
    for (size_t i = 0; i < std::min<size_t>(3, extra.size()); ++i) diff += "\n    extra:   " + extra[i];
    for (size_t i = 0; i < std::min<size_t>(3, twice.size()); ++i) diff += "\n    twice:   " + twice[i];
  }
  if (want.watermarks != got.watermarks) {
    diff += "\n  watermarks:";
    for (const auto& w : got.watermarks) diff += " " + w;
    diff += " (uninterrupted run:";
    for (const auto& w : want.watermarks) diff += " " + w;
    diff += ")";
  }
  if (diff.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the read models differ from an uninterrupted run:" << diff;
}

}  // namespace agentos::crash_test
