#include "events/tenant_topics.h"

#include <librdkafka/rdkafka.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "events/codec.h"
#include "events/json_text.h"
#include "events/log_follower.h"
#include "events/logging.h"
#include "events/types.h"

namespace agentos {
namespace {

constexpr std::string_view kPlaceholder = "{tenant}";
constexpr char kPositionHeader[] = "agentos_position";
// The progress topic's key of a deleted tenant: "deleted:<tenant>" (its records after its
// tenant.deleted are withheld). A partition's progress is keyed by the partition number.
constexpr std::string_view kDeletedKey = "deleted:";

int to_ms(std::chrono::milliseconds d) { return static_cast<int>(std::max<int64_t>(1, d.count())); }

bool topic_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// "<partition>/<offset>" -> (partition, offset); (-1, -1) when malformed.
std::pair<int32_t, int64_t> parse_position(std::string_view v) {
  const size_t slash = v.find('/');
  int32_t p = -1;
  int64_t o = -1;
  if (slash == std::string_view::npos) return {-1, -1};
  auto a = std::from_chars(v.data(), v.data() + slash, p);
  auto b = std::from_chars(v.data() + slash + 1, v.data() + v.size(), o);
  if (a.ec != std::errc() || b.ec != std::errc() || a.ptr != v.data() + slash || b.ptr != v.data() + v.size())
    return {-1, -1};
  return {p, o};
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

using Props = std::vector<std::pair<std::string, std::string>>;

// A librdkafka configuration of `props`, then `extra` (which win); kInvalidArgument naming
// `kafka_config` and the property librdkafka refused.
Result<rd_kafka_conf_t*> make_conf(const Props& props, const Props& extra) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char e[512];
  for (const Props* list : {&props, &extra})
    for (const auto& [k, v] : *list)
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), e, sizeof e) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        // librdkafka's message may quote the value: not for a credential's property.
        const bool secret = k.find("password") != std::string::npos || k.find("secret") != std::string::npos ||
                            k.find("jaas") != std::string::npos || k.find(".key") != std::string::npos;
        return Status::invalid("kafka_config", k + ": " + (secret ? std::string("refused") : std::string(e)));
      }
  return conf;
}

class KafkaTenantTopics final : public TenantTopics {
 public:
  KafkaTenantTopics(Log& log, TenantTopicsOptions o) : log_(log), o_(std::move(o)) {
    if (o_.transactional_id.empty()) o_.transactional_id = "agentos-tenant-topics." + hostname();
    progress_.assign(static_cast<size_t>(log_.partition_count()), 0);
    known_end_.assign(progress_.size(), 0);
    if (o_.metrics) {
      auto& records = prometheus::BuildCounter()
                          .Name("agentos_tenant_topics_records_total")
                          .Help("Log records handled by the tenant-topic fan-out, by outcome (published, skipped: "
                                "already in the tenant's topic after a restart, withheld: a record of a tenant "
                                "after its tenant.deleted)")
                          .Register(*o_.metrics);
      published_metric_ = &records.Add({{"outcome", "published"}});
      skipped_metric_ = &records.Add({{"outcome", "skipped"}});
      withheld_metric_ = &records.Add({{"outcome", "withheld"}});
      auto& txns = prometheus::BuildCounter()
                       .Name("agentos_tenant_topics_transactions_total")
                       .Help("Kafka transactions of the tenant-topic fan-out, by outcome (committed, aborted)")
                       .Register(*o_.metrics);
      committed_metric_ = &txns.Add({{"outcome", "committed"}});
      aborted_metric_ = &txns.Add({{"outcome", "aborted"}});
    }
  }
  ~KafkaTenantTopics() override { stop(); }

  // Connecting happens on the worker: a broker that is away is a transient error the
  // host retries with backoff, not an engine that cannot start.
  Status start() override {
    std::lock_guard lk(lifecycle_mu_);
    if (follower_) return Status::ok();
    std::vector<Partition> parts;
    for (int32_t p = 0; p < log_.partition_count(); ++p) parts.push_back(Partition(p));
    follower_ = std::make_unique<LogFollower>(log_, parts);
    set_error(Status::ok());
    return follower_->start(
        [this]() -> Result<bool> {
          Result<bool> r = false;
          if (producer_ == nullptr) {
            if (Status s = connect(); !s.is_ok()) {
              disconnect();
              r = s;
            }
          }
          if (r.ok()) r = round();
          if (!r.ok()) set_error(r.status());
          return r;
        },
        std::chrono::milliseconds(500), "tenant-topics");
  }

