#include "processors/deliverer.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "events/codec.h"
#include "events/json_writer.h"
#include "events/key_codec.h"
#include "events/kv_store.h"
#include "events/log_follower.h"
#include "events/logging.h"
#include "schemas/agentos_generated.h"

namespace agentos {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

constexpr int kMaxAttempts = 8;  // HEARTBEAT.md: DEAD after the 8th failed attempt
constexpr size_t kReadChunk = 256;

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

// ---- One HTTP attempt ---------------------------------------------------------------

struct Answer {
  std::string outcome;  // delivered, failed, timeout
  int status = 0;
  std::string error;    // never the URL: it may carry a token
};

// Every step is asynchronous on a private io_context, bounded by the attempt's deadline
// through the tcp_stream's expiry (a synchronous socket read would ignore SO_RCVTIMEO:
// asio waits out EAGAIN with an unbounded poll).
template <typename Op>
beast::error_code run_op(net::io_context& io, Op&& op) {
  beast::error_code result = net::error::operation_aborted;
  op([&result](const beast::error_code& ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

bool timed_out(const beast::error_code& ec) { return ec == beast::error::timeout; }

template <typename Stream>
Answer round_trip(net::io_context& io, Stream& stream, beast::tcp_stream& lowest,
                  const http::request<http::string_body>& req, SteadyClock::time_point deadline) {
  lowest.expires_at(deadline);
  beast::error_code ec = run_op(io, [&](auto cb) { http::async_write(stream, req, cb); });
  if (ec) return {timed_out(ec) ? "timeout" : "failed", 0, timed_out(ec) ? "send: no progress in time" : "send: " + ec.message()};
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);  // the answer's body is not used
  lowest.expires_at(deadline);
  ec = run_op(io, [&](auto cb) { http::async_read(stream, buf, parser, cb); });
  if (ec && ec != http::error::body_limit)
    return {timed_out(ec) ? "timeout" : "failed", 0, timed_out(ec) ? "no answer in time" : "receive: " + ec.message()};
  const int status = static_cast<int>(parser.get().result_int());
  if (status >= 200 && status < 300) return {"delivered", status, ""};
  return {"failed", status, "HTTP " + std::to_string(status)};
}

Answer post(const EndpointUrl& u, const std::vector<std::pair<std::string, std::string>>& headers,
            const std::string& body, std::chrono::milliseconds timeout, const std::string& ca_file) {
  const auto deadline = SteadyClock::now() + timeout;
  net::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto results = resolver.resolve(u.host, u.port, ec);
  if (ec) return {"failed", 0, "resolve: " + ec.message()};
  beast::tcp_stream stream(io);
  stream.expires_at(deadline);
  ec = run_op(io, [&](auto cb) { stream.async_connect(results, cb); });
  if (ec) return {timed_out(ec) ? "timeout" : "failed", 0, timed_out(ec) ? "connect: no answer in time" : "connect: " + ec.message()};

  http::request<http::string_body> req(http::verb::post, u.target, 11);
  req.set(http::field::host, u.port == (u.scheme == "https" ? "443" : "80") ? u.host : u.host + ":" + u.port);
  req.set(http::field::user_agent, "agentos-deliverer/1");
  req.set(http::field::connection, "close");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  if (u.scheme != "https") return round_trip(io, stream, stream, req, deadline);

  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_peer);
  ctx.set_default_verify_paths(ec);
  if (!ca_file.empty()) ctx.load_verify_file(ca_file, ec);
  beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), ctx);
  if (!SSL_set_tlsext_host_name(tls.native_handle(), u.host.c_str())) return {"failed", 0, "tls: cannot set SNI"};
  tls.set_verify_callback(ssl::host_name_verification(u.host));
  beast::get_lowest_layer(tls).expires_at(deadline);
  ec = run_op(io, [&](auto cb) { tls.async_handshake(ssl::stream_base::client, cb); });
  if (ec) return {timed_out(ec) ? "timeout" : "failed", 0, "tls: " + ec.message()};
  return round_trip(io, tls, beast::get_lowest_layer(tls), req, deadline);
}

// ---- State ---------------------------------------------------------------------------

