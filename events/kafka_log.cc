// The Kafka backend of the log contract (events/log.h), on librdkafka's C API.
//
// Records. One Kafka record per event: key = tenant id, value = the event's verified
// AgentOS FlatBuffer envelope, partition = partition_of(tenant) computed here with our
// murmur2 (events/partitioner.h) and passed explicitly, so placement never depends on
// the client's partitioner (which is still set to murmur2_random so that other tools
// producing with our key agree). Headers follow the CloudEvents Kafka protocol binding
// in BINARY content mode: ce_specversion, ce_id, ce_source, ce_type, ce_time (RFC 3339,
// microseconds), ce_subject (if any), ce_tenantid, ce_traceparent (if any), and
// `content-type: application/vnd.agentos.event+flatbuffers`. Deliberate deviation: the
// binding puts the event's `data` in the value; we put the whole verified envelope
// there, because the envelope is what the log stores and replays (actor, correlation,
// extensions, ...), and a consumer can read the ce_* headers without parsing it.
// `agentos_chain` = be64(seq) chain(32): the record's link in its partition's hash chain
// (events/audit_chain.h; seq counts the partition's data records, offsets have gaps). The
// committer extends the chain as it produces and keeps it only when the transaction
// commits; after any failure it learns the chain again from the partition's last record
// (read_committed) before the next transaction, so an unknown commit outcome cannot fork it.
//
// Appends. A transactional, idempotent producer (acks=all). A committer thread takes
// every pending batch (group commit, capped by kMaxGroupRecords / kMaxGroupBytes),
// produces them in ONE transaction, flushes, commits, waits until the records are
// readable (the last stable offset is past them), then fires the callbacks with the
// offsets from the delivery reports. Any failure aborts the whole transaction and fails
// every batch of the group (kUnavailable; kTooLarge for a broker size rejection), so a
// batch is all-or-nothing for read_committed readers. A fatal producer error (fenced,
// unrecoverable idempotence state) fails every later append with kUnavailable; the
// status message says "fatal"; reopen the log to recover.
// Caveat (the README's "Kafka caveat"): if commit's outcome cannot be learned (the
// coordinator unreachable until the deadline, or a fatal error during commit), the batch
// is reported failed although the commit may have happened; readers then see it. The
// group is sized so that this is rare; the gateway's (source, id) de-duplication covers it.
//
// Reads. A consumer handle with isolation.level=read_committed, legacy per-partition
// queues (rd_kafka_consume_start), left running after a read so the next read that
// continues where the last stopped reuses the prefetched queue; any other `from` seeks
// (stop + start). "End" is the last stable offset (ListOffsets with read_committed):
// every offset below it is decided. Kafka offsets have gaps (transaction markers, and
// aborted records that read_committed skips), so end_offset() is a lower bound for the
// next record's offset, not its exact value. To keep read and wait_for consistent across
// such gaps, each partition reader remembers a range known to hold no readable record:
// read() returns empty for a `from` in it without fetching, and wait_for() waits for the
// end to pass that range, so a tail loop (read; if empty wait_for(from)) never spins on
// a marker. A read below the partition's log start (records deleted by retention or
// DeleteRecords) is kNotFound (auto.offset.reset=error: the reader never jumps to the
// end or the start by itself); an out-of-range answer for an offset the partition still
// holds (a lagging leader) is kUnavailable, retried by the caller.
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "events/audit_chain.h"
#include "events/codec.h"
#include "events/key_codec.h"
#include "events/logging.h"
#include "events/kafka_log_internal.h"
#include "events/partitioner.h"

namespace agentos {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often wait_for and the listener poller ask the brokers for new ends when no local
// commit woke them. Bounded polling inside the backend, not a test sleep.
constexpr milliseconds kEndPollInterval{5};
// Group commit caps: one transaction carries at most this much.
constexpr size_t kMaxGroupRecords = 8192;
constexpr size_t kMaxGroupBytes = 16 << 20;
// Backpressure: appends beyond this many queued bytes get kUnavailable.
constexpr size_t kMaxPendingBytes = 256 << 20;
// Kafka's default message.max.bytes, minus room for key and headers.
constexpr size_t kMaxValueBytes = 1000000 - 4096;
// Messages taken from a partition queue per consume call.
constexpr size_t kConsumeBatch = 512;
constexpr char kContentType[] = "application/vnd.agentos.event+flatbuffers";
// The record's link in its partition's hash chain: be64(seq) chain(32) (events/audit_chain.h).
constexpr char kChainHeader[] = "agentos_chain";

// The backend's messages go to the structured log (events/logging.h) as warnings.
void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_line(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  agentos::log_line(LogLevel::kWarn, buf, {{"component", "events.kafka"}});
}

int to_ms(Clock::duration d) {
  auto ms = std::chrono::duration_cast<milliseconds>(d).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, INT32_MAX));
}

Status unavailable(std::string what) { return Status(Code::kUnavailable, "kafka: " + what); }

// Transactional ids in use by logs of this process (see default_transactional_id).
std::mutex g_txn_ids_mu;
std::set<std::string> g_txn_ids;

bool set_conf(rd_kafka_conf_t* conf, const std::string& k, const std::string& v,
              std::string* err) {
  char e[512];
  if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), e, sizeof(e)) != RD_KAFKA_CONF_OK) {
    *err = k + "=" + v + ": " + e;
    return false;
  }
  return true;
}

// Per message of a transaction: filled by the delivery report callback.
struct MsgSlot {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
  int64_t offset = -1;
};

struct Pending {
  AppendBatch batch;
  AppendCallback done;
  Partition partition;
  size_t bytes = 0;
  Status rejected;  // set: fail without producing (values cleared)
};

// One partition's reader: the position of its consumer queue and what it knows.
struct PartitionReader {
  std::mutex mu;
  bool started = false;
  // Offset of the next message the queue can deliver (after the last message or EOF
  // taken from it).
  int64_t pos = 0;
  // No readable record lies in [gap_from, next()): read there continues at next().
  int64_t gap_from = 0;
  // Records taken from the queue but not returned yet (a read hit its byte cap).
  std::deque<StoredRecord> stash;
  int64_t next() const { return stash.empty() ? pos : stash.front().pos.offset.value(); }
};

class KafkaLog final : public Log {
 public:
  KafkaLog(KafkaLogOptions opts, std::string txn_id)
      : opts_(std::move(opts)), clock_(opts_.clock ? *opts_.clock : system_clock()), txn_id_(std::move(txn_id)) {}
  ~KafkaLog() override;

  Status open(const KafkaTuning& tuning);

