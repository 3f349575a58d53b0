// The HTTP/1.1 server (Boost.Beast) in front of `Api`.
//
// Limits, each a named option: header bytes, body bytes per route kind (checked against
// Content-Length before any body byte is buffered, and enforced while reading chunked
// bodies), header/body read timeouts (slow clients are dropped), write timeout.
// Server-Sent Events streams are served here (they hold the connection), woken by the
// log's append listener through a per-partition hub rather than by polling.
//
// Lifecycle: start() binds and spawns `threads` I/O threads, each running an io_context of
// its own (a connection is served by one thread, chosen round robin when it is accepted);
// stop() closes the listener and every connection, then joins. The Api and Metrics
// outlive the server; the Log may go before its destructor, once closed. Shutdown order,
// as `agentos serve` does it: the server's stop(), Api::stop(), what the Api reads, the
// log's close, the server's destructor, the Api (ServerOptions::drain_timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "events/log.h"
#include "events/status.h"
#include "gateway/api.h"
#include "gateway/metrics.h"

namespace agentos::gateway {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: pick a free port (tests)
  int threads = 2;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;         // one event
  size_t max_batch_body_bytes = 16 << 20;  // one batch
  // Memory bounds across all connections. Beyond max_connections a new connection is
  // answered 503 and closed at once; a request whose body would take the bytes being read
  // or handled past max_inflight_body_bytes is answered 503 with Retry-After before any of
  // its body is read (a body without Content-Length is charged its route's limit).
  size_t max_connections = 4096;
  size_t max_inflight_body_bytes = 256 << 20;
  // A connection is unauthenticated until a request on it presents a valid API key or the
  // operator token. One source address may hold this many unauthenticated connections;
  // beyond, a new one is answered 429 and closed, so a client trickling headers from one
  // address cannot fill max_connections. Such a connection must send its first request's
  // header within first_header_timeout (and later ones within header_timeout).
  size_t max_unauthenticated_per_address = 256;
  std::chrono::milliseconds first_header_timeout{5000};
  std::chrono::milliseconds header_timeout{10000};  // also the keep-alive idle limit
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds sse_keepalive{15000};
  // Event streams (SSE) are served from the log on demand: a subscriber that reads slowly
  // lags in the log, not in memory. What memory a stream holds is the chunk being written:
  // at most stream_chunk_bytes (or one event, when larger). The sum of every stream's
  // chunk is bounded by stream_buffer_budget: a stream whose next chunk would pass it is
  // ended with a final `event: dropped` frame (`retry:` set, so EventSource resumes from
  // its Last-Event-ID). A chunk the client's socket has not taken within
  // stream_stall_timeout ends the stream (a client that stopped reading cannot be sent a
  // final frame; what it got ends at whole events it can resume after). A client that
  // closes is noticed at once (the server keeps a read pending on every stream).
  size_t stream_chunk_bytes = 64 << 10;
  size_t stream_buffer_budget = 64 << 20;
  std::chrono::milliseconds stream_stall_timeout{10000};
  // SO_SNDBUF of a stream's socket (Linux doubles it): the kernel memory a stream that
  // stops reading can hold, beside its chunk. 0: the kernel's autotuning (up to
  // net.ipv4.tcp_wmem's maximum, 4 MiB by default).
  int stream_socket_send_buffer = 256 << 10;
  // The same streams over WebSocket (GET …/events/ws): the client acknowledges what it has
  // processed (`{"ack": <offset>}`); the server sends at most ws_ack_window events past the
  // last acknowledgement, and closes a stream whose window stays full for
  // stream_stall_timeout (close code 4408). Each message holds at most stream_chunk_bytes
  // of events (or one), charged to stream_buffer_budget until written (over it: 4503).
  // Idle connections are pinged; one that answers nothing within ws_idle_timeout closes.
  size_t ws_ack_window = 256;
  std::chrono::milliseconds ws_idle_timeout{30000};
  // How often a stream asks the index whether its access ended (its key revoked, its
  // tenant deleted) while it waits for records; each record it sends is checked as it is
  // read, and a stream ends at the record that ends its access, after every event before it.
  std::chrono::milliseconds stream_access_check{1000};
  // How long stop() waits for the appends in flight (and reads waiting for ?after=,
  // which take at most 10 s: keep it above that) and for their replies. An append still
  // pending then (a stalled disk, a broker past its request timeout) may complete later:
  // its reply is dropped and its connection closed when the server is destroyed. The
  // destructor waits, with no deadline, until the Api holds no reply: after Api::stop()
  // (which waits for the `?after=` waits and reader jobs the drain gave up on) and after
  // the log's close (which completes or fails the appends still pending).
  std::chrono::milliseconds drain_timeout{30000};
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(Api& api, Log& log, Metrics& metrics,
                                                   const ServerOptions& opts);
  virtual ~HttpServer() = default;
  virtual uint16_t port() const = 0;
  // Open connections right now.
  virtual size_t connections() const = 0;
  // Stops accepting, drains (ServerOptions::drain_timeout), stops the I/O threads and
  // closes every connection no pending reply holds. A reply that comes after the drain
  // is dropped; its connection closes in the destructor, while the I/O contexts exist.
  virtual void stop() = 0;
};

}  // namespace agentos::gateway