  void stop() override {
    std::lock_guard lk(lifecycle_mu_);
    if (follower_) follower_->stop();
    follower_.reset();
    disconnect();
  }

  Status health() const override {
    std::lock_guard lk(mu_);
    return error_;
  }

  int64_t lag() const override {
    std::lock_guard lk(mu_);
    int64_t lag = 0;
    for (size_t p = 0; p < progress_.size(); ++p) lag += std::max<int64_t>(0, known_end_[p] - progress_[p]);
    return lag;
  }

  std::vector<int64_t> progress() const override {
    std::lock_guard lk(mu_);
    return progress_;
  }
  TenantTopicsStats stats() const override {
    std::lock_guard lk(mu_);
    return stats_;
  }

 private:
  void set_error(Status s) {
    std::lock_guard lk(mu_);
    error_ = std::move(s);
  }

  static Status unavailable(std::string what) { return Status(Code::kUnavailable, "tenant topics: " + what); }

  // Every client of this fan-out: the brokers, the request timeout, warnings and worse only.
  Props common() const {
    return {{"bootstrap.servers", o_.brokers},
            {"socket.timeout.ms", std::to_string(to_ms(o_.request_timeout))},
            {"log_level", "4"}};
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaTenantTopics*>(opaque);
    if (m->err) {
      std::lock_guard lk(self->delivery_mu_);
      if (self->delivery_error_.empty()) self->delivery_error_ = rd_kafka_err2str(m->err);
    }
  }

  Status connect() {
    Props producer = common();
    producer.insert(producer.end(), {{"transactional.id", o_.transactional_id},
                                     {"enable.idempotence", "true"},
                                     {"acks", "all"},
                                     {"linger.ms", "5"},
                                     {"transaction.timeout.ms", "60000"},
                                     {"message.timeout.ms", std::to_string(to_ms(o_.request_timeout))}});
    auto pconf = make_conf(producer, o_.kafka_config);
    if (!pconf.ok()) return pconf.status();
    rd_kafka_conf_t* pc = *pconf;
    char e[512];
    rd_kafka_conf_set_dr_msg_cb(pc, &KafkaTenantTopics::on_delivery);
    rd_kafka_conf_set_opaque(pc, this);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof e);
    if (!producer_) {
      rd_kafka_conf_destroy(pc);
      return unavailable(std::string("producer: ") + e);
    }
    // Fences any older producer of this transactional id and ends its open transaction.
    if (rd_kafka_error_t* x = rd_kafka_init_transactions(producer_, to_ms(o_.request_timeout))) {
      Status s = unavailable(std::string("init_transactions(") + o_.transactional_id + "): " + rd_kafka_error_string(x));
      rd_kafka_error_destroy(x);
      return s;
    }