  int32_t partition_count() const override { return partitions_; }
  void append(AppendBatch batch, AppendCallback done) override;
  Result<std::vector<StoredRecord>> read(Partition partition, Offset from,
                                         const ReadOptions& opts) override;
  Result<std::vector<StoredRecord>> read_tenant(const TenantId& tenant, Offset from,
                                                const ReadOptions& opts) override;
  Result<Offset> end_offset(Partition partition) override;
  bool wait_for(Partition partition, Offset after, Clock::time_point deadline) override;
  void add_listener(AppendListener listener) override;
  const char* backend() const override { return "kafka"; }

  KafkaLogStats stats() const {
    KafkaLogStats s;
    s.transactions_committed = txn_committed_.load();
    s.transactions_aborted = txn_aborted_.load();
    s.batches_committed = batches_committed_.load();
    s.reader_seeks = reader_seeks_.load();
    s.transactional_id = txn_id_;
    {
      std::lock_guard l(mu_);
      if (!fatal_.is_ok()) s.fatal_error = fatal_.message();
    }
    return s;
  }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);

  Status open_producer(const KafkaTuning& tuning);
  Status open_consumer(const KafkaTuning& tuning);
  Status ensure_topic();

  // Committer thread.
  void committer_loop();
  void run_group(std::vector<Pending>& group);
  // `never_sent` is set when the transaction failed with every message purged from the
  // local queue before any request carried it (collateral of an epoch bump).
  Status produce_and_commit(std::vector<Pending>& group, std::vector<MsgSlot>& slots,
                            bool* never_sent);
  Status commit(Clock::time_point deadline);
  // Learns a partition's chain end (next seq, last link) from the log: the
  // `agentos_chain` header of its last record (events/audit_chain.h).
  Result<std::pair<int64_t, audit::Hash>> learn_chain(int32_t p);
  // Aborts the open transaction; on failure leaves needs_abort_ set for the next group.
  void abort_txn(const char* why);
  Status txn_error(const char* what, rd_kafka_error_t* err);  // consumes err
  void set_fatal(const std::string& why);
  Status fatal_status();
  void wait_visible(const std::vector<std::pair<int32_t, int64_t>>& needed);

  // Ends (last stable offsets).
  Result<std::vector<int64_t>> query_ends(const std::vector<int32_t>& parts, int timeout_ms);
  void raise_known_end(int32_t p, int64_t end);
  int64_t known_end(int32_t p);

  void poller_loop();
  Status check_partition(Partition p) const;
  // The broker answered OFFSET_OUT_OF_RANGE for `offset` (`reported`: its message).
  // kNotFound when `offset` is below the partition's log start (the records were
  // deleted); kUnavailable when it is not (a leader that has not caught up, a fault) or
  // the log start cannot be learned: a retry decides.
  Status out_of_range(int32_t p, int64_t offset, const std::string& reported);

  const KafkaLogOptions opts_;
  const agentos::Clock& clock_;
  const std::string txn_id_;
  int32_t partitions_ = 0;
  std::vector<int64_t> last_ms_;  // committer thread: the last timestamp given, per partition
  // Committer thread: each partition's chain end as committed (the next record's seq and
  // the last link). Stale until learned from the log: at open, and for the partitions of a
  // failed transaction, whose outcome may be unknown.
  std::vector<int64_t> chain_seq_;
  std::vector<audit::Hash> chain_;
  std::vector<char> chain_stale_;

  rd_kafka_t* producer_ = nullptr;
  rd_kafka_topic_t* producer_topic_ = nullptr;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_topic_t* consumer_topic_ = nullptr;

  // Committer state.
  mutable std::mutex mu_;  // mutable: stats() reads fatal_
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  Status fatal_;               // set once; every later append fails with it
  bool needs_abort_ = false;   // committer thread only
  std::thread committer_;
  // Delivery-report slots of transactions whose messages could not be accounted for;
  // kept until the producer is destroyed so a late report never writes freed memory.
  std::vector<std::unique_ptr<std::vector<MsgSlot>>> orphan_slots_;

  // Reads.
  std::vector<std::unique_ptr<PartitionReader>> readers_;
  std::mutex end_mu_;
  std::condition_variable end_cv_;
  std::vector<int64_t> known_end_;  // monotonic; guarded by end_mu_
  uint64_t end_epoch_ = 0;          // bumped on every raise; guarded by end_mu_

  // Listeners.
  std::mutex listeners_mu_;
  std::vector<AppendListener> listeners_;
  std::thread poller_;
  bool poller_stop_ = false;  // guarded by end_mu_

  std::atomic<uint64_t> txn_committed_{0}, txn_aborted_{0}, batches_committed_{0},
      reader_seeks_{0};
};

// ---- open / close ----------------------------------------------------------------

Status KafkaLog::open(const KafkaTuning& tuning) {
  if (opts_.brokers.empty()) return Status::invalid("brokers", "no bootstrap brokers given");
  if (opts_.topic.empty()) return Status::invalid("topic", "empty topic name");
  if (Status s = open_producer(tuning); !s.is_ok()) return s;
  if (Status s = open_consumer(tuning); !s.is_ok()) return s;
  if (Status s = ensure_topic(); !s.is_ok()) return s;
  // Topic handles only now: a handle makes librdkafka ask metadata for its topic, and
  // brokers with auto.create.topics.enable (the mock always) would create it.
  producer_topic_ = rd_kafka_topic_new(producer_, opts_.topic.c_str(), nullptr);
  char err_buf[512];
  rd_kafka_topic_conf_t* tconf = rd_kafka_topic_conf_new();
  rd_kafka_topic_conf_set(tconf, "auto.commit.enable", "false", err_buf, sizeof(err_buf));
  // A read below the log start (records deleted) must fail, not move: librdkafka's
  // default (largest) would jump to the end and the read would skip them unnoticed.
  // With "error" the consume returns __AUTO_OFFSET_RESET (see out_of_range).
  rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "error", err_buf, sizeof(err_buf));
  consumer_topic_ = rd_kafka_topic_new(consumer_, opts_.topic.c_str(), tconf);

  rd_kafka_error_t* err = rd_kafka_init_transactions(producer_, to_ms(opts_.request_timeout));
  if (err) {
    Status s = unavailable(std::string("init_transactions(") + txn_id_ +
                           "): " + rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
    return s;
  }
  readers_.reserve(partitions_);
  for (int32_t i = 0; i < partitions_; ++i) readers_.push_back(std::make_unique<PartitionReader>());
  last_ms_.assign(static_cast<size_t>(partitions_), 0);
  chain_seq_.assign(static_cast<size_t>(partitions_), 0);
  chain_.assign(static_cast<size_t>(partitions_), audit::kChainGenesis);
  chain_stale_.assign(static_cast<size_t>(partitions_), 1);
  known_end_.assign(partitions_, 0);
  committer_ = std::thread([this] {
    set_thread_name("kafka-commit");
    committer_loop();
  });
  return Status::ok();
}

