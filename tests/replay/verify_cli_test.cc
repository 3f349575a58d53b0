// `agentos audit verify`, the binary: a clean data directory exits 0 with "ok":true, an
// altered one exits 1 and names the record; the engine's own signing.pub is trusted.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/wait.h>

#include <cstdio>

#include "events/key_codec.h"
#include "events/log.h"
#include "replay/notary.h"
#include "tests/replay/raw_log.h"
#include "tests/support/test_util.h"

#ifndef AGENTOS_BIN
#error "AGENTOS_BIN: the agentos binary (tests/CMakeLists.txt)"
#endif

namespace agentos {
namespace {

struct CliResult {
  int exit_code = -1;
  std::string out;
};

CliResult verify(const std::string& data_dir, const std::string& extra = "") {
  const std::string cmd = std::string(AGENTOS_BIN) + " audit verify --data-dir '" + data_dir +
                          "' --output json " + extra + " 2>/dev/null";
  CliResult r;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(AuditVerifyCli, CleanExitsZeroAlteredExitsOneAndNamesTheRecord) {
  test::TempDir dir;
  const TenantId t("acme");
  int32_t partition = 0;
  {
    EmbeddedLogOptions o;
    o.dir = dir.sub("log");
    o.partitions = 3;
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok());
    partition = (*log)->partition_of(t).value();
    NotaryOptions no;
    no.log = log->get();
    no.dir = dir.sub("audit");
    auto n = open_notary(no);
    ASSERT_TRUE(n.ok());
    ASSERT_TRUE((*n)->start().is_ok());
    for (int i = 0; i < 20; ++i)
      ASSERT_TRUE((*log)->append_sync(AppendBatch{t, {test::make_event("acme", "e-" + std::to_string(i), i)}}).ok());
    ASSERT_TRUE((*n)->wait_folded(Partition(partition), Offset(20), std::chrono::steady_clock::now() + std::chrono::seconds(10)));
    ASSERT_TRUE((*n)->publish_heads().ok());
  }
  CliResult clean = verify(dir.path());
  EXPECT_EQ(clean.exit_code, 0) << clean.out;
  EXPECT_NE(clean.out.find("\"ok\":true"), std::string::npos) << clean.out;
  EXPECT_EQ(clean.out.find("\"headsChecked\":0,"), std::string::npos) << "the head in the log was checked: " << clean.out;

  {  // one byte of offset 7, behind the engine's back
    test::RawLog raw(dir.sub("log"));
    std::string v = raw.get(Partition(partition), 7);
    ASSERT_FALSE(v.empty());
    v[v.size() - 5] ^= 0x01;
    raw.put(Partition(partition), 7, v);
  }
  CliResult altered = verify(dir.path());
  EXPECT_EQ(altered.exit_code, 1) << altered.out;
  EXPECT_NE(altered.out.find("\"kind\":\"altered\",\"partition\":" + std::to_string(partition) + ",\"offset\":7"),
            std::string::npos)
      << altered.out;
  // Another tenant's partition alone is clean.
  CliResult other = verify(dir.path(), "--partition " + std::to_string((partition + 1) % 3));
  EXPECT_EQ(other.exit_code, 0) << other.out;
  // A key the auditor does not trust: the head is reported, not believed.
  CliResult untrusted = verify(dir.path(), "--partition " + std::to_string(partition) + " --key " + std::string(64, 'a'));
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_NE(untrusted.out.find("not a trusted one"), std::string::npos) << untrusted.out;
}

}  // namespace
}  // namespace agentos