    Props consumer = common();
    consumer.insert(consumer.end(), {{"group.id", o_.transactional_id + ".tail"},
                                     {"enable.auto.commit", "false"},
                                     {"enable.partition.eof", "true"},
                                     {"isolation.level", "read_committed"}});
    auto cconf = make_conf(consumer, o_.kafka_config);
    if (!cconf.ok()) return cconf.status();
    rd_kafka_conf_t* cc = *cconf;
    consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof e);
    if (!consumer_) {
      rd_kafka_conf_destroy(cc);
      return unavailable(std::string("consumer: ") + e);
    }
    if (o_.create_topics) {
      if (Status s = create_topic(o_.progress_topic, 1, {{"cleanup.policy", "compact"}}); !s.is_ok()) return s;
    }
    // The committed progress, then the window of records an earlier run may have
    // published without committing (visible to a broker without transaction markers).
    deleted_.clear();
    auto committed = read_progress();
    if (!committed.ok()) return committed.status();
    {
      std::lock_guard lk(mu_);
      for (size_t p = 0; p < progress_.size(); ++p) progress_[p] = (*committed)[p];
    }
    window_end_.assign(progress_.size(), 0);
    for (int32_t p = 0; p < log_.partition_count(); ++p) {
      auto end = log_.end_offset(Partition(p));
      if (!end.ok()) return end.status();
      window_end_[static_cast<size_t>(p)] = end->value();
    }
    tails_.clear();
    return Status::ok();
  }

  void disconnect() {
    if (consumer_) {
      // Assigned partitions only, nothing committed: no group to leave (a close would
      // talk to the group coordinator, and could wait for it).
      rd_kafka_destroy_flags(consumer_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
      consumer_ = nullptr;
    }
    if (producer_) {
      rd_kafka_destroy(producer_);  // an open transaction is ended by the next init_transactions
      producer_ = nullptr;
    }
  }

  Status create_topic(const std::string& topic, int32_t partitions,
                      std::vector<std::pair<std::string, std::string>> configs = {}) {
    char e[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, o_.replication_factor, e, sizeof e);
    if (!nt) return Status::invalid("topic", e);
    for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    rd_kafka_queue_t* q = rd_kafka_queue_new(producer_);
    rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(producer_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(ao, to_ms(o_.request_timeout), e, sizeof e);
    rd_kafka_CreateTopics(producer_, &nt, 1, ao, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, to_ms(o_.request_timeout) + 1000);
    Status s;
    if (!ev) {
      s = unavailable("CreateTopics " + topic + " timed out");
    } else if (rd_kafka_event_error(ev)) {
      s = unavailable("CreateTopics " + topic + ": " + rd_kafka_event_error_string(ev));
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      for (size_t i = 0; i < n; ++i) {
        const rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
        if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char* msg = rd_kafka_topic_result_error_string(res[i]);
          s = unavailable("CreateTopics " + topic + ": " + (msg ? msg : rd_kafka_err2str(te)));
        }
      }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    if (s.is_ok()) {
      std::lock_guard lk(mu_);
      ++stats_.topics_created;
    }
    return s;
  }

  // Calls `each(message)` for every record of `topic`/`partition` from `from` to the end
  // visible to a read_committed reader. False: the partition has no records.
  template <typename Each>
  Status scan(const std::string& topic, int32_t partition, int64_t from, int64_t high, Each each) {
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic.c_str(), partition)->offset = from;
    rd_kafka_resp_err_t err = rd_kafka_assign(consumer_, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) return unavailable("assign " + topic + ": " + rd_kafka_err2str(err));
    Status s;
    const auto deadline = std::chrono::steady_clock::now() + o_.request_timeout;
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline) {
        s = unavailable("reading " + topic + " timed out");
        break;
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, 100);
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(m);
        break;
      }
      if (m->err) {
        s = unavailable("reading " + topic + ": " + rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        break;
      }
      const bool last = m->offset + 1 >= high;
      each(m);
      rd_kafka_message_destroy(m);
      if (last) break;
    }
    rd_kafka_assign(consumer_, nullptr);
    return s;
  }

  Status watermarks(const std::string& topic, int32_t partition, int64_t* lo, int64_t* hi) {
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(consumer_, topic.c_str(), partition, lo, hi,
                                                               to_ms(o_.request_timeout));
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
        err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
      *lo = *hi = 0;
      return Status::ok();
    }
    if (err) return unavailable("watermarks of " + topic + ": " + rd_kafka_err2str(err));
    return Status::ok();
  }

  Result<std::vector<int64_t>> read_progress() {
    std::vector<int64_t> out(progress_.size(), 0);
    int64_t lo = 0, hi = 0;
    if (Status s = watermarks(o_.progress_topic, 0, &lo, &hi); !s.is_ok()) return s;
    if (hi <= lo) return out;
    Status s = scan(o_.progress_topic, 0, RD_KAFKA_OFFSET_BEGINNING, hi, [&](const rd_kafka_message_t* m) {
      int32_t p = -1;
      int64_t next = -1;
      const auto* k = static_cast<const char*>(m->key);
      const auto* v = static_cast<const char*>(m->payload);
      if (!k || !v) return;
      if (const std::string_view key(k, m->key_len); key.starts_with(kDeletedKey)) {
        deleted_.emplace(key.substr(kDeletedKey.size()));  // a deleted tenant (round())
        return;
      }
      std::from_chars(k, k + m->key_len, p);
      std::from_chars(v, v + m->len, next);
      if (p >= 0 && static_cast<size_t>(p) < out.size() && next >= 0) out[static_cast<size_t>(p)] = next;
    });
    if (!s.is_ok()) return s;
    return out;
  }

  // The highest log offset of partition `p` already in `topic` (any of its partitions),
  // -1 when none: read from each partition's tail, further back while the tail holds no
  // record of ours (transaction markers take offsets too).
  Result<int64_t> published_up_to(const std::string& topic, int32_t p) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* t = rd_kafka_topic_new(consumer_, topic.c_str(), nullptr);
    rd_kafka_resp_err_t err = rd_kafka_metadata(consumer_, 0, t, &md, to_ms(o_.request_timeout));
    rd_kafka_topic_destroy(t);
    if (err) return unavailable("metadata of " + topic + ": " + rd_kafka_err2str(err));
    int partitions = 0;
    if (md->topic_cnt == 1 && !md->topics[0].err) partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    int64_t best = -1;
    for (int32_t tp = 0; tp < partitions; ++tp) {
      int64_t lo = 0, hi = 0;
      if (Status s = watermarks(topic, tp, &lo, &hi); !s.is_ok()) return s;
      for (int64_t back = 8; hi > lo; back *= 8) {
        const int64_t from = std::max(lo, hi - back);
        int64_t found = -1;
        Status s = scan(topic, tp, from, hi, [&](const rd_kafka_message_t* m) {
          rd_kafka_headers_t* hs = nullptr;
          const void* v = nullptr;
          size_t n = 0;
          if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
              rd_kafka_header_get_last(hs, kPositionHeader, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
            auto [pp, off] = parse_position(std::string_view(static_cast<const char*>(v), n));
            if (pp == p) found = std::max(found, off);
          }
        });
        if (!s.is_ok()) return s;
        if (found >= 0 || from == lo) {
          best = std::max(best, found);
          break;
        }
      }
    }
    return best;
  }

  Status produce(const std::string& topic, const StoredRecord& r, const EventHeader& h) {
    std::string key(o_.key == TenantTopicsOptions::Key::subject && !h.subject.empty() ? h.subject : h.tenant);
    std::string value;
    bool has_value = true;
    rd_kafka_headers_t* hs = rd_kafka_headers_new(16);
    if (o_.mode == TenantTopicsOptions::Mode::binary) {
      BinaryEncoded b = encode_binary(r.value);
      for (const auto& [name, v] : b.attributes) {
        const std::string header = "ce_" + name;
        rd_kafka_header_add(hs, header.data(), static_cast<ssize_t>(header.size()), v.data(), static_cast<ssize_t>(v.size()));
      }
      rd_kafka_header_add(hs, "content-type", -1, b.datacontenttype.data(), static_cast<ssize_t>(b.datacontenttype.size()));
      has_value = b.data.has_value();
      if (has_value) value = std::move(*b.data);
    } else {
      value = encode_json(r.value);
      rd_kafka_header_add(hs, "content-type", -1, "application/cloudevents+json; charset=UTF-8", -1);
    }
    const std::string position = std::to_string(r.pos.partition.value()) + "/" + std::to_string(r.pos.offset.value());
    rd_kafka_header_add(hs, kPositionHeader, -1, position.data(), static_cast<ssize_t>(position.size()));
    for (;;) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(has_value ? value.data() : nullptr, has_value ? value.size() : 0),
          RD_KAFKA_V_TIMESTAMP(h.time_us / 1000), RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::ok();  // the headers are the message's now
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer_, 50);
        continue;
      }
      rd_kafka_headers_destroy(hs);
      return unavailable("produce to " + topic + ": " + rd_kafka_err2str(err));
    }
  }

  // Ends the round's transaction after a failure: aborted, or left to the next
  // init_transactions when even that fails.
  Status fail(Status s) {
    if (rd_kafka_error_t* x = rd_kafka_abort_transaction(producer_, to_ms(o_.request_timeout))) {
      log_line(LogLevel::kWarn, "tenant topics: abort_transaction failed", {{"error", rd_kafka_error_string(x)}});
      rd_kafka_error_destroy(x);
    }
    {
      std::lock_guard lk(mu_);
      ++stats_.transactions_aborted;
    }
    if (aborted_metric_) aborted_metric_->Increment();
    log_line(LogLevel::kWarn, "tenant topics: round failed; restarting from the committed progress",
             {{"error", s.to_string()}});
    return s;
  }

  Status txn_error(const char* what, rd_kafka_error_t* x) {
    Status s = unavailable(std::string(what) + ": " + rd_kafka_error_string(x));
    rd_kafka_error_destroy(x);
    return s;
  }

  Result<bool> round() {
    std::vector<std::vector<StoredRecord>> batch(progress_.size());
    std::vector<int64_t> from;
    {
      std::lock_guard lk(mu_);
      from = progress_;
    }
    bool any = false;
    ReadOptions ro;
    ro.max_records = o_.max_batch_records;
    {
      std::lock_guard lk(mu_);
      for (size_t p = 0; p < batch.size(); ++p) known_end_[p] = follower_->end(Partition(static_cast<int32_t>(p)));
    }
    for (size_t p = 0; p < batch.size(); ++p) {
      auto recs = log_.read(Partition(static_cast<int32_t>(p)), Offset(from[p]), ro);
      if (!recs.ok()) return recs.status();
      if (!recs->empty()) follower_->raise_end(Partition(static_cast<int32_t>(p)), recs->back().pos.offset.next().value());
      any = any || !recs->empty();
      batch[p] = std::move(*recs);
    }
    if (!any) return false;

    if (rd_kafka_error_t* x = rd_kafka_begin_transaction(producer_)) return txn_error("begin_transaction", x);
    {
      std::lock_guard lk(delivery_mu_);
      delivery_error_.clear();
    }
    uint64_t published = 0, skipped = 0, withheld = 0;
    std::set<std::string, std::less<>> deleted;  // tenant.deleted in this round
    std::vector<int64_t> next = from;
    for (size_t p = 0; p < batch.size(); ++p) {
      for (const StoredRecord& r : batch[p]) {
        next[p] = r.pos.offset.next().value();
        if (Status v = verify_record(r); !v.is_ok())
          return fail(Status(Code::kCorruption, "tenant topics: record at partition " + std::to_string(p) +
                                                    " offset " + std::to_string(r.pos.offset.value()) +
                                                    " failed verification"));
        const EventHeader h = read_header(r.value);
        if (is_system_tenant(h.tenant)) continue;
        // A deleted tenant's topic ends with its tenant.deleted: what lands on its
        // partition for it later (a message from another partition, a fact relayed after
        // the deletion) is never applied, and is not published either.
        if (deleted_.count(h.tenant) || deleted.count(h.tenant)) {
          ++withheld;
          continue;
        }
        if (h.type_name == "tenant.deleted") deleted.emplace(h.tenant);
        const std::string topic = tenant_topic(o_.topic_template, h.tenant);
        if (r.pos.offset.value() < window_end_[p]) {
          // Records an earlier run may have published: skip those the topic holds.
          auto it = tails_.find(topic);
          if (it == tails_.end()) {
            auto up_to = published_up_to(topic, static_cast<int32_t>(p));
            if (!up_to.ok()) return fail(up_to.status());
            it = tails_.emplace(topic, *up_to).first;
          }
          if (r.pos.offset.value() <= it->second) {
            ++skipped;
            continue;
          }
        }
        if (o_.create_topics && !created_.count(topic)) {
          if (Status s = create_topic(topic, o_.partitions); !s.is_ok()) return fail(s);
          created_.insert(topic);
        }
        if (Status s = produce(topic, r, h); !s.is_ok()) return fail(s);
        ++published;
      }
    }
    // Every record delivered before the progress is written: a broker that shows aborted
    // records (no transaction markers) never shows progress past a missing record.
    rd_kafka_flush(producer_, to_ms(o_.request_timeout));
    {
      std::lock_guard lk(delivery_mu_);
      if (!delivery_error_.empty()) return fail(unavailable("delivery failed: " + delivery_error_));
    }
    for (size_t p = 0; p < batch.size(); ++p) {
      if (next[p] == from[p]) continue;
      const std::string k = std::to_string(p), v = std::to_string(next[p]);
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(o_.progress_topic.c_str()), RD_KAFKA_V_PARTITION(0),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(k.data(), k.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()), RD_KAFKA_V_END);
      if (err) return fail(unavailable("produce progress: " + std::string(rd_kafka_err2str(err))));
    }
    // The round's deleted tenants, committed with its progress: a restart resumes past
    // their deletions and must still withhold their records.
    for (const std::string& t : deleted) {
      const std::string k = std::string(kDeletedKey) + t;
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(o_.progress_topic.c_str()), RD_KAFKA_V_PARTITION(0),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(k.data(), k.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>("1"), 1), RD_KAFKA_V_END);
      if (err) return fail(unavailable("produce progress: " + std::string(rd_kafka_err2str(err))));
    }
    if (rd_kafka_error_t* x = rd_kafka_commit_transaction(producer_, to_ms(o_.request_timeout))) {
      const bool abortable = rd_kafka_error_txn_requires_abort(x);
      Status s = txn_error("commit_transaction", x);
      if (abortable) return fail(s);
      // Retriable or fatal: the outcome is unknown until the restart's init_transactions.
      log_line(LogLevel::kWarn, "tenant topics: commit failed; restarting", {{"error", s.to_string()}});
      return s;
    }
    {
      std::lock_guard lk(mu_);
      progress_ = next;
      ++stats_.transactions_committed;
      stats_.records_published += published;
      stats_.records_skipped += skipped;
      stats_.records_withheld += withheld;
    }
    deleted_.merge(deleted);
    if (committed_metric_) committed_metric_->Increment();
    if (published_metric_) published_metric_->Increment(static_cast<double>(published));
    if (skipped_metric_) skipped_metric_->Increment(static_cast<double>(skipped));
    if (withheld_metric_) withheld_metric_->Increment(static_cast<double>(withheld));
    // Past the window everywhere: no tail is needed any more.
    bool past = true;
    for (size_t p = 0; p < next.size(); ++p) past = past && next[p] >= window_end_[p];
    if (past) tails_.clear();
    return true;
  }

  Log& log_;
  TenantTopicsOptions o_;
  std::mutex lifecycle_mu_;
  std::unique_ptr<LogFollower> follower_;
  rd_kafka_t* producer_ = nullptr;
  rd_kafka_t* consumer_ = nullptr;  // reads the progress and the tails, one at a time
  // Worker thread only (and start()):
  std::vector<int64_t> window_end_;                  // log ends at start: the replay window
  std::unordered_map<std::string, int64_t> tails_;   // topic -> log offset published up to
  std::set<std::string> created_;                     // topics created (or found) by this process
  // Tenants whose tenant.deleted is published: from the progress topic's kDeletedKey
  // records at (re)start, then each committed round's.
  std::set<std::string, std::less<>> deleted_;

  mutable std::mutex mu_;
  std::vector<int64_t> progress_;
  std::vector<int64_t> known_end_;  // the log's ends as last seen, for lag()
  TenantTopicsStats stats_;
  Status error_;

  std::mutex delivery_mu_;
  std::string delivery_error_;  // the first failed delivery of the round's transaction

  prometheus::Counter* published_metric_ = nullptr;
  prometheus::Counter* skipped_metric_ = nullptr;
  prometheus::Counter* withheld_metric_ = nullptr;
  prometheus::Counter* committed_metric_ = nullptr;
  prometheus::Counter* aborted_metric_ = nullptr;
};

}  // namespace

