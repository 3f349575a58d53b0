// The gateway's local index (gateway/index.h) over a real embedded log: where a reopened
// index resumes, and that it answers the same after a stop, a reopen and a re-fold.
#include "gateway/index.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "events/codec.h"
#include "events/log.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {
namespace {

using namespace std::chrono_literals;

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedLogOptions lo;
    lo.dir = dir_.sub("log");
    lo.partitions = 4;
    lo.fsync = false;  // nothing here is about durability
    auto log = open_embedded_log(lo);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_ = std::move(log).value();
  }

  std::unique_ptr<LocalIndex> open_index(std::chrono::milliseconds window = 0ms) {
    auto idx = LocalIndex::open(dir_.path() + "/index", *log_, window);
    EXPECT_TRUE(idx.ok()) << idx.status().to_string();
    return idx.ok() ? std::move(idx).value() : nullptr;
  }

  void append(const std::string& tenant, const std::string& json) {
    DecodeOptions o;
    o.path_tenant = TenantId(tenant);
    auto ev = decode_structured(json, o);
    ASSERT_TRUE(ev.ok()) << ev.status().to_string();
    ASSERT_TRUE(log_->append_sync(AppendBatch{TenantId(tenant), {std::move(ev->bytes)}}).ok());
  }
  void tenant_created(const std::string& tenant, const std::string& plan) {
    append(tenant, R"({"specversion":"1.0","type":"tenant.created","source":"/admin","id":"t-)" + tenant +
                       R"(","data":{"slug":")" + tenant + R"(","plan":")" + plan + R"("}})");
  }
  // Events the index folds without writing a row (the log de-duplicates them itself).
  void progress(const std::string& tenant, int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(log_->append_sync(AppendBatch{TenantId(tenant), {agentos::test::make_event(tenant, tenant + "-" + std::to_string(i))}})
                      .ok());
  }
  bool applied_to_end(LocalIndex& idx) {
    for (int32_t p = 0; p < log_->partition_count(); ++p)
      if (idx.applied(Partition(p)) != *log_->end_offset(Partition(p))) return false;
    return true;
  }

  agentos::test::TempDir dir_;
  std::unique_ptr<Log> log_;
};

// A fold of records that change nothing stores no watermark (at most one a second); stop()
// stores where the index got to, so a reopened index starts there instead of re-folding.
TEST_F(IndexTest, AStoppedIndexIsReopenedWhereItStopped) {
  tenant_created("acme", "pro");
  tenant_created("bolt", "free");
  {
    auto idx = open_index();
    ASSERT_TRUE(idx->start().is_ok());
    progress("acme", 200);
    progress("bolt", 200);
    ASSERT_TRUE(agentos::test::wait_until([&] { return applied_to_end(*idx); }, 10s));
    idx->stop();
  }
  auto reopened = open_index();
  EXPECT_TRUE(applied_to_end(*reopened)) << "the watermarks stored at stop";
  ASSERT_TRUE(reopened->tenant(TenantId("acme")).has_value());
  EXPECT_EQ(reopened->tenant(TenantId("acme"))->plan, Plan::pro);
  EXPECT_EQ(reopened->tenant(TenantId("bolt"))->plan, Plan::free);
  EXPECT_FALSE(reopened->tenant(TenantId("carol")).has_value());
}

// Under a window the index still folds everything, and a tenant created after many
// row-less records is answered; a second index over the same directory, started from the
// watermarks the first stored, re-folds what it lacks to the same answers.
TEST_F(IndexTest, UnderAWindowEveryRecordIsFoldedAndAReopenedIndexCatchesUp) {
  auto idx = open_index(5ms);
  ASSERT_TRUE(idx->start().is_ok());
  progress("acme", 300);
  tenant_created("acme", "enterprise");
  ASSERT_TRUE(agentos::test::wait_until([&] { return idx->tenant(TenantId("acme")).has_value(); }, 10s));
  EXPECT_EQ(idx->tenant(TenantId("acme"))->plan, Plan::enterprise);
  ASSERT_TRUE(agentos::test::wait_until([&] { return applied_to_end(*idx); }, 10s));
  idx->stop();
  idx.reset();

  progress("bolt", 50);  // appended while no index runs
  tenant_created("bolt", "pro");
  auto reopened = open_index(5ms);
  ASSERT_TRUE(reopened->start().is_ok());  // catches up before it returns
  EXPECT_TRUE(applied_to_end(*reopened));
  ASSERT_TRUE(reopened->tenant(TenantId("bolt")).has_value());
  EXPECT_EQ(reopened->tenant(TenantId("bolt"))->plan, Plan::pro);
  EXPECT_EQ(reopened->tenant(TenantId("acme"))->plan, Plan::enterprise);
}

}  // namespace
}  // namespace agentos::gateway::test