std::string cursor_key(int32_t p) { return "c" + keys::be32(static_cast<uint32_t>(p)); }
// A deleted tenant: its notifications are not delivered (tenant.deleted).
std::string deleted_key(std::string_view tenant) { return "d" + std::string(tenant); }
std::string pending_key(std::string_view tenant, std::string_view nid) {
  std::string k = "n";
  k.append(tenant).push_back('\0');
  k.append(nid);
  return k;
}

// A notification awaiting its attempts: where it goes and what is sent.
struct Pending {
  std::string channel;
  int64_t version = 0;
  std::string body;
};
std::string encode(const Pending& p) { return keys::ValueWriter(1).str(p.channel).i64(p.version).str(p.body).take(); }
Result<Pending> decode_pending(std::string_view v) {
  keys::ValueReader r(v, 1);
  Pending p;
  p.channel = r.str();
  p.version = r.i64();
  p.body = r.str();
  if (Status s = r.status("deliverer", "pending"); !s.is_ok()) return s;
  return p;
}

struct Job {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string tenant, nid;
  int attempt = 1;
};

class DelivererImpl final : public Deliverer {
 public:
  DelivererImpl(Log& log, DelivererOptions o, std::unique_ptr<KvStore> kv)
      : log_(log), o_(std::move(o)), kv_(std::move(kv)), clock_(o_.clock ? *o_.clock : system_clock()),
        n_(log.partition_count()) {
    if (o_.metrics) {
      auto& fam = prometheus::BuildCounter()
                      .Name("agentos_webhook_attempts_total")
                      .Help("Webhook delivery attempts by outcome (delivered, failed, timeout)")
                      .Register(*o_.metrics);
      m_delivered_ = &fam.Add({{"outcome", "delivered"}});
      m_failed_ = &fam.Add({{"outcome", "failed"}});
      m_timeout_ = &fam.Add({{"outcome", "timeout"}});
      m_in_flight_ = &prometheus::BuildGauge()
                          .Name("agentos_webhook_in_flight")
                          .Help("Notification attempts read from the log and not yet recorded")
                          .Register(*o_.metrics)
                          .Add({});
    }
  }
  ~DelivererImpl() override { stop(); }

  Status start() override {
    if (running_) return Status(Code::kInvalidArgument, "deliverer: already started");
    {
      std::lock_guard lock(mu_);
      error_ = Status::ok();
      jobs_.clear();
      in_flight_.assign(static_cast<size_t>(n_), {});
      next_read_.assign(static_cast<size_t>(n_), 0);
      cursor_.assign(static_cast<size_t>(n_), 0);
      for (int32_t p = 0; p < n_; ++p) {
        auto v = kv_->get(cursor_key(p));
        if (!v.ok()) return v.status();
        if (*v && (*v)->size() == 8) cursor_[p] = next_read_[p] = static_cast<int64_t>(keys::get_be(**v, 0, 8));
      }
      deleted_.clear();
      Status st = kv_->scan("d", [&](std::string_view key, std::string_view) {
        deleted_.emplace(key.substr(1));
        return true;
      });
      if (!st.is_ok()) return st;
      stopping_ = false;
    }
    std::vector<Partition> parts;
    for (int32_t p = 0; p < n_; ++p) parts.emplace_back(p);
    follower_ = std::make_unique<LogFollower>(log_, parts);
    for (int i = 0; i < std::max(1, o_.workers); ++i)
      workers_.emplace_back([this] {
        set_thread_name("deliver");
        work();
      });
    running_ = true;
    return follower_->start([this] { return read_step(); }, o_.idle, "deliver-read", o_.window);
  }

  void stop() override {
    if (!running_) return;
    if (follower_) follower_->stop();
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    follower_.reset();
    running_ = false;
  }

  Status restart() override {
    stop();
    return start();
  }

  Status last_error() const override {
    std::lock_guard lock(mu_);
    return error_;
  }

  DelivererStats stats() const override {
    std::lock_guard lock(mu_);
    DelivererStats s = stats_;
    for (const auto& f : in_flight_) s.in_flight += f.size();
    return s;
  }

