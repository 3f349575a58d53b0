// The deliverer: outbound webhooks for the notifications Heartbeat decides
// (processors/HEARTBEAT.md, Channels and delivery). A host component of its own, never
// the fold: it follows the log, and for each `webhook.notification` whose channel existed
// (channelVersion > 0) and each `webhook.retry_due`, it POSTs the notification — its
// CloudEvent, structured JSON — to the channel's endpoint, signed as Standard Webhooks
// says, then appends the attempt as `webhook.attempted` (source /agentos/deliverer, id
// "<notificationId>/<attempt>", deduplicated by the log). Heartbeat folds the attempt and
// schedules the retry on the engine's clock; the deliverer keeps no retry timer.
//
// Request: POST, `content-type: application/json`, `webhook-id` = the notification id
// (the same on every attempt, so receivers de-duplicate), `webhook-timestamp` = the wall
// clock's Unix seconds at sending, `webhook-signature` = "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" under the channel's secret. Outcome: a 2xx answer is `delivered`;
// another status, a refused connection or a missing endpoint is `failed` (status 0 when
// there was no answer); no answer within `timeout` is `timeout`. https endpoints are
// verified against the system's CA store (ca-certificates) and the host name.
//
// At least once: the cursor (per partition, the first record not yet handled), the
// notifications awaiting a retry and the deleted tenants are kept in DIR (a KvStore) and
// written before the cursor passes them; after a crash the records after the cursor are
// handled again, so a receiver may see an attempt twice — under the same webhook-id. The
// log is the authority on outcomes: a repeated attempt's record is deduplicated (the
// first one stands, and Heartbeat folds that), and a notification stops awaiting only
// when the deliverer reads its `webhook.delivery.updated` DELIVERED or DEAD — or its
// tenant's `tenant.deleted`, after which nothing of the tenant is attempted, a
// notification relayed after the deletion included (stats().forgotten). Secrets and
// endpoint URLs come from the SecretStore at each attempt and never reach a log line or
// an event: errors name the channel and the endpoint's host only.
//
// Threading: start()/stop()/restart() from one thread; the rest from any.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "events/clock.h"
#include "events/host.h"
#include "events/log.h"
#include "events/secret_store.h"
#include "events/status.h"

namespace prometheus {
class Registry;
}

namespace agentos {

inline constexpr std::string_view kDelivererSource = "/agentos/deliverer";

struct DelivererOptions {
  std::string state_dir;                 // the cursor and the awaiting notifications
  SecretStore* secrets = nullptr;        // required; must outlive the deliverer
  int workers = 4;                       // concurrent requests
  std::chrono::milliseconds timeout{10'000};  // per attempt: connect, send and answer
  size_t max_in_flight = 1024;           // jobs read ahead of the cursor
  const Clock* clock = nullptr;          // webhook-timestamp (null: the system clock)
  prometheus::Registry* metrics = nullptr;
  std::chrono::milliseconds idle{500};   // the follower's wait when nothing new arrives
  // Under load the log is read at most once per window (events/log_follower.h); 0: after
  // every append.
  std::chrono::milliseconds window{0};
  std::string ca_file;                   // extra CA bundle for https (tests); empty: none
};

struct DelivererStats {
  uint64_t attempts = 0, delivered = 0, failed = 0, timeouts = 0, skipped = 0;
  // A deleted tenant's (tenant.deleted): awaiting notifications dropped, and notifications
  // and retries read after its deletion (decided before it), not attempted.
  uint64_t forgotten = 0;
  size_t in_flight = 0;
};

class Deliverer {
 public:
  virtual ~Deliverer() = default;
  Deliverer(const Deliverer&) = delete;
  Deliverer& operator=(const Deliverer&) = delete;
  virtual Status start() = 0;
  virtual void stop() = 0;
  // Stop, forget what is in memory, start again from the stored cursor.
  virtual Status restart() = 0;
  virtual Status last_error() const = 0;
  virtual DelivererStats stats() const = 0;
  // Records of the log not yet handled, over every partition.
  virtual int64_t lag() const = 0;

 protected:
  Deliverer() = default;
};

Result<std::unique_ptr<Deliverer>> open_deliverer(Log& log, DelivererOptions opts);

// The deliverer as a host component ("deliverer"). `d` must outlive it.
std::unique_ptr<Component> make_deliverer_component(Deliverer& d);

}  // namespace agentos