Status KafkaLog::open_producer(const KafkaTuning& tuning) {
  std::string e;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const int64_t timeout_ms = opts_.request_timeout.count();
  const std::vector<std::pair<std::string, std::string>> ours = {
      {"bootstrap.servers", opts_.brokers},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"partitioner", "murmur2_random"},
      {"transactional.id", txn_id_},
      // A message undelivered after request_timeout fails (and aborts its transaction)
      // instead of hanging the committer.
      {"message.timeout.ms", std::to_string(timeout_ms)},
      {"request.timeout.ms", std::to_string(std::min<int64_t>(timeout_ms, 30000))},
      // Must be >= message.timeout.ms; bounds how long a crashed engine's open
      // transaction can hold back read_committed readers.
      {"transaction.timeout.ms", std::to_string(std::max<int64_t>(2 * timeout_ms, 1000))},
      // Metadata must never create the topic behind our back (ensure_topic decides).
      {"allow.auto.create.topics", "false"},
      {"log.connection.close", "false"},
      // After a broker outage, reconnect within a second rather than librdkafka's 10 s
      // default: appends are failing meanwhile.
      {"reconnect.backoff.max.ms", "1000"},
      // Small requests (a transaction's EndTxn, a few records) must not wait for
      // Nagle + delayed ACK (~40 ms per round trip).
      {"socket.nagle.disable", "true"},
  };
  for (const auto& [k, v] : ours)
    if (!set_conf(conf, k, v, &e)) return rd_kafka_conf_destroy(conf), Status(Code::kInternal, e);
  for (const auto& [k, v] : tuning.producer_config)
    if (!set_conf(conf, k, v, &e)) return rd_kafka_conf_destroy(conf), Status::invalid("producer_config", e);
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaLog::on_delivery);
  rd_kafka_conf_set_error_cb(conf, &KafkaLog::on_error);
  rd_kafka_conf_set_opaque(conf, this);
  char err[512];
  producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!producer_) return rd_kafka_conf_destroy(conf), Status(Code::kInternal, std::string("kafka producer: ") + err);
  return Status::ok();
}

Status KafkaLog::open_consumer(const KafkaTuning& tuning) {
  std::string e;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::vector<std::pair<std::string, std::string>> ours = {
      {"bootstrap.servers", opts_.brokers},
      {"isolation.level", "read_committed"},
      // EOF events tell a read that it reached the end it measured, even when the last
      // offsets are transaction markers that produce no message.
      {"enable.partition.eof", "true"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"allow.auto.create.topics", "false"},
      // Tail reads: how long an idle fetch waits at the broker, and prefetch bound.
      {"fetch.wait.max.ms", "10"},
      {"queued.max.messages.kbytes", "4096"},
      {"log.connection.close", "false"},
      {"reconnect.backoff.max.ms", "1000"},
      {"socket.nagle.disable", "true"},
  };
  for (const auto& [k, v] : ours)
    if (!set_conf(conf, k, v, &e)) return rd_kafka_conf_destroy(conf), Status(Code::kInternal, e);
  for (const auto& [k, v] : tuning.consumer_config)
    if (!set_conf(conf, k, v, &e)) return rd_kafka_conf_destroy(conf), Status::invalid("consumer_config", e);
  char err[512];
  consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!consumer_) return rd_kafka_conf_destroy(conf), Status(Code::kInternal, std::string("kafka consumer: ") + err);
  return Status::ok();
}