std::string topic_template_problem(std::string_view tmpl) {
  const size_t at = tmpl.find(kPlaceholder);
  if (at == std::string_view::npos || tmpl.find(kPlaceholder, at + 1) != std::string_view::npos)
    return "must hold {tenant} exactly once";
  std::string rest(tmpl.substr(0, at));
  rest += tmpl.substr(at + kPlaceholder.size());
  if (!std::all_of(rest.begin(), rest.end(), topic_char)) return "topic names are [A-Za-z0-9._-]";
  if (rest.size() + 64 > 249) return "too long: a topic name is at most 249 characters (tenant ids up to 64)";
  return "";
}

std::string tenant_topic(std::string_view tmpl, std::string_view tenant) {
  std::string out(tmpl);
  const size_t at = out.find(kPlaceholder);
  if (at != std::string::npos) out.replace(at, kPlaceholder.size(), tenant);
  return out;
}

namespace {

// A record of a tenant topic as a structured CloudEvent.
TopicRecord to_event(const rd_kafka_message_t* m) {
  TopicRecord r;
  r.partition = m->partition;
  r.offset = m->offset;
  const std::string_view value = m->payload ? std::string_view(static_cast<const char*>(m->payload), m->len)
                                            : std::string_view();
  rd_kafka_headers_t* hs = nullptr;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> attrs;
  if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* v;
    size_t n;
    for (size_t i = 0; rd_kafka_header_get_all(hs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      const std::string_view k(name);
      const std::string val(v ? static_cast<const char*>(v) : "", v ? n : 0);
      if (k == "content-type") content_type = val;
      else if (k.starts_with("ce_")) attrs.emplace_back(std::string(k.substr(3)), val);
    }
  }
  if (content_type.starts_with("application/cloudevents+json")) {
    r.event_json = std::string(value);
    // The type, for the caller: the member of the event (simdjson-free, a tiny scan).
    const size_t at = r.event_json.find("\"type\":\"");
    if (at != std::string::npos) r.type = r.event_json.substr(at + 8, r.event_json.find('"', at + 8) - at - 8);
    return r;
  }
  std::string out = "{";
  for (const auto& [k, v] : attrs) {
    if (out.size() > 1) out += ',';
    append_json_string(out, k);
    out += ':';
    append_json_string(out, v);
    if (k == "type") r.type = v;
  }
  if (!content_type.empty()) {
    if (out.size() > 1) out += ',';
    out += "\"datacontenttype\":";
    append_json_string(out, content_type);
  }
  if (m->payload) {
    out += ",\"data\":";
    if (json_text::is_json_value(value, 128)) out += value;
    else append_json_string(out, value);  // not JSON: kept, as a string
  }
  r.event_json = out + "}";
  return r;
}

}  // namespace

