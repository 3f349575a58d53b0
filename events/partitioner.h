// Kafka's default partitioner, byte for byte: murmur2 of the key bytes with seed
// 0x9747b28c, positive-masked, modulo the partition count. This is what the Java
// client's DefaultPartitioner / librdkafka's `murmur2_random` compute for keyed
// records, so every client puts a tenant on the same partition.
#pragma once

#include <cstdint>
#include <string_view>

#include "events/types.h"

namespace agentos {

uint32_t murmur2(std::string_view key);
Partition kafka_partition(std::string_view key, int32_t partition_count);

}  // namespace agentos
