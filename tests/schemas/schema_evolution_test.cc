// Schema evolution gate: the current schema must conform to v1 (flatc --conform), the gate
// must be able to fail (negative controls), and bytes written by v1 must stay readable and
// encode to the same CloudEvent JSON forever (golden samples).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "events/codec.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

namespace fs = std::filesystem;

const std::string kSource = AGENTOS_SOURCE_DIR;
const std::string kPrevious = kSource + "/schemas/previous/agentos_v1.fbs";
const std::string kCurrent = kSource + "/schemas/agentos.fbs";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `flatc --conform <base> <schema>` in `dir` (flatc may write nothing, but keep any
// stray output out of the source tree). Returns the exit status; output goes to `log`.
int conform(const std::string& base, const std::string& schema, const std::string& dir,
            std::string* log) {
  const std::string out = dir + "/flatc.log";
  const std::string cmd = "cd '" + dir + "' && flatc --conform '" + base + "' '" + schema +
                          "' > '" + out + "' 2>&1";
  int rc = std::system(cmd.c_str());
  *log = read_file(out);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// `schema` with the first occurrence of `from` replaced by `to` (which must exist).
std::string mutate(const std::string& schema, const std::string& from, const std::string& to) {
  const size_t pos = schema.find(from);
  EXPECT_NE(pos, std::string::npos) << "mutation anchor not found: " << from;
  if (pos == std::string::npos) return schema;
  std::string s = schema;
  s.replace(pos, from.size(), to);
  return s;
}

TEST(SchemaEvolutionTest, CurrentSchemaConformsToV1) {
  test::TempDir dir;
  std::string log;
  EXPECT_EQ(conform(kPrevious, kCurrent, dir.path(), &log), 0) << log;
}

TEST(SchemaEvolutionTest, GateFailsOnRenumberedUnionValue) {
  test::TempDir dir;
  const std::string bad = dir.sub("renumbered.fbs");
  std::ofstream(bad) << mutate(read_file(kCurrent), "SessionStarted = 31", "SessionStarted = 38");
  std::string log;
  EXPECT_NE(conform(kPrevious, bad, dir.path(), &log), 0) << log;
  EXPECT_NE(log.find("SessionStarted"), std::string::npos) << log;
}

TEST(SchemaEvolutionTest, GateFailsOnRetypedField) {
  test::TempDir dir;
  const std::string bad = dir.sub("retyped.fbs");
  std::ofstream(bad) << mutate(read_file(kCurrent), "priority: int;", "priority: long;");
  std::string log;
  EXPECT_NE(conform(kPrevious, bad, dir.path(), &log), 0) << log;
  EXPECT_NE(log.find("priority"), std::string::npos) << log;
}

std::vector<fs::path> golden_files(const std::string& version) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kSource + "/tests/golden/" + version)) {
    if (e.path().extension() == ".aose") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(SchemaEvolutionTest, V1GoldenSamplesStayReadable) {
  const auto files = golden_files("v1");
  ASSERT_FALSE(files.empty());
  for (const auto& aose : files) {
    SCOPED_TRACE(aose.filename().string());
    const std::string bytes = read_file(aose.string());
    ASSERT_TRUE(verify_event(bytes).is_ok()) << verify_event(bytes).to_string();
    fs::path json_path = aose;
    json_path.replace_extension(".json");
    std::string expected = read_file(json_path.string());
    while (!expected.empty() && (expected.back() == '\n' || expected.back() == '\r')) {
      expected.pop_back();
    }
    ASSERT_FALSE(expected.empty()) << "missing " << json_path;
    EXPECT_EQ(encode_json(bytes), expected);
  }
}

TEST(SchemaEvolutionTest, V1GoldenSamplesCoverEveryV1Type) {
  // v1 knew these types; a v1 sample of each must exist (types added later get their
  // goldens in the next version's folder).
  std::vector<std::string> names;
  for (const auto& f : golden_files("v1")) names.push_back(f.stem().string());
  for (const char* type :
       {"tenant.created", "tenant.plan_changed", "apikey.created", "apikey.revoked",
        "session.created", "session.started", "session.progress", "session.checkpoint",
        "session.gate.passed", "session.gate.failed", "session.completed", "session.failed",
        "heartbeat.check.ok", "heartbeat.check.warn", "heartbeat.alert", "dream.planted",
        "dream.evolved", "dream.bloomed", "dream.compiled", "skill.installed",
        "skill.published"}) {
    const bool found = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return n.size() > 4 && n.substr(4) == type;
    });
    EXPECT_TRUE(found) << "no v1 golden sample for " << type;
  }
}

}  // namespace
}  // namespace agentos