// Reads the topic's partition count from metadata; creates the topic (AdminAPI) when
// allowed and missing. An existing topic is used with its actual partition count, which
// may differ from opts_.partitions: partition_of() uses the actual count so that every
// client agrees on placement (logged when it differs).
Status KafkaLog::ensure_topic() {
  const auto deadline = Clock::now() + opts_.request_timeout;
  bool created = false;
  while (true) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(producer_, 1, nullptr, &md, std::max(1, to_ms(deadline - Clock::now())));
    if (err)
      return unavailable("cannot reach brokers " + opts_.brokers + " within " +
                         std::to_string(opts_.request_timeout.count()) + " ms: " + rd_kafka_err2str(err));
    int32_t count = -1;
    for (int i = 0; i < md->topic_cnt; ++i) {
      const auto& t = md->topics[i];
      if (opts_.topic == t.topic && t.err == RD_KAFKA_RESP_ERR_NO_ERROR) count = t.partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    if (count > 0) {
      partitions_ = count;
      if (count != opts_.partitions)
        log_line("topic %s exists with %d partitions (configured %d); using %d",
                 opts_.topic.c_str(), count, opts_.partitions, count);
      return Status::ok();
    }
    if (!opts_.create_topic)
      return Status(Code::kNotFound, "kafka: topic " + opts_.topic + " does not exist and create_topic is off");
    if (Clock::now() >= deadline)
      return unavailable("topic " + opts_.topic + " not visible in metadata after creation");
    if (created) continue;  // created: wait for metadata to show it

    char errstr[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(opts_.topic.c_str(), opts_.partitions,
                                                    opts_.replication_factor, errstr, sizeof(errstr));
    if (!nt) return Status::invalid("partitions", errstr);
    rd_kafka_queue_t* q = rd_kafka_queue_new(producer_);
    rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(producer_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(ao, to_ms(deadline - Clock::now()), errstr, sizeof(errstr));
    rd_kafka_CreateTopics(producer_, &nt, 1, ao, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, std::max(1, to_ms(deadline - Clock::now())) + 1000);
    Status s;
    if (!ev) {
      s = unavailable("CreateTopics " + opts_.topic + " timed out");
    } else if (rd_kafka_event_error(ev)) {
      s = unavailable("CreateTopics " + opts_.topic + ": " + rd_kafka_event_error_string(ev));
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** res =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      for (size_t i = 0; i < n; ++i) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
        if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char* msg = rd_kafka_topic_result_error_string(res[i]);
          s = unavailable("CreateTopics " + opts_.topic + ": " + (msg ? msg : rd_kafka_err2str(te)));
        }
      }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    if (!s.is_ok()) return s;
    log_line("created topic %s with %d partitions, replication factor %d", opts_.topic.c_str(),
             opts_.partitions, opts_.replication_factor);
    created = true;
  }
}

KafkaLog::~KafkaLog() {
  {
    std::lock_guard l(end_mu_);
    poller_stop_ = true;
  }
  end_cv_.notify_all();
  if (poller_.joinable()) poller_.join();  // no listener runs after this
  {
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  // The committer finishes the transaction in flight, then fails what is still queued.
  if (committer_.joinable()) committer_.join();
  if (consumer_) {
    for (size_t p = 0; p < readers_.size(); ++p)
      if (readers_[p]->started) rd_kafka_consume_stop(consumer_topic_, static_cast<int32_t>(p));
    if (consumer_topic_) rd_kafka_topic_destroy(consumer_topic_);
    rd_kafka_destroy(consumer_);
  }
  if (producer_) {
    if (producer_topic_) rd_kafka_topic_destroy(producer_topic_);
    rd_kafka_destroy(producer_);
  }
  orphan_slots_.clear();
  std::lock_guard l(g_txn_ids_mu);
  g_txn_ids.erase(txn_id_);
}

// ---- appends -----------------------------------------------------------------------

void KafkaLog::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* slot = static_cast<MsgSlot*>(m->_private);
  if (!slot) return;
  slot->err = m->err;
  slot->offset = m->offset;
}

void KafkaLog::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<KafkaLog*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
    self->set_fatal(std::string(rd_kafka_err2name(orig)) + ": " + buf);
    return;
  }
  // Transient (broker down, connection refused, ...): librdkafka retries by itself; a
  // transaction that cannot finish fails by its own deadline.
  if (err != RD_KAFKA_RESP_ERR__TRANSPORT && err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    log_line("producer: %s: %s", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
}

void KafkaLog::set_fatal(const std::string& why) {
  std::lock_guard l(mu_);
  if (!fatal_.is_ok()) return;
  fatal_ = unavailable("fatal producer error (transactional.id " + txn_id_ + "), every later "
                       "append fails until the log is reopened: " + why);
  log_line("%s", fatal_.message().c_str());
}

Status KafkaLog::fatal_status() {
  std::lock_guard l(mu_);
  return fatal_;
}

void KafkaLog::append(AppendBatch batch, AppendCallback done) {
  Pending pd;
  pd.partition = partition_of(batch.tenant);
  for (const auto& v : batch.values) pd.bytes += v.size();
  // Check what the broker would reject before it joins a transaction, so one bad batch
  // does not abort its group's innocent neighbours.
  if (!TenantId::is_valid(batch.tenant.str())) {
    pd.rejected = Status::invalid("tenant", "invalid tenant id");
  } else {
    for (size_t i = 0; i < batch.values.size() && pd.rejected.is_ok(); ++i) {
      const std::string& v = batch.values[i];
      if (v.size() > kMaxValueBytes) {
        pd.rejected = Status(Code::kTooLarge, "kafka: event of " + std::to_string(v.size()) +
                                                  " bytes over the record cap of " +
                                                  std::to_string(kMaxValueBytes));
      } else if (Status s = verify_event(v); !s.is_ok()) {
        // read_header on unverified bytes is undefined; the contract says verified.
        pd.rejected = Status::invalid("values[" + std::to_string(i) + "]", s.message());
      } else if (read_header(v).tenant != batch.tenant.str()) {
        pd.rejected = Status::invalid("values[" + std::to_string(i) + "].tenantid",
                                      "event tenant differs from the batch tenant");
      }
    }
  }
  pd.batch = std::move(batch);
  pd.done = std::move(done);
  {
    std::lock_guard l(mu_);
    if (pd.rejected.is_ok()) {
      if (stopping_) pd.rejected = unavailable("log is closing");
      else if (!fatal_.is_ok()) pd.rejected = fatal_;
      else if (queued_bytes_ + pd.bytes > kMaxPendingBytes)
        pd.rejected = unavailable("append queue full (" + std::to_string(queued_bytes_) + " bytes pending)");
    }
    if (!pd.rejected.is_ok()) {
      // Failed appends still answer on the committer thread: a callback never runs on
      // the caller's stack, where it could deadlock on the caller's locks.
      pd.batch.values.clear();
      pd.bytes = 0;
    }
    queued_bytes_ += pd.bytes;
    queue_.push_back(std::move(pd));
  }
  cv_.notify_one();
}

void KafkaLog::committer_loop() {
  std::vector<Pending> group;
  while (true) {
    {
      std::unique_lock l(mu_);
      // Idle: wake now and then to serve producer events (errors, fatal state).
      while (queue_.empty() && !stopping_) {
        l.unlock();
        rd_kafka_poll(producer_, 0);
        l.lock();
        if (queue_.empty() && !stopping_) cv_.wait_for(l, milliseconds(100));
      }
      if (queue_.empty() && stopping_) return;
      size_t records = 0, bytes = 0;
      while (!queue_.empty()) {
        Pending& f = queue_.front();
        if (!group.empty() && f.rejected.is_ok() &&
            (records + f.batch.values.size() > kMaxGroupRecords || bytes + f.bytes > kMaxGroupBytes))
          break;
        records += f.batch.values.size();
        bytes += f.bytes;
        queued_bytes_ -= f.bytes;
        group.push_back(std::move(f));
        queue_.pop_front();
      }
      if (stopping_) {
        // Destruction: what has not started is failed, not produced.
        for (auto& p : group)
          if (p.rejected.is_ok()) p.rejected = unavailable("log closed before the append ran");
      }
    }
    run_group(group);
    group.clear();
  }
}

void KafkaLog::run_group(std::vector<Pending>& group) {
  std::vector<Pending*> live;
  size_t records = 0;
  for (auto& p : group) {
    if (!p.rejected.is_ok()) {
      p.done(p.rejected);
    } else {
      live.push_back(&p);
      records += p.batch.values.size();
    }
  }
  if (live.empty()) return;

  std::vector<Pending> txn;
  txn.reserve(live.size());
  for (Pending* p : live) txn.push_back(std::move(*p));
  auto slots = std::make_unique<std::vector<MsgSlot>>(records);
  Status st;
  // A group gets one more transaction when the failed one never sent any of its
  // messages: librdkafka purges the queue when a previous failure forces an epoch bump,
  // and that group is innocent. Nothing of it reached a broker, so a retry cannot
  // duplicate. Any other failure is reported (see the header comment).
  for (int attempt = 0; records > 0; ++attempt) {
    bool never_sent = false;
    st = produce_and_commit(txn, *slots, &never_sent);
    if (st.is_ok() || !never_sent || attempt > 0) break;
    if (rd_kafka_outq_len(producer_) > 0) orphan_slots_.push_back(std::move(slots));
    slots = std::make_unique<std::vector<MsgSlot>>(records);
  }
  if (!st.is_ok()) {
    // Delivery reports still outstanding would write into `slots`: keep them alive.
    if (rd_kafka_outq_len(producer_) > 0) orphan_slots_.push_back(std::move(slots));
    for (auto& p : txn) p.done(st);
    return;
  }
  // Positions, and the end each touched partition must reach to be readable.
  std::vector<std::pair<int32_t, int64_t>> needed;
  std::vector<AppendResult> results(txn.size());
  size_t k = 0;
  for (size_t i = 0; i < txn.size(); ++i) {
    const int32_t p = txn[i].partition.value();
    for (size_t j = 0; j < txn[i].batch.values.size(); ++j, ++k) {
      const int64_t off = (*slots)[k].offset;
      results[i].positions.push_back(Position{txn[i].partition, Offset(off)});
      auto it = std::find_if(needed.begin(), needed.end(), [p](auto& e) { return e.first == p; });
      if (it == needed.end()) needed.emplace_back(p, off + 1);
      else it->second = std::max(it->second, off + 1);
    }
  }
  if (!needed.empty()) wait_visible(needed);
  batches_committed_ += txn.size();
  for (size_t i = 0; i < txn.size(); ++i) txn[i].done(std::move(results[i]));
}

Status KafkaLog::produce_and_commit(std::vector<Pending>& txn, std::vector<MsgSlot>& slots,
                                    bool* never_sent) {
  if (Status f = fatal_status(); !f.is_ok()) return f;
  const auto deadline = Clock::now() + opts_.request_timeout;
  if (needs_abort_) {
    abort_txn("retrying the abort of an earlier failed transaction");
    if (needs_abort_) return unavailable("previous transaction could not be aborted yet (brokers unreachable?)");
  }
  for (const auto& pd : txn) {
    const size_t pi = static_cast<size_t>(pd.partition.value());
    if (!chain_stale_[pi]) continue;
    auto end = learn_chain(pd.partition.value());
    if (!end.ok()) return std::move(end).take_status();
    chain_seq_[pi] = end->first;
    chain_[pi] = end->second;
    chain_stale_[pi] = false;
  }
  // The chain as this transaction extends it; kept only if it commits.
  std::vector<int64_t> seq = chain_seq_;
  std::vector<audit::Hash> chain = chain_;
  for (const auto& pd : txn) chain_stale_[static_cast<size_t>(pd.partition.value())] = true;
  if (rd_kafka_error_t* err = rd_kafka_begin_transaction(producer_))
    return txn_error("begin_transaction", err);

  Status failed;
  size_t k = 0;
  for (auto& pd : txn) {
    const std::string& tenant = pd.batch.tenant.str();
    for (const std::string& v : pd.batch.values) {
      const EventHeader h = read_header(v);
      const std::string type(h.type_name);
      // Engine time: the record timestamp (CreateTime, ms), never going back within a
      // partition as far as this producer knows.
      int64_t& last_ms = last_ms_[static_cast<size_t>(pd.partition.value())];
      last_ms = std::max(last_ms, (opts_.stamp_event_time ? h.time_us : clock_.now_us()) / 1000);
      const std::string time = format_rfc3339_us(h.time_us);
      const size_t pi = static_cast<size_t>(pd.partition.value());
      chain[pi] = audit::chain_next(chain[pi], audit::record_leaf(pd.partition, seq[pi], last_ms * 1000, tenant, v));
      std::string link;
      keys::put_be64(link, static_cast<uint64_t>(seq[pi]++));
      link.append(reinterpret_cast<const char*>(chain[pi].data()), chain[pi].size());
      rd_kafka_headers_t* hdrs = rd_kafka_headers_new(10);
      rd_kafka_header_add(hdrs, "ce_specversion", -1, "1.0", 3);
      rd_kafka_header_add(hdrs, "ce_id", -1, h.id.data(), h.id.size());
      rd_kafka_header_add(hdrs, "ce_source", -1, h.source.data(), h.source.size());
      rd_kafka_header_add(hdrs, "ce_type", -1, type.data(), type.size());
      rd_kafka_header_add(hdrs, "ce_time", -1, time.data(), time.size());
      if (!h.subject.empty())
        rd_kafka_header_add(hdrs, "ce_subject", -1, h.subject.data(), h.subject.size());
      rd_kafka_header_add(hdrs, "ce_tenantid", -1, tenant.data(), tenant.size());
      if (!h.traceparent.empty())
        rd_kafka_header_add(hdrs, "ce_traceparent", -1, h.traceparent.data(), h.traceparent.size());
      rd_kafka_header_add(hdrs, "content-type", -1, kContentType, sizeof(kContentType) - 1);
      rd_kafka_header_add(hdrs, kChainHeader, -1, link.data(), link.size());
      rd_kafka_resp_err_t e;
      while (true) {
        // F_COPY: an aborted transaction may still hold messages after we give up on
        // it; the batch's strings must not be referenced then.
        e = rd_kafka_producev(producer_, RD_KAFKA_V_RKT(producer_topic_),
                              RD_KAFKA_V_PARTITION(pd.partition.value()),
                              RD_KAFKA_V_KEY(tenant.data(), tenant.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(last_ms),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&slots[k]),
                              RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || Clock::now() >= deadline) break;
        rd_kafka_poll(producer_, 10);  // serve delivery reports to make room
      }
      if (e) {
        rd_kafka_headers_destroy(hdrs);  // not taken over on failure
        failed = Status(e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? Code::kTooLarge : Code::kUnavailable,
                        std::string("kafka: produce to ") + opts_.topic + "[" +
                            std::to_string(pd.partition.value()) + "]: " + rd_kafka_err2str(e) +
                            "; transaction aborted, nothing of the batch is committed");
        break;
      }
      ++k;
    }
    if (!failed.is_ok()) break;
  }
  if (failed.is_ok()) {
    // Delivery reports fill the slots (served on this thread by flush).
    rd_kafka_flush(producer_, std::max(1, to_ms(deadline - Clock::now())) + to_ms(opts_.request_timeout));
    *never_sent = k > 0;
    for (size_t i = 0; i < k; ++i)
      if (slots[i].err != RD_KAFKA_RESP_ERR__PURGE_QUEUE) *never_sent = false;
    for (size_t i = 0; i < k && failed.is_ok(); ++i) {
      const rd_kafka_resp_err_t e = slots[i].err;
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      const bool too_large = e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                             e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
      failed = Status(too_large ? Code::kTooLarge : Code::kUnavailable,
                      std::string("kafka: delivery to ") + opts_.topic + " failed: " +
                          rd_kafka_err2name(e) + " (" + rd_kafka_err2str(e) +
                          "); transaction aborted, nothing of the batch is committed");
    }
  }
  if (!failed.is_ok()) {
    abort_txn(failed.message().c_str());
    return failed;
  }
  Status committed = commit(deadline + opts_.request_timeout);
  if (committed.is_ok()) {
    chain_seq_ = std::move(seq);
    chain_ = std::move(chain);
    for (const auto& pd : txn) chain_stale_[static_cast<size_t>(pd.partition.value())] = false;
  }
  return committed;
}

Result<std::pair<int64_t, audit::Hash>> KafkaLog::learn_chain(int32_t p) {
  const Partition part(p);
  int64_t lo = -1, hi = -1;
  if (rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(consumer_, opts_.topic.c_str(), p, &lo, &hi,
                                                               to_ms(opts_.request_timeout)))
    return unavailable("learning the chain of " + opts_.topic + "[" + std::to_string(p) +
                       "]: " + rd_kafka_err2str(e));
  auto ends = query_ends({p}, to_ms(opts_.request_timeout));
  if (!ends.ok()) return std::move(ends).take_status();
  const int64_t end = (*ends)[0];
  // Windows back from the end until one holds a data record (markers take offsets too).
  std::optional<StoredRecord> last;
  for (int64_t window = 64, upper = end; !last && upper > lo; window *= 2) {
    const int64_t from = std::max(lo, upper - window);
    for (int64_t at = from; at < upper;) {
      auto page = read(part, Offset(at), ReadOptions{});
      if (!page.ok()) return std::move(page).take_status();
      if (page->empty()) break;
      for (auto& r : *page)
        if (r.pos.offset.value() < upper) last = std::move(r);
      at = page->back().pos.offset.value() + 1;
    }
    upper = from;
  }
  if (!last) return std::pair<int64_t, audit::Hash>{0, audit::kChainGenesis};
  if (last->seq >= 0) return std::pair<int64_t, audit::Hash>{last->seq + 1, last->chain};
  // The last record predates the chain (an older topic): chain the partition from its
  // first retained record, once, as `agentos audit verify` does.
  int64_t seq = 0;
  audit::Hash link = audit::kChainGenesis;
  for (int64_t at = lo; at < end;) {
    auto page = read(part, Offset(at), ReadOptions{});
    if (!page.ok()) return std::move(page).take_status();
    if (page->empty()) break;
    for (const auto& r : *page) {
      if (r.pos.offset.value() >= end) break;
      link = audit::chain_next(link, audit::record_leaf(part, seq++, r.append_us, r.tenant.str(), r.value));
    }
    at = page->back().pos.offset.value() + 1;
  }
  return std::pair<int64_t, audit::Hash>{seq, link};
}

Status KafkaLog::commit(Clock::time_point deadline) {
  while (true) {
    rd_kafka_error_t* err =
        rd_kafka_commit_transaction(producer_, std::max(1, to_ms(deadline - Clock::now())));
    if (!err) {
      ++txn_committed_;
      return Status::ok();
    }
    if (rd_kafka_error_is_retriable(err) && Clock::now() < deadline) {
      rd_kafka_error_destroy(err);
      continue;  // same commit again: librdkafka resumes the one in progress
    }
    // Abortable, fatal, or out of time: txn_error aborts or goes fatal as required.
    return txn_error("commit_transaction", err);
  }
}

// Maps a transactional API error to a Status, aborting or going fatal as librdkafka
// demands. Consumes `err`.
Status KafkaLog::txn_error(const char* what, rd_kafka_error_t* err) {
  const std::string msg = std::string(what) + ": " + rd_kafka_error_name(err) + ": " +
                          rd_kafka_error_string(err);
  const bool fatal = rd_kafka_error_is_fatal(err);
  const bool abortable = rd_kafka_error_txn_requires_abort(err);
  const bool retriable = rd_kafka_error_is_retriable(err);
  rd_kafka_error_destroy(err);
  if (fatal) {
    set_fatal(msg);
    return fatal_status();
  }
  if (abortable) {
    abort_txn(msg.c_str());
    return unavailable(msg + "; transaction aborted, nothing of the batch is committed");
  }
  if (retriable) {
    // Ran out of time with the outcome unknown (commit may have reached the
    // coordinator). Try to abort; see the caveat in the header comment.
    abort_txn(msg.c_str());
    return unavailable(msg + "; outcome unknown, transaction abort attempted");
  }
  abort_txn(msg.c_str());
  return unavailable(msg);
}

void KafkaLog::abort_txn(const char* why) {
  ++txn_aborted_;
  const auto deadline = Clock::now() + opts_.request_timeout;
  while (true) {
    rd_kafka_error_t* err =
        rd_kafka_abort_transaction(producer_, std::max(1, to_ms(deadline - Clock::now())));
    if (!err) {
      needs_abort_ = false;
      return;
    }
    const bool retriable = rd_kafka_error_is_retriable(err);
    const bool fatal = rd_kafka_error_is_fatal(err);
    const rd_kafka_resp_err_t code = rd_kafka_error_code(err);
    const std::string msg = std::string(rd_kafka_error_name(err)) + ": " + rd_kafka_error_string(err);
    rd_kafka_error_destroy(err);
    if (code == RD_KAFKA_RESP_ERR__STATE) {
      // No transaction in progress (e.g. begin failed): nothing to abort.
      needs_abort_ = false;
      return;
    }
    if (fatal) {
      set_fatal("abort_transaction: " + msg);
      return;
    }
    if (retriable && Clock::now() < deadline) continue;
    needs_abort_ = true;
    log_line("abort_transaction failed (%s) after: %s; will retry before the next transaction",
             msg.c_str(), why);
    return;
  }
}

// Waits (bounded by request_timeout) until read_committed readers can see the
// committed records: with a real broker the transaction markers are written after
// EndTxn returns, so without this an append_sync followed by read could miss them.
void KafkaLog::wait_visible(const std::vector<std::pair<int32_t, int64_t>>& needed) {
  std::vector<int32_t> parts;
  for (auto& [p, end] : needed) parts.push_back(p);
  const auto deadline = Clock::now() + opts_.request_timeout;
  while (true) {
    auto ends = query_ends(parts, std::max(1, to_ms(deadline - Clock::now())));
    bool all = ends.ok();
    if (ends.ok()) {
      for (size_t i = 0; i < parts.size(); ++i) {
        raise_known_end(parts[i], (*ends)[i]);
        if ((*ends)[i] < needed[i].second) all = false;
      }
    }
    if (all) return;
    if (Clock::now() >= deadline) {
      log_line("committed records not yet visible to read_committed after %lld ms",
               static_cast<long long>(opts_.request_timeout.count()));
      for (auto& [p, end] : needed) raise_known_end(p, end);  // committed: they will be
      return;
    }
    std::unique_lock l(end_mu_);
    end_cv_.wait_for(l, kEndPollInterval);
  }
}

// ---- ends ------------------------------------------------------------------------

// Last stable offsets (the consumer handle is read_committed, so ListOffsets(latest)
// answers the LSO), one request per broker for all `parts`.
Result<std::vector<int64_t>> KafkaLog::query_ends(const std::vector<int32_t>& parts,
                                                  int timeout_ms) {
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(static_cast<int>(parts.size()));
  for (int32_t p : parts)
    rd_kafka_topic_partition_list_add(l, opts_.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_END;
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(consumer_, l, timeout_ms);
  std::vector<int64_t> out(parts.size(), -1);
  if (!err) {
    for (size_t i = 0; i < parts.size(); ++i) {
      const rd_kafka_topic_partition_t& tp = l->elems[i];
      if (tp.err) {
        err = tp.err;
        break;
      }
      out[i] = tp.offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (err) return unavailable(std::string("end offsets of ") + opts_.topic + ": " + rd_kafka_err2str(err));
  return out;
}

void KafkaLog::raise_known_end(int32_t p, int64_t end) {
  {
    std::lock_guard l(end_mu_);
    if (end <= known_end_[p]) return;
    known_end_[p] = end;
    ++end_epoch_;
  }
  end_cv_.notify_all();
}

int64_t KafkaLog::known_end(int32_t p) {
  std::lock_guard l(end_mu_);
  return known_end_[p];
}

Status KafkaLog::check_partition(Partition p) const {
  if (p.value() < 0 || p.value() >= partitions_)
    return Status::invalid("partition", "partition " + std::to_string(p.value()) + " out of [0, " +
                                            std::to_string(partitions_) + ")");
  return Status::ok();
}

Result<Offset> KafkaLog::end_offset(Partition partition) {
  if (Status s = check_partition(partition); !s.is_ok()) return s;
  auto ends = query_ends({partition.value()}, to_ms(opts_.request_timeout));
  if (!ends.ok()) return std::move(ends).take_status();
  raise_known_end(partition.value(), (*ends)[0]);
  return Offset(std::max((*ends)[0], known_end(partition.value())));
}

bool KafkaLog::wait_for(Partition partition, Offset after, Clock::time_point deadline) {
  if (!check_partition(partition).is_ok()) return false;
  const int32_t p = partition.value();
  int64_t target = after.value();
  {
    // Offsets the reader knows hold no readable record (markers) do not count.
    PartitionReader& r = *readers_[p];
    std::lock_guard l(r.mu);
    if (r.started && r.gap_from <= target && target < r.next()) target = r.next();
  }
  auto next_query = Clock::now();
  while (true) {
    if (known_end(p) > target) return true;
    const auto now = Clock::now();
    if (now >= next_query) {
      auto ends = query_ends({p}, std::max(1, to_ms(std::min(deadline - now, Clock::duration(opts_.request_timeout)))));
      if (ends.ok()) raise_known_end(p, (*ends)[0]);
      if (known_end(p) > target) return true;
      next_query = Clock::now() + kEndPollInterval;
    }
    if (Clock::now() >= deadline) return false;
    std::unique_lock l(end_mu_);
    if (known_end_[p] > target) return true;
    end_cv_.wait_until(l, std::min(deadline, next_query));
  }
}

// ---- reads -------------------------------------------------------------------------

Status KafkaLog::out_of_range(int32_t p, int64_t offset, const std::string& reported) {
  const std::string where = "kafka: read " + opts_.topic + "[" + std::to_string(p) + "] from offset " +
                            std::to_string(offset);
  int64_t lo = -1, hi = -1;
  const rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(consumer_, opts_.topic.c_str(), p, &lo, &hi,
                                                                 to_ms(opts_.request_timeout));
  if (e)
    return unavailable("read " + opts_.topic + "[" + std::to_string(p) + "] from offset " + std::to_string(offset) +
                       ": the broker reports it out of range (" + reported +
                       ") and the log start could not be learned (" + rd_kafka_err2str(e) + "); retry");
  if (offset < lo)
    return Status(Code::kNotFound, where + ": below the partition's log start " + std::to_string(lo) +
                                       " (records deleted by retention or DeleteRecords)");
  return unavailable("read " + opts_.topic + "[" + std::to_string(p) + "] from offset " + std::to_string(offset) +
                     ": the broker reports it out of range (" + reported + "), but the partition holds [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "); retry");
}

Result<std::vector<StoredRecord>> KafkaLog::read(Partition partition, Offset from_off,
                                                 const ReadOptions& opts) {
  if (Status s = check_partition(partition); !s.is_ok()) return s;
  if (from_off.value() < 0) return Status::invalid("from", "negative offset");
  const int32_t p = partition.value();
  const int64_t from = from_off.value();
  const size_t max_records = std::max<size_t>(1, opts.max_records);
  PartitionReader& r = *readers_[p];
  std::lock_guard l(r.mu);

  const bool continues = r.started && r.gap_from <= from && from <= r.next();
  const int64_t start = continues ? r.next() : from;

  // The end this read goes to: what we know, refreshed from the broker if `start`
  // looks like the end already.
  int64_t end = known_end(p);
  if (start >= end) {
    auto ends = query_ends({p}, to_ms(opts_.request_timeout));
    if (!ends.ok()) return std::move(ends).take_status();
    raise_known_end(p, (*ends)[0]);
    end = std::max(end, (*ends)[0]);
  }
  std::vector<StoredRecord> out;
  if (start >= end) {
    if (!continues) {
      // Nothing to read; position the reader lazily on the next read.
    } else {
      r.gap_from = std::min(r.gap_from, from);
    }
    return out;
  }

  if (!continues) {
    ++reader_seeks_;
    if (r.started) rd_kafka_consume_stop(consumer_topic_, p);
    r.stash.clear();
    r.started = false;
    if (rd_kafka_consume_start(consumer_topic_, p, from) == -1)
      return unavailable(std::string("consume_start: ") + rd_kafka_err2str(rd_kafka_last_error()));
    r.started = true;
    r.pos = from;
  }
  r.gap_from = from;

  size_t bytes = 0;
  auto take = [&](StoredRecord rec) {
    bytes += rec.value.size();
    out.push_back(std::move(rec));
  };
  auto full = [&] { return out.size() >= max_records || (!out.empty() && bytes >= opts.max_bytes); };
  while (!r.stash.empty() && !full()) {
    take(std::move(r.stash.front()));
    r.stash.pop_front();
  }

  const auto deadline = Clock::now() + opts_.request_timeout;
  rd_kafka_message_t* msgs[kConsumeBatch];
  Status error;
  while (!full() && r.stash.empty() && r.pos < end) {
    const size_t want = std::min(kConsumeBatch, max_records - out.size());
    const auto now = Clock::now();
    if (now >= deadline) {
      error = unavailable("read of " + opts_.topic + "[" + std::to_string(p) + "] at " +
                          std::to_string(r.pos) + " timed out");
      break;
    }
    // consume_batch waits until it has `want` messages or times out, so take what is
    // queued without waiting, and block (bounded) only for the first message.
    ssize_t n = rd_kafka_consume_batch(consumer_topic_, p, 0, msgs, want);
    if (n == 0) {
      msgs[0] = rd_kafka_consume(consumer_topic_, p, std::min(100, to_ms(deadline - now)));
      n = msgs[0] ? 1 : 0;
      if (n == 0 && rd_kafka_last_error() != RD_KAFKA_RESP_ERR__TIMED_OUT) n = -1;
    }
    if (n < 0) {
      error = unavailable(std::string("consume: ") + rd_kafka_err2str(rd_kafka_last_error()));
      break;
    }
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // The fetcher is at the end it was told (past trailing markers).
        r.pos = std::max(r.pos, m->offset);
      } else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                 m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
        if (error.is_ok()) error = out_of_range(p, m->offset >= 0 ? m->offset : r.pos, rd_kafka_message_errstr(m));
      } else if (m->err) {
        if (error.is_ok())
          error = unavailable("read " + opts_.topic + "[" + std::to_string(p) + "]: " + rd_kafka_message_errstr(m));
      } else if (m->offset >= r.pos && error.is_ok()) {
        rd_kafka_timestamp_type_t ts_type;
        const int64_t ts_ms = rd_kafka_message_timestamp(m, &ts_type);
        StoredRecord rec{Position{partition, Offset(m->offset)},
                         TenantId(std::string(static_cast<const char*>(m->key), m->key_len)),
                         std::string(static_cast<const char*>(m->payload), m->len), ts_ms >= 0 ? ts_ms * 1000 : 0};
        rd_kafka_headers_t* hdrs = nullptr;
        const void* link = nullptr;
        size_t link_size = 0;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, kChainHeader, &link, &link_size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            link_size == 8 + rec.chain.size()) {
          const std::string_view l(static_cast<const char*>(link), link_size);
          rec.seq = static_cast<int64_t>(keys::get_be(l, 0, 8));
          std::copy_n(reinterpret_cast<const uint8_t*>(l.data()) + 8, rec.chain.size(), rec.chain.begin());
        }
        r.pos = m->offset + 1;
        if (full()) r.stash.push_back(std::move(rec));
        else take(std::move(rec));
      }
      rd_kafka_message_destroy(m);
    }
    if (!error.is_ok()) break;
  }
  if (!error.is_ok()) {
    // The queue's position is no longer trustworthy: the next read seeks.
    rd_kafka_consume_stop(consumer_topic_, p);
    r.started = false;
    r.stash.clear();
    if (out.empty()) return error;
    return out;
  }
  if (!out.empty()) r.gap_from = out.back().pos.offset.value() + 1;
  return out;
}