  int64_t lag() const override {
    std::lock_guard lock(mu_);
    if (!follower_) return -1;
    int64_t lag = 0;
    for (int32_t p = 0; p < n_; ++p) lag += std::max<int64_t>(0, follower_->end(Partition(p)) - cursor_[p]);
    return lag;
  }

 private:
  // The follower's step: reads what is new on every partition into jobs.
  Result<bool> read_step() {
    bool progress = false, unfinished = false;
    for (int32_t p = 0; p < n_; ++p) {
      int64_t from;
      {
        std::lock_guard lock(mu_);
        if (!error_.is_ok()) return error_;
        size_t total = 0;
        for (const auto& f : in_flight_) total += f.size();
        if (total >= o_.max_in_flight) return progress;  // the workers catch up first
        from = next_read_[p];
      }
      ReadOptions ro;
      ro.max_records = kReadChunk;
      auto recs = log_.read_shared(Partition(p), Offset(from), ro);
      if (!recs.ok()) return recs.status();
      if (recs->empty()) continue;
      progress = true;
      if (recs->size() >= ro.max_records) unfinished = true;  // there may be more
      KvBatch batch;
      std::vector<Job> found;
      std::set<std::string> stored, removed;  // awaiting entries this chunk puts, deletes
      std::set<std::string, std::less<>> deleted;  // tenants this chunk finds deleted
      uint64_t forgotten = 0;
      for (const auto& shared : *recs) {
        const StoredRecord& r = *shared;
        if (!verify_record(r).is_ok()) continue;
        const EventHeader h = read_header(r.value);
        const std::string_view type = h.type_name;
        if (type == "tenant.deleted") {
          // Heartbeat forgot the tenant's deliveries (processors/README.md, Deleted
          // tenants): none of them is attempted again, and what awaited them — the
          // notification's content among it — goes, with what this chunk found.
          const std::string prefix = pending_key(h.tenant, "");
          std::set<std::string> gone;
          Status st = kv_->scan(prefix, [&](std::string_view key, std::string_view) {
            if (!removed.count(std::string(key))) gone.emplace(key);
            return true;
          });
          if (!st.is_ok()) return st;
          for (const std::string& k : stored)
            if (k.starts_with(prefix)) gone.insert(k);
          for (const std::string& k : gone) {
            batch.del(k);  // after a put of this chunk, if any: the later op wins
            stored.erase(k);
            removed.insert(k);
          }
          forgotten += gone.size();
          forgotten += static_cast<uint64_t>(std::erase_if(found, [&](const Job& j) { return j.tenant == h.tenant; }));
          batch.put(deleted_key(h.tenant), "");
          deleted.emplace(h.tenant);
          continue;
        }
        if (type != "webhook.notification" && type != "webhook.retry_due" && type != "webhook.delivery.updated")
          continue;
        if (deleted_.count(h.tenant) || deleted.count(h.tenant)) {
          // Decided before the deletion, appended after it (the relay): nothing of a
          // deleted tenant is delivered.
          if (type != "webhook.delivery.updated") ++forgotten;
          continue;
        }
        const fb::Event* e = fb::GetEvent(r.value.data());
        if (type == "webhook.delivery.updated") {
          // The log decides when a notification is done (its attempts as recorded, not
          // as this process saw them): then its awaiting entry goes.
          const auto* u = e->payload_as_WebhookDeliveryUpdated();
          if (sv(u->state()) != "PENDING") {
            const std::string k = pending_key(h.tenant, sv(u->notification_id()));
            batch.del(k);
            stored.erase(k);
            removed.insert(k);
          }
          continue;
        }
        Job j{p, r.pos.offset.value(), std::string(h.tenant), {}, 1};
        if (type == "webhook.notification") {
          const auto* n = e->payload_as_WebhookNotification();
          if (n->channel_version() <= 0) continue;  // no channel: recorded, not delivered
          j.nid = std::string(sv(n->notification_id()));
          const std::string k = pending_key(j.tenant, j.nid);
          batch.put(k, encode(Pending{std::string(sv(n->channel())), n->channel_version(), encode_json(r.value)}));
          stored.insert(k);
          removed.erase(k);
        } else {
          const auto* d = e->payload_as_WebhookRetryDue();
          j.nid = std::string(sv(d->notification_id()));
          j.attempt = d->attempt();
        }
        found.push_back(std::move(j));
      }
      const int64_t end = recs->back()->pos.offset.value() + 1;
      // The awaiting notifications are stored before the cursor can pass them.
      if (!batch.ops().empty())
        if (Status s = kv_->write(batch); !s.is_ok()) return s;
      deleted_.merge(deleted);
      {
        std::lock_guard lock(mu_);
        stats_.forgotten += forgotten;
        next_read_[p] = end;
        for (auto& j : found) {
          in_flight_[p].insert(j.offset);
          jobs_.push_back(std::move(j));
        }
      }
      // Workers are woken for jobs only: most records are not notifications, and waking
      // every worker per chunk read cost a context switch each.
      if (found.size() == 1) cv_.notify_one();
      else if (!found.empty()) cv_.notify_all();
      if (Status s = advance_cursor(p); !s.is_ok()) return s;
      if (m_in_flight_) m_in_flight_->Set(static_cast<double>(stats().in_flight));
    }
    // Every partition read to its end (not stopped by max_in_flight above): under load the
    // next read waits for the window.
    if (progress && !unfinished) follower_->caught_up();
    return progress;
  }

