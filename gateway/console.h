// The built-in web console (issue #14, item 3): the static files of gateway/console/
// (one HTML page, one script, one style sheet; no framework, nothing fetched from another
// origin), embedded in the binary at build time — embed_console.cmake turns each file into
// an entry of a generated table — and answered by Api::handle at GET /console/ and
// /console/<file>. The files hold no data, so they need no credential: the page asks for
// one (an API key or a dashboard token), keeps it in the tab's sessionStorage and reads
// everything from the API with it, as any other client does.
//
// Every console answer carries a strict Content-Security-Policy (only this origin's script,
// style and connections; no inline script or style, no frames, no form submission),
// `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` (the stream token the
// page puts in the stream's URL never leaves in a Referer). Files are `Cache-Control:
// no-cache` with a strong ETag (a hash of the content): a browser revalidates, and an
// engine built with other files answers 200 with them, an unchanged file 304.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gateway/api.h"

namespace agentos::gateway {

struct ConsoleFile {
  std::string_view name;          // its name in gateway/console/: "index.html", "app.js"
  std::string_view content_type;  // from the extension: "text/javascript; charset=utf-8"
  std::string_view etag;          // "\"<hex>\"": a prefix of the content's SHA-256, quoted
  std::string_view body;
};

// Every embedded file, sorted by name (the generated console_files.cc).
std::span<const ConsoleFile> console_files();

// Where a file is served: "/console/" for index.html, "/console/<name>" for the others.
// Api::routes() lists each of these (tests/gateway/console_test.cc checks both ways).
std::string console_path(const ConsoleFile& f);

// The answer to a request for the path "/console" or a path under "/console/"; nullopt
// for any other path. GET only (else 405). "/console" redirects (308) to "/console/", whose
// answer is index.html; a file is answered 200, or 304 when If-None-Match names its ETag;
// any other path under /console/ is the API's 404 problem ("no such route").
std::optional<HttpResponse> console_response(const HttpRequest& req);

// The Content-Security-Policy of every console answer.
inline constexpr std::string_view kConsoleCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace agentos::gateway