Result<std::vector<StoredRecord>> KafkaLog::read_tenant(const TenantId& tenant, Offset from,
                                                        const ReadOptions& opts) {
  const Partition p = partition_of(tenant);
  std::vector<StoredRecord> out;
  size_t bytes = 0;
  Offset cur = from;
  // No tenant index in Kafka: filter the partition, until a page is full or the end.
  while (true) {
    auto page = read(p, cur, opts);
    if (!page.ok()) {
      if (out.empty()) return page;
      return out;
    }
    if (page->empty()) return out;
    for (auto& rec : *page) {
      if (rec.tenant != tenant) continue;
      bytes += rec.value.size();
      out.push_back(std::move(rec));
      if (out.size() >= opts.max_records || bytes >= opts.max_bytes) return out;
    }
    cur = page->back().pos.offset.next();
  }
}

// ---- listeners -------------------------------------------------------------------

void KafkaLog::add_listener(AppendListener listener) {
  bool start = false;
  {
    std::lock_guard l(listeners_mu_);
    listeners_.push_back(std::move(listener));
    start = !poller_.joinable();
    if (start)
      poller_ = std::thread([this] {
        set_thread_name("kafka-poll");
        poller_loop();
      });
  }
}

// Notices new ends (local commits wake it at once; other writers within
// kEndPollInterval) and tells the listeners, in increasing order per partition.
void KafkaLog::poller_loop() {
  std::vector<int32_t> parts(partitions_);
  for (int32_t i = 0; i < partitions_; ++i) parts[i] = i;
  std::vector<int64_t> told(partitions_, -1);
  {
    // Start from what is there now: listeners hear about records appended later.
    auto ends = query_ends(parts, to_ms(opts_.request_timeout));
    std::lock_guard l(end_mu_);
    for (int32_t i = 0; i < partitions_; ++i) {
      if (ends.ok()) known_end_[i] = std::max(known_end_[i], (*ends)[i]);
      told[i] = known_end_[i];
    }
  }
  auto next_query = Clock::now() + kEndPollInterval;
  while (true) {
    std::vector<int64_t> now_ends;
    {
      std::unique_lock l(end_mu_);
      if (poller_stop_) return;
      end_cv_.wait_until(l, next_query);
      if (poller_stop_) return;
      now_ends = known_end_;
    }
    if (Clock::now() >= next_query) {
      auto ends = query_ends(parts, 1000);
      if (ends.ok())
        for (int32_t i = 0; i < partitions_; ++i) {
          raise_known_end(i, (*ends)[i]);
          now_ends[i] = std::max(now_ends[i], (*ends)[i]);
        }
      next_query = Clock::now() + kEndPollInterval;
    }
    std::vector<AppendListener> ls;
    {
      std::lock_guard l(listeners_mu_);
      ls = listeners_;
    }
    for (int32_t i = 0; i < partitions_; ++i) {
      if (now_ends[i] <= told[i]) continue;
      told[i] = now_ends[i];
      for (auto& fn : ls) fn(Partition(i), Offset(now_ends[i]));
    }
  }
}

}  // namespace