  // The cursor of `p`: the first record not handled (the lowest job in flight, or all read).
  Status advance_cursor(int32_t p) {
    int64_t c;
    {
      std::lock_guard lock(mu_);
      c = in_flight_[p].empty() ? next_read_[p] : *in_flight_[p].begin();
      if (c == cursor_[p]) return Status::ok();
      cursor_[p] = c;
    }
    KvBatch b;
    b.put(cursor_key(p), keys::be64(static_cast<uint64_t>(c)));
    return kv_->write(b);  // unsynced: a lost cursor only means attempts again
  }

  void work() {
    for (;;) {
      Job j;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        j = std::move(jobs_.front());
        jobs_.pop_front();
      }
      Status s = attempt(j);
      {
        std::lock_guard lock(mu_);
        if (!s.is_ok()) {
          if (error_.is_ok()) error_ = s;
          // Left in flight: the cursor stays before it, so a restart attempts it again.
          continue;
        }
        in_flight_[j.partition].erase(j.offset);
      }
      if (Status c = advance_cursor(j.partition); !c.is_ok()) {
        std::lock_guard lock(mu_);
        if (error_.is_ok()) error_ = c;
      }
    }
  }

  // One attempt of one notification, recorded in the log. Non-OK: the attempt could not be
  // recorded (the log failed); the job must be attempted again.
  Status attempt(const Job& j) {
    auto v = kv_->get(pending_key(j.tenant, j.nid));
    if (!v.ok()) return v.status();
    if (!*v) {  // delivered or dead already, as the log says (a repeat after a restart)
      std::lock_guard lock(mu_);
      ++stats_.skipped;
      return Status::ok();
    }
    auto pending = decode_pending(**v);
    if (!pending.ok()) return pending.status();
    const auto started = SteadyClock::now();
    Answer a = send(j, *pending);
    const int64_t latency_us =
        std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - started).count();

    std::string json = R"({"specversion":"1.0","id":)";
    append_json_string(json, j.nid + "/" + std::to_string(j.attempt));
    json += R"(,"source":)";
    append_json_string(json, kDelivererSource);
    json += R"(,"type":"webhook.attempted","tenantid":)";
    append_json_string(json, j.tenant);
    json += R"(,"subject":)";
    append_json_string(json, j.nid);
    json += R"(,"time":")" + format_rfc3339_us(clock_.now_us()) + R"(","data":)";
    json += JsonObject().str("notificationId", j.nid).num("attempt", j.attempt).str("outcome", a.outcome)
                .num("status", a.status).num("latencyUs", latency_us).opt("error", a.error).done();
    json += "}";
    DecodeOptions dopts;
    dopts.path_tenant = TenantId(j.tenant);
    auto ev = decode_structured(json, dopts);
    if (!ev.ok()) return ev.status();
    // A repeat after a restart finds the attempt already in the log (dedupe): the one
    // recorded first stands, whatever this one's outcome — Heartbeat folds the log.
    std::promise<Status> done;
    auto fut = done.get_future();
    log_.append(AppendBatch{TenantId(j.tenant), {std::move(ev->bytes)}, /*dedupe=*/true},
                [&done](Result<AppendResult> r) { done.set_value(r.ok() ? Status::ok() : r.status()); });
    if (Status s = fut.get(); !s.is_ok()) return s;

    {
      std::lock_guard lock(mu_);
      ++stats_.attempts;
      if (a.outcome == "delivered") ++stats_.delivered;
      else if (a.outcome == "timeout") ++stats_.timeouts;
      else ++stats_.failed;
    }
    if (m_delivered_) (a.outcome == "delivered" ? m_delivered_ : a.outcome == "timeout" ? m_timeout_ : m_failed_)->Increment();
    if (a.outcome != "delivered") {
      log_line(LogLevel::kInfo, "webhook attempt failed",
               {{"tenant", j.tenant}, {"channel", pending->channel}, {"notification", j.nid},
                {"attempt", std::to_string(j.attempt)}, {"outcome", a.outcome}, {"error", a.error}});
    }
    return Status::ok();
  }

  Answer send(const Job& j, const Pending& p) {
    if (!o_.secrets) return {"failed", 0, "no_endpoint"};
    auto ep = o_.secrets->endpoint(j.tenant, p.channel, p.version);
    if (!ep.ok() || !*ep) return {"failed", 0, "no_endpoint"};
    auto url = parse_endpoint_url((*ep)->url);
    if (!url.ok()) return {"failed", 0, "no_endpoint"};
    const int64_t ts = clock_.now_us() / 1'000'000;
    auto sig = sign_webhook((*ep)->secret, j.nid, ts, p.body);
    if (!sig.ok()) return {"failed", 0, "no_endpoint"};
    return post(*url,
                {{"content-type", "application/json"},
                 {"webhook-id", j.nid},
                 {"webhook-timestamp", std::to_string(ts)},
                 {"webhook-signature", *sig}},
                p.body, o_.timeout, o_.ca_file);
  }

  Log& log_;
  const DelivererOptions o_;
  std::unique_ptr<KvStore> kv_;
  const Clock& clock_;
  const int32_t n_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool running_ = false;
  Status error_ = Status::ok();
  std::deque<Job> jobs_;
  std::vector<std::set<int64_t>> in_flight_;  // [partition] offsets of jobs not done
  std::vector<int64_t> next_read_, cursor_;
  // The deleted tenants (their 'd' keys): read by start(), then by the follower's thread only.
  std::set<std::string, std::less<>> deleted_;
  DelivererStats stats_;
  std::unique_ptr<LogFollower> follower_;
  std::vector<std::thread> workers_;

  prometheus::Counter *m_delivered_ = nullptr, *m_failed_ = nullptr, *m_timeout_ = nullptr;
  prometheus::Gauge* m_in_flight_ = nullptr;
};

class DelivererComponent final : public Component {
 public:
  explicit DelivererComponent(Deliverer& d) : d_(d) {}
  std::string_view name() const override { return "deliverer"; }
  Status start() override { return d_.start(); }
  void stop() override { d_.stop(); }
  Status health() const override { return d_.last_error(); }
  Status restart() override { return d_.restart(); }
  int64_t lag() const override { return d_.lag(); }

 private:
  Deliverer& d_;
};

}  // namespace

Result<std::unique_ptr<Deliverer>> open_deliverer(Log& log, DelivererOptions opts) {
  if (opts.secrets == nullptr) return Status(Code::kInvalidArgument, "deliverer: a secret store is required");
  if (opts.state_dir.empty()) return Status(Code::kInvalidArgument, "deliverer: state_dir is required");
  auto kv = open_kv_store(opts.state_dir);
  if (!kv.ok()) return kv.status();
  return std::unique_ptr<Deliverer>(new DelivererImpl(log, std::move(opts), std::move(*kv)));
}

std::unique_ptr<Component> make_deliverer_component(Deliverer& d) { return std::make_unique<DelivererComponent>(d); }

}  // namespace agentos