Status read_tenant_topic(const TopicReadOptions& o, const std::function<bool(const TopicRecord&)>& each,
                         const std::atomic<bool>* stop) {
  auto made = make_conf({{"bootstrap.servers", o.brokers},
                          {"isolation.level", "read_committed"},
                          {"log_level", "4"},
                          // Partitions are assigned, not subscribed: the group only names the
                          // client, and nothing is ever committed for it.
                          {"group.id", "agentos-tail"},
                          {"enable.auto.commit", "false"},
                          {"enable.auto.offset.store", "false"}},
                         o.kafka_config);
  if (!made.ok()) return made.status();
  rd_kafka_conf_t* conf = *made;
  char e[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Status(Code::kUnavailable, std::string("kafka consumer: ") + e);
  }
  Status s;
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 0, t, &md, to_ms(o.request_timeout));
  rd_kafka_topic_destroy(t);
  int partitions = 0;
  if (merr) {
    s = Status(Code::kUnavailable, "metadata of " + o.topic + ": " + rd_kafka_err2str(merr));
  } else {
    if (md->topic_cnt == 1 && md->topics[0].err)
      s = Status(Code::kNotFound, o.topic + ": " + rd_kafka_err2str(md->topics[0].err));
    else if (md->topic_cnt == 1)
      partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  if (s.is_ok()) {
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(l, o.topic.c_str(), p)->offset =
          o.from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    if (rd_kafka_resp_err_t a = rd_kafka_assign(rk, l))
      s = Status(Code::kUnavailable, "assign " + o.topic + ": " + rd_kafka_err2str(a));
    rd_kafka_topic_partition_list_destroy(l);
  }
  while (s.is_ok() && !(stop && stop->load())) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    bool more = true;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      more = each(to_event(m));
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      s = Status(Code::kUnavailable, "reading " + o.topic + ": " + rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
    if (!more) break;
  }
  rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);  // assigned, nothing committed
  return s;
}

