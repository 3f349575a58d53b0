// The test support for the outbound-webhook deliverer, tested on its own: the Standard
// Webhooks verifier (tests/support/standard_webhooks.h) against the specification's
// published vector and the ways a signature must fail, and the loopback WebhookReceiver
// (tests/support/webhook_receiver.h) driven by a raw-socket client with timeouts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>

#include "tests/support/standard_webhooks.h"
#include "tests/support/webhook_receiver.h"

namespace agentos::testing {
namespace {

using namespace std::chrono_literals;
using Mode = WebhookReceiver::Mode;

// ---------------------------------------------------------------------------------------
// The verifier

// The Standard Webhooks test vector, as published by the reference libraries of
// github.com/standard-webhooks/standard-webhooks: libraries/python/tests/test_webhooks.py
// (test_sign_function), and the same values in the other libraries' tests (the svix PHP
// library's testSignFunctionWorks, for one).
constexpr const char* kVectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kVectorId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr const char* kVectorTimestamp = "1614265330";
constexpr int64_t kVectorNow = 1614265330;
constexpr const char* kVectorBody = R"({"test": 2432232314})";
constexpr const char* kVectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

Status verify_vector(std::string_view signature, std::string_view body = kVectorBody,
                     int64_t now = kVectorNow, std::string_view secret = kVectorSecret,
                     std::string_view timestamp = kVectorTimestamp) {
  return verify_standard_webhook(secret, kVectorId, timestamp, signature, body, now);
}

TEST(StandardWebhooks, ReproducesAndAcceptsThePublishedTestVector) {
  EXPECT_EQ(standard_webhook_signature(kVectorSecret, kVectorId, kVectorTimestamp, kVectorBody), kVectorSignature);
  Status s = verify_vector(kVectorSignature);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  // The reference libraries take the secret with or without its prefix.
  s = verify_vector(kVectorSignature, kVectorBody, kVectorNow, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST(StandardWebhooks, KeysWhoseBase64IsPaddedDecodeExactly) {
  // Keys "Jefe" (base64 with "==") and "Jefe!" (with "="): EVP_DecodeBlock alone would
  // append zero bytes for the padding. Expected values computed independently with
  // Python's hmac/hashlib/base64 modules.
  EXPECT_EQ(standard_webhook_signature("whsec_SmVmZQ==", "msg_1", "1700000000", R"({"a":1})"),
            "v1,d0RJKx1I1gWj34NuiszgvZNnbDFFnv95Rn8tyEgvdd8=");
  EXPECT_EQ(standard_webhook_signature("whsec_SmVmZSE=", "msg_1", "1700000000", R"({"a":1})"),
            "v1,/QXuX1hbruHLQy/oAAVoh2UThxSICtR4KjBLalTKNg4=");
  // Unpadded secrets are accepted, as the reference libraries do.
  EXPECT_EQ(standard_webhook_signature("whsec_SmVmZQ", "msg_1", "1700000000", R"({"a":1})"),
            "v1,d0RJKx1I1gWj34NuiszgvZNnbDFFnv95Rn8tyEgvdd8=");
}

TEST(StandardWebhooks, Base64IsTheStandardPaddedAlphabet) {
  // RFC 4648 section 10.
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\xfb\xff\xbf", 3)), "+/+/");
}

TEST(StandardWebhooks, OneMatchingV1EntryAmongSeveralIsEnough) {
  // As during a key rotation; other schemes (v1a, v2) are skipped.
  const std::string header = std::string("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ") +
                             "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + kVectorSignature +
                             " v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
  Status s = verify_vector(header);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST(StandardWebhooks, RejectsAnyFlippedBodyByte) {
  const std::string body = kVectorBody;
  for (size_t i = 0; i < body.size(); ++i) {
    std::string tampered = body;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    Status s = verify_vector(kVectorSignature, tampered);
    EXPECT_EQ(s.code(), Code::kUnauthenticated) << "byte " << i << ": " << s.to_string();
  }
  // A byte more or less (a re-serialised body) fails too.
  EXPECT_EQ(verify_vector(kVectorSignature, body + "\n").code(), Code::kUnauthenticated);
  EXPECT_EQ(verify_vector(kVectorSignature, R"({"test":2432232314})").code(), Code::kUnauthenticated);
  Status s = verify_vector(kVectorSignature, "");
  EXPECT_EQ(s.code(), Code::kUnauthenticated);
  EXPECT_NE(s.message().find("no v1 signature"), std::string::npos) << s.message();
}

TEST(StandardWebhooks, RejectsAWrongSecretAndATamperedIdOrTimestamp) {
  // The vector's key with its last bit flipped ('w' -> 'x' in the final base64 character).
  EXPECT_EQ(verify_vector(kVectorSignature, kVectorBody, kVectorNow, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx").code(),
            Code::kUnauthenticated);
  EXPECT_EQ(verify_vector(kVectorSignature, kVectorBody, kVectorNow, "whsec_" + base64_encode("another key")).code(),
            Code::kUnauthenticated);
  // The id and timestamp are signed: another timestamp within the tolerance still fails.
  EXPECT_EQ(verify_vector(kVectorSignature, kVectorBody, kVectorNow, kVectorSecret, "1614265331").code(),
            Code::kUnauthenticated);
  EXPECT_EQ(verify_standard_webhook(kVectorSecret, "msg_p5jXN8AQM9LWM0D4loKWxJeK", kVectorTimestamp,
                                    kVectorSignature, kVectorBody, kVectorNow)
                .code(),
            Code::kUnauthenticated);
}

TEST(StandardWebhooks, RejectsATimestampOutsideTheTolerance) {
  // The edges are inside: exactly 300 s either way.
  EXPECT_TRUE(verify_vector(kVectorSignature, kVectorBody, kVectorNow + 300).is_ok());
  EXPECT_TRUE(verify_vector(kVectorSignature, kVectorBody, kVectorNow - 300).is_ok());
  Status old = verify_vector(kVectorSignature, kVectorBody, kVectorNow + 301);
  EXPECT_EQ(old.code(), Code::kUnauthenticated);
  EXPECT_NE(old.message().find("too old"), std::string::npos) << old.message();
  Status future = verify_vector(kVectorSignature, kVectorBody, kVectorNow - 301);
  EXPECT_EQ(future.code(), Code::kUnauthenticated);
  EXPECT_NE(future.message().find("too new"), std::string::npos) << future.message();
  // The tolerance is a parameter.
  EXPECT_TRUE(verify_standard_webhook(kVectorSecret, kVectorId, kVectorTimestamp, kVectorSignature, kVectorBody,
                                      kVectorNow + 3600, 3600)
                  .is_ok());
  EXPECT_FALSE(verify_standard_webhook(kVectorSecret, kVectorId, kVectorTimestamp, kVectorSignature, kVectorBody,
                                       kVectorNow + 1, 0)
                   .is_ok());
}

TEST(StandardWebhooks, RejectsASignatureWithoutTheV1Prefix) {
  const std::string bare = std::string(kVectorSignature).substr(3);
  for (const std::string& header : {bare, "v2," + bare, "v1a," + bare, "V1," + bare, "v1" + bare}) {
    Status s = verify_vector(header);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << header << ": " << s.to_string();
    EXPECT_NE(s.message().find("no v1 entry"), std::string::npos) << s.message();
    ASSERT_EQ(s.errors().size(), 1u);
    EXPECT_EQ(s.errors()[0].field, "webhook-signature");
  }
}

TEST(StandardWebhooks, RejectsMalformedInputsWithAClearMessage) {
  const std::string bare = std::string(kVectorSignature).substr(3);
  // Unpadded, or URL-safe, base64 is not what the specification's libraries emit.
  std::string unpadded = kVectorSignature;
  unpadded.pop_back();
  Status s = verify_vector(unpadded);
  EXPECT_EQ(s.code(), Code::kUnauthenticated);
  EXPECT_NE(s.message().find("malformed"), std::string::npos) << s.message();
  std::string url_safe = kVectorSignature;
  for (char& c : url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
  EXPECT_EQ(verify_vector(url_safe).code(), Code::kUnauthenticated);

  for (const char* ts : {"1614265330.0", "-1614265330", "+1614265330", " 1614265330", "0x60373a72", "abc",
                         "99999999999999999999"}) {
    Status t = verify_vector(kVectorSignature, kVectorBody, kVectorNow, kVectorSecret, ts);
    EXPECT_EQ(t.code(), Code::kInvalidArgument) << ts;
    ASSERT_FALSE(t.errors().empty());
    EXPECT_EQ(t.errors()[0].field, "webhook-timestamp");
  }
  EXPECT_EQ(verify_standard_webhook(kVectorSecret, "", kVectorTimestamp, kVectorSignature, kVectorBody, kVectorNow)
                .errors()
                .at(0)
                .field,
            "webhook-id");
  EXPECT_EQ(verify_vector("").errors().at(0).field, "webhook-signature");
  for (const char* secret : {"whsec_", "whsec_!!!!", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL", "whsec_MfKQ=9r8", ""}) {
    Status k = verify_vector(kVectorSignature, kVectorBody, kVectorNow, secret);
    EXPECT_EQ(k.code(), Code::kInvalidArgument) << secret;
    ASSERT_FALSE(k.errors().empty()) << secret;
    EXPECT_EQ(k.errors()[0].field, "secret");
  }
  EXPECT_THROW(standard_webhook_signature("whsec_!!!!", "a", "1", "b"), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// The receiver, driven by a raw socket client

class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};  // no test blocks forever on a receiver bug
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    connect_errno_ = connected_ ? 0 : errno;
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  int connect_errno() const { return connect_errno_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads until the server closes (or resets) the connection; false if `timeout` passes
  // first. What was read is in `*out`.
  bool read_to_eof(std::string* out, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) == 0) return false;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;  // EOF or reset
      out->append(buf, static_cast<size_t>(n));
    }
  }

  // Reads until `*out` holds `marker`; false on timeout or EOF first.
  bool read_until(std::string_view marker, std::string* out, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (out->find(marker) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) == 0) return false;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      out->append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  // True if nothing (no byte, no EOF) arrives within `window`: the absence of an answer.
  bool silent_for(std::chrono::milliseconds window) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(window.count())) == 0;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  int connect_errno_ = 0;
};

std::string post(const std::string& target, const std::string& body, const std::string& extra_headers = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// One request on a fresh connection; the full response (the receiver closes after it).
std::string round_trip(const WebhookReceiver& r, const std::string& request) {
  Client c(r.port());
  EXPECT_TRUE(c.connected());
  EXPECT_TRUE(c.send(request));
  std::string response;
  EXPECT_TRUE(c.read_to_eof(&response)) << "no EOF within 5 s; got: " << response;
  return response;
}

TEST(WebhookReceiver, AnswersNoContentAndRecordsTheRequest) {
  WebhookReceiver r;
  EXPECT_GT(r.port(), 0);
  EXPECT_EQ(r.url(), "http://127.0.0.1:" + std::to_string(r.port()) + "/hook");
  EXPECT_EQ(r.url("/x"), "http://127.0.0.1:" + std::to_string(r.port()) + "/x");

  const std::string body = R"({"type":"webhook.test","data":{"n":1}})";
  std::string response = round_trip(r, post("/hook?t=1", body, "Webhook-Id: msg_1\r\nX-Dup: a\r\nx-dup:  b \r\n"));
  EXPECT_EQ(response.rfind("HTTP/1.1 204 No Content\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("Connection: close\r\n"), std::string::npos) << response;

  // Recorded before the response was written: no wait needed once the response arrived.
  auto got = r.received();
  ASSERT_EQ(got.size(), 1u);
  const auto& req = got[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hook?t=1");
  EXPECT_EQ(req.version, "HTTP/1.1");
  EXPECT_EQ(req.body, body);
  EXPECT_EQ(req.answered_status, 204);
  EXPECT_EQ(req.mode, Mode::kOk);
  EXPECT_EQ(req.header("webhook-id"), "msg_1");
  EXPECT_EQ(req.header("WEBHOOK-ID"), "msg_1");
  EXPECT_EQ(req.header("absent"), "");
  EXPECT_FALSE(req.has_header("absent"));
  EXPECT_EQ(req.header_count("x-dup"), 2u);
  bool saw_lower = false;
  for (const auto& [name, value] : req.headers) {
    EXPECT_EQ(name, [&] {
      std::string l = name;
      for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return l;
    }());
    if (name == "x-dup" && value == "b") saw_lower = true;  // value trimmed
  }
  EXPECT_TRUE(saw_lower);
  EXPECT_LE(req.at, std::chrono::steady_clock::now());
}

TEST(WebhookReceiver, AnswersFiveHundredWhenFailing) {
  WebhookReceiver r(Mode::kFail);
  std::string response = round_trip(r, post("/hook", "{}"));
  EXPECT_EQ(response.rfind("HTTP/1.1 500 ", 0), 0u) << response;
  EXPECT_NE(response.find("scripted failure"), std::string::npos) << response;
  ASSERT_TRUE(r.wait_for(1, 5s));
  EXPECT_EQ(r.received()[0].answered_status, 500);
}

TEST(WebhookReceiver, FailNextScriptsTheNextRequestsThenTheModeReturns) {
  WebhookReceiver r;
  r.fail_next(2, Mode::kFail);
  r.fail_next(1, Mode::kClose);
  EXPECT_EQ(round_trip(r, post("/hook", "1")).rfind("HTTP/1.1 500 ", 0), 0u);
  EXPECT_EQ(round_trip(r, post("/hook", "2")).rfind("HTTP/1.1 500 ", 0), 0u);
  EXPECT_EQ(round_trip(r, post("/hook", "3")), "");
  EXPECT_EQ(round_trip(r, post("/hook", "4")).rfind("HTTP/1.1 204 ", 0), 0u);
  r.set_mode(Mode::kFail);
  EXPECT_EQ(round_trip(r, post("/hook", "5")).rfind("HTTP/1.1 500 ", 0), 0u);
  ASSERT_TRUE(r.wait_for(5, 5s));
  auto got = r.received();
  ASSERT_EQ(got.size(), 5u);
  const int want[] = {500, 500, 0, 204, 500};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].body, std::to_string(i + 1));
    EXPECT_EQ(got[i].answered_status, want[i]) << i;
  }
  EXPECT_EQ(got[2].mode, Mode::kClose);
}

TEST(WebhookReceiver, ClosesWithoutAnswering) {
  WebhookReceiver r(Mode::kClose);
  Client c(r.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(post("/hook", R"({"a":1})")));
  std::string response;
  EXPECT_TRUE(c.read_to_eof(&response));
  EXPECT_EQ(response, "");
  ASSERT_TRUE(r.wait_for(1, 5s));
  EXPECT_EQ(r.received()[0].answered_status, 0);
  EXPECT_EQ(r.received()[0].mode, Mode::kClose);
  EXPECT_EQ(r.received()[0].body, R"({"a":1})");
}

TEST(WebhookReceiver, HangsUntilTheClientGivesUp) {
  WebhookReceiver r(Mode::kHang);
  Client c(r.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(post("/hook", "{}")));
  ASSERT_TRUE(r.wait_for(1, 5s));
  EXPECT_EQ(r.received()[0].answered_status, 0);
  EXPECT_EQ(r.received()[0].mode, Mode::kHang);
  // The request is read and decided; no answer and no close follows (a bounded check of an
  // absence: nothing can signal it sooner).
  EXPECT_TRUE(c.silent_for(300ms));
  EXPECT_EQ(r.open_connections(), 1u);
  // The client gives up: the receiver sees it and drops the connection.
  c.close();
  EXPECT_TRUE(r.wait_for_open_connections(0, 5s));
}

TEST(WebhookReceiver, StopClosesHangingConnectionsPromptly) {
  auto r = std::make_unique<WebhookReceiver>(Mode::kHang);
  const int port = r->port();
  Client a(port), b(port);
  ASSERT_TRUE(a.connected() && b.connected());
  ASSERT_TRUE(a.send(post("/hook", "a")));
  ASSERT_TRUE(b.send(post("/hook", "b")));
  ASSERT_TRUE(r->wait_for(2, 5s));
  const auto t0 = std::chrono::steady_clock::now();
  r->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  std::string got;
  EXPECT_TRUE(a.read_to_eof(&got));
  EXPECT_TRUE(b.read_to_eof(&got));
  EXPECT_EQ(got, "");
  EXPECT_EQ(r->open_connections(), 0u);
  // Stopped: the port refuses connections (an unreachable endpoint).
  Client late(port);
  EXPECT_FALSE(late.connected());
  EXPECT_EQ(late.connect_errno(), ECONNREFUSED);
  r.reset();  // the destructor after stop() is a no-op
}

TEST(WebhookReceiver, ModeChangesApplyWhileRunning) {
  WebhookReceiver r(Mode::kHang);
  Client hung(r.port());
  ASSERT_TRUE(hung.send(post("/hook", "1")));
  ASSERT_TRUE(r.wait_for(1, 5s));
  r.set_mode(Mode::kOk);
  EXPECT_EQ(round_trip(r, post("/hook", "2")).rfind("HTTP/1.1 204 ", 0), 0u);
  EXPECT_TRUE(hung.silent_for(50ms));  // the first one is still held
}

TEST(WebhookReceiver, SurvivesAClientThatDisconnectsMidRequest) {
  WebhookReceiver r;
  {
    Client c(r.port());
    ASSERT_TRUE(c.send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"));
  }
  {
    Client c(r.port());
    ASSERT_TRUE(c.send("POST /hook HTTP/1.1\r\nHo"));
  }
  EXPECT_TRUE(r.wait_for_open_connections(0, 5s));
  EXPECT_EQ(r.count(), 0u);  // incomplete requests leave no record
  EXPECT_EQ(round_trip(r, post("/hook", "ok")).rfind("HTTP/1.1 204 ", 0), 0u);
  ASSERT_EQ(r.count(), 1u);
  EXPECT_EQ(r.received()[0].body, "ok");
}

TEST(WebhookReceiver, ReadsBodiesInPiecesChunkedAndAfterExpectContinue) {
  WebhookReceiver r;
  // A 1 MiB body, so the reads come in many pieces.
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  EXPECT_EQ(round_trip(r, post("/big", big)).rfind("HTTP/1.1 204 ", 0), 0u);

  // Chunked, with an extension and a trailer.
  EXPECT_EQ(round_trip(r,
                     "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
                .rfind("HTTP/1.1 204 ", 0),
            0u);

  // Expect: 100-continue: the body is sent only after the interim response.
  Client c(r.port());
  ASSERT_TRUE(c.send("POST /expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  std::string interim;
  ASSERT_TRUE(c.read_until("\r\n\r\n", &interim));
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send("body"));
  std::string response;
  EXPECT_TRUE(c.read_to_eof(&response));
  EXPECT_EQ(response.rfind("HTTP/1.1 204 ", 0), 0u) << response;

  ASSERT_TRUE(r.wait_for(3, 5s));
  auto got = r.received();
  EXPECT_EQ(got[0].target, "/big");
  EXPECT_EQ(got[0].body, big);
  EXPECT_EQ(got[1].body, "hello, world");
  EXPECT_EQ(got[2].body, "body");
}

TEST(WebhookReceiver, AnswersAndRecordsAMalformedRequestWithoutUsingTheScript) {
  WebhookReceiver r;
  r.fail_next(1, Mode::kFail);
  EXPECT_EQ(round_trip(r, "NOT AN HTTP REQUEST\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(round_trip(r, "POST /hook HTTP/1.1\r\nContent-Length: 1x\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(round_trip(r, post("/hook", "{}")).rfind("HTTP/1.1 500 ", 0), 0u);  // the scripted failure
  auto got = r.received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].answered_status, 400);
  EXPECT_EQ(got[1].answered_status, 400);
  EXPECT_EQ(got[2].answered_status, 500);
}

TEST(WebhookReceiver, WaitForGivesUpAtItsDeadline) {
  WebhookReceiver r;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(r.wait_for(1, 50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_TRUE(r.wait_for(0, 0ms));
}

TEST(WebhookReceiver, ASignedRequestVerifiesFromWhatWasRecorded) {
  WebhookReceiver r;
  const std::string secret = "whsec_" + base64_encode("a 24-byte test secret...");
  const std::string body = R"({"type":"heartbeat.missed","data":{"check":"c-1"}})";
  const std::string ts = "1767225600";
  const std::string sig = standard_webhook_signature(secret, "msg_42", ts, body);
  round_trip(r, post("/hook", body,
                   "webhook-id: msg_42\r\nwebhook-timestamp: " + ts + "\r\nwebhook-signature: " + sig + "\r\n"));
  ASSERT_EQ(r.count(), 1u);
  const auto req = r.received()[0];
  EXPECT_EQ(req.target, "/hook");
  Status s = verify_standard_webhook(secret, req.header("webhook-id"), req.header("webhook-timestamp"),
                                     req.header("webhook-signature"), req.body, 1767225600 + 10);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

}  // namespace
}  // namespace agentos::testing
