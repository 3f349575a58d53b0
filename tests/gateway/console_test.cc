// The built-in web console's static files (gateway/console.h) over real loopback sockets:
// what is served where, with which headers, and what the files themselves may not do (load
// anything from elsewhere, run inline script or style, write data as HTML). The console in a
// real browser is tests/console/console_test.mjs (CTest `console_browser`).
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>
#include <string>

#include "gateway/console.h"
#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;

const ConsoleFile* file(std::string_view name) {
  for (const ConsoleFile& f : console_files())
    if (f.name == name) return &f;
  return nullptr;
}

TEST(ConsoleFiles, EveryEmbeddedFileIsAListedRouteAndEveryConsoleRouteServesOne) {
  std::set<std::string> served = {"/console"};  // the redirect to /console/
  for (const ConsoleFile& f : console_files()) served.insert(console_path(f));
  std::set<std::string> listed;
  for (const Route& r : Api::routes())
    if (r.path == "/console" || r.path.starts_with("/console/")) {
      EXPECT_EQ(r.method, "GET") << r.path;
      listed.insert(std::string(r.path));
    }
  EXPECT_EQ(served, listed) << "gateway/console/ and Api::routes() (and gateway/openapi.yaml) must name the same files";
  ASSERT_NE(file("index.html"), nullptr);
  ASSERT_NE(file("app.js"), nullptr);
  ASSERT_NE(file("console.css"), nullptr);
}

TEST(ConsoleFiles, LoadNothingFromElsewhereRunNothingInlineAndWriteDataOnlyAsText) {
  for (const ConsoleFile& f : console_files()) {
    const std::string body(f.body);
    SCOPED_TRACE(std::string(f.name));
    EXPECT_FALSE(body.empty());
    // No CDN, no external font or script: nothing names another origin.
    EXPECT_EQ(body.find("http://"), std::string::npos);
    EXPECT_EQ(body.find("https://"), std::string::npos);
    EXPECT_EQ(body.find("//cdn"), std::string::npos);
    EXPECT_EQ(body.find("@import"), std::string::npos);
    // Data reaches the page as text only.
    for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"})
      EXPECT_EQ(body.find(sink), std::string::npos) << sink;
    // The credential stays in the tab (sessionStorage), never in localStorage or a cookie.
    EXPECT_EQ(body.find("localStorage"), std::string::npos);
    EXPECT_EQ(body.find("document.cookie"), std::string::npos);
  }
  // The page: its script and style sheet by relative URL, nothing inline (the CSP allows
  // only 'self': an inline handler, <script> body or style attribute would be refused).
  const std::string html(file("index.html")->body);
  EXPECT_NE(html.find(R"(<script src="app.js" defer></script>)"), std::string::npos);
  EXPECT_NE(html.find(R"(<link rel="stylesheet" href="console.css">)"), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(<script(?![^>]*\bsrc=))")));
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\sstyle\s*=|<style)")));
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\son[a-z]+\s*=)")));
  // The script sets no inline style and no HTML (setAttribute('style') is refused by the CSP).
  const std::string js(file("app.js")->body);
  EXPECT_EQ(js.find("'style'"), std::string::npos);
  EXPECT_EQ(js.find(".style."), std::string::npos);
}

class Console : public ::testing::Test {
 protected:
  TempDir dir;
  Engine engine{dir.path()};
};

TEST_F(Console, ThePageIsServedWithoutACredentialUnderAStrictPolicy) {
  auto r = engine.call("GET", "/console/", "", "", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(r.body, file("index.html")->body);
  EXPECT_EQ(r.header("content-security-policy"), kConsoleCsp);
  for (const char* directive : {"default-src 'self'", "connect-src 'self'", "script-src 'self'", "style-src 'self'",
                                "frame-ancestors 'none'", "form-action 'none'"})
    EXPECT_NE(r.header("content-security-policy").find(directive), std::string::npos) << directive;
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(r.header("referrer-policy"), "no-referrer");
  EXPECT_EQ(r.header("cache-control"), "no-cache");
  EXPECT_EQ(r.header("etag"), file("index.html")->etag);
  EXPECT_TRUE(std::regex_match(r.header("etag"), std::regex(R"("[0-9a-f]{32}")"))) << r.header("etag");

  auto js = engine.call("GET", "/console/app.js", "", "", "");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.body, file("app.js")->body);
  EXPECT_EQ(js.header("x-content-type-options"), "nosniff");
  auto css = engine.call("GET", "/console/console.css", "", "", "");
  EXPECT_EQ(css.status, 200);
  EXPECT_EQ(css.header("content-type"), "text/css; charset=utf-8");
  EXPECT_NE(js.header("etag"), css.header("etag"));
}

TEST_F(Console, AnUnchangedFileIsRevalidatedWithItsETag) {
  const std::string etag(file("app.js")->etag);
  auto same = engine.call("GET", "/console/app.js", "", "", "", {{"If-None-Match", etag}});
  EXPECT_EQ(same.status, 304);
  EXPECT_EQ(same.body, "");
  EXPECT_EQ(same.header("etag"), etag);
  auto weak = engine.call("GET", "/console/app.js", "", "", "", {{"If-None-Match", "W/" + etag}});
  EXPECT_EQ(weak.status, 304);
  auto other = engine.call("GET", "/console/app.js", "", "", "", {{"If-None-Match", R"("0123")"}});
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, file("app.js")->body);
}

TEST_F(Console, ConsoleRedirectsToItsDirectoryAndOtherPathsOrMethodsAreTheApisProblems) {
  auto r = engine.call("GET", "/console", "", "", "");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "/console/");

  for (const char* path : {"/console/nothing.js", "/console/index.html", "/console/app.js/x", "/console//app.js",
                           "/console/%61pp.js"}) {
    auto missing = engine.call("GET", path, "", "", "");
    EXPECT_EQ(missing.status, 404) << path;
    EXPECT_EQ(missing.header("content-type"), "application/problem+json") << path;
    EXPECT_NE(missing.body.find(R"("detail":"no such route)"), std::string::npos) << missing.body;
    EXPECT_EQ(missing.header("x-content-type-options"), "nosniff");
  }
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    auto refused = engine.call(method, "/console/app.js", "", "", "");
    EXPECT_EQ(refused.status, 405) << method;
    EXPECT_EQ(refused.header("content-type"), "application/problem+json");
  }
  // The query string is no part of a file's path.
  EXPECT_EQ(engine.call("GET", "/console/app.js?v=1", "", "", "").status, 200);
}

}  // namespace
}  // namespace agentos::gateway::test