namespace {

std::string unused_id_locked(const KafkaLogOptions& opts) {
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  const std::string base = "agentos-events." + opts.topic + "." + host;
  std::string id = base;
  for (int n = 2; g_txn_ids.count(id); ++n) id = base + "." + std::to_string(n);
  return id;
}

}  // namespace

std::string default_transactional_id(const KafkaLogOptions& opts) {
  std::lock_guard l(g_txn_ids_mu);
  return unused_id_locked(opts);
}

Result<std::unique_ptr<Log>> open_kafka_log(const KafkaLogOptions& opts, const KafkaTuning& tuning) {
  std::string id;
  {
    std::lock_guard l(g_txn_ids_mu);
    id = tuning.transactional_id.empty() ? unused_id_locked(opts) : tuning.transactional_id;
    if (!g_txn_ids.insert(id).second)
      return Status(Code::kAlreadyExists, "kafka: transactional.id " + id + " already used by an open log of this process");
  }
  auto log = std::make_unique<KafkaLog>(opts, id);  // its destructor releases the id
  if (Status s = log->open(tuning); !s.is_ok()) return s;
  return std::unique_ptr<Log>(std::move(log));
}

Result<std::unique_ptr<Log>> open_kafka_log(const KafkaLogOptions& opts) {
  return open_kafka_log(opts, KafkaTuning{});
}

KafkaLogStats kafka_log_stats(const Log& log) {
  if (auto* k = dynamic_cast<const KafkaLog*>(&log)) return k->stats();
  return {};
}

}  // namespace agentos
