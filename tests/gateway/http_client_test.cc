// The small HTTP client of the CLI, the tests and the benchmarks (gateway/http_client.h):
// its timeout bounds the whole call, also against a server that accepts and never answers.
#include <gtest/gtest.h>

#include <chrono>

#include "gateway/http_client.h"
#include "tests/support/webhook_receiver.h"

namespace agentos::cli {
namespace {

using agentos::testing::WebhookReceiver;

TEST(HttpClient, AServerThatNeverAnswersTimesOutInTime) {
  WebhookReceiver hung(WebhookReceiver::Mode::kHang);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = http_call(Url{"127.0.0.1", std::to_string(hung.port())}, "POST", "/x", {{"content-type", "text/plain"}},
                     "hello", std::chrono::milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().to_string();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(hung.count(), 1u);  // the request did arrive
}

TEST(HttpClient, AnAnswerComesBackWithItsHeaders) {
  WebhookReceiver ok;
  auto r = http_call(Url{"127.0.0.1", std::to_string(ok.port())}, "POST", "/x", {}, "{}", std::chrono::seconds(5));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->header("connection"), "close");
}

}  // namespace
}  // namespace agentos::cli