Result<std::vector<std::pair<std::string, std::string>>> read_kafka_properties(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::invalid("kafka_config", "cannot read " + path);
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    auto trim = [](std::string_view v) {
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
      return std::string(v);
    };
    const std::string l = trim(line);
    if (l.empty() || l[0] == '#') continue;
    const size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::invalid("kafka_config", path + ":" + std::to_string(n) + ": expected name=value");
    out.emplace_back(trim(std::string_view(l).substr(0, eq)), trim(std::string_view(l).substr(eq + 1)));
  }
  return out;
}

Result<std::unique_ptr<TenantTopics>> open_tenant_topics(Log& log, TenantTopicsOptions opts) {
  if (opts.brokers.empty()) return Status::invalid("brokers", "required");
  if (std::string why = topic_template_problem(opts.topic_template); !why.empty())
    return Status::invalid("topic_template", why);
  if (opts.progress_topic.empty() || !std::all_of(opts.progress_topic.begin(), opts.progress_topic.end(), topic_char) ||
      opts.progress_topic.size() > 249)
    return Status::invalid("progress_topic", "a topic name: 1-249 characters of [A-Za-z0-9._-]");
  if (opts.partitions < 1 || opts.partitions > 10000) return Status::invalid("partitions", "must be 1..10000");
  if (opts.replication_factor < 1) return Status::invalid("replication_factor", "must be at least 1");
  if (opts.max_batch_records < 1 || opts.max_batch_records > 100000)
    return Status::invalid("max_batch_records", "must be 1..100000");
  return std::unique_ptr<TenantTopics>(new KafkaTenantTopics(log, std::move(opts)));
}

}  // namespace agentos
