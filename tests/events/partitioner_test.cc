// A tenant must land on the same partition whichever client (Java, librdkafka, ours)
// produces it: murmur2 is checked against the Java client's published test vectors
// and partition placement against librdkafka's own murmur2 partitioner.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <random>

#include "events/partitioner.h"

namespace agentos {
namespace {

TEST(Murmur2, MatchesTheJavaClientsTestVectors) {
  // org.apache.kafka.common.utils.UtilsTest#testMurmur2
  const std::pair<const char*, int32_t> cases[] = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107},
  };
  for (const auto& [key, want] : cases) EXPECT_EQ(static_cast<int32_t>(murmur2(key)), want) << key;
}

TEST(Murmur2, EmptyKeyHashesLikeJava) {
  // librdkafka's unit test pins "" to 0x106e08d9, the Java value.
  EXPECT_EQ(murmur2(""), 0x106e08d9u);
}

TEST(KafkaPartition, AgreesWithLibrdkafkasMurmur2PartitionerOnRandomKeys) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, "partitioner-test", nullptr);
  ASSERT_NE(rkt, nullptr);
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string key(1 + rng() % 64, '\0');
    for (auto& c : key) c = static_cast<char>(rng());
    for (int32_t parts : {1, 3, 16, 64, 1000}) {
      const int32_t theirs = rd_kafka_msg_partitioner_murmur2(rkt, key.data(), key.size(), parts, nullptr, nullptr);
      ASSERT_EQ(kafka_partition(key, parts).value(), theirs) << "key #" << i << " partitions " << parts;
    }
  }
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
}

TEST(KafkaPartition, IsAlwaysInRange) {
  for (int i = 0; i < 1000; ++i) {
    auto p = kafka_partition("tenant-" + std::to_string(i), 7);
    EXPECT_GE(p.value(), 0);
    EXPECT_LT(p.value(), 7);
  }
}

TEST(TenantId, Validation) {
  EXPECT_TRUE(TenantId::is_valid("acme"));
  EXPECT_TRUE(TenantId::is_valid("a-1"));
  EXPECT_TRUE(TenantId::is_valid(std::string(64, 'a')));
  EXPECT_FALSE(TenantId::is_valid(""));
  EXPECT_FALSE(TenantId::is_valid(std::string(65, 'a')));
  EXPECT_FALSE(TenantId::is_valid("-acme"));
  EXPECT_FALSE(TenantId::is_valid("Acme"));
  EXPECT_FALSE(TenantId::is_valid("a/b"));
  EXPECT_FALSE(TenantId::is_valid("a b"));
}

}  // namespace
}  // namespace agentos
