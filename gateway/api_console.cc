// The built-in web console's static files (console.h).
#include "gateway/console.h"

namespace agentos::gateway {
namespace {

constexpr std::string_view kPrefix = "/console/";

// The headers every console answer carries (console.h).
void add_console_headers(HttpResponse& r) {
  r.headers.emplace_back("Content-Security-Policy", std::string(kConsoleCsp));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

const ConsoleFile* find_file(std::string_view path) {
  for (const ConsoleFile& f : console_files())
    if (console_path(f) == path) return &f;
  return nullptr;
}

}  // namespace

std::string console_path(const ConsoleFile& f) {
  return f.name == "index.html" ? std::string(kPrefix) : std::string(kPrefix) + std::string(f.name);
}

std::optional<HttpResponse> console_response(const HttpRequest& req) {
  if (req.path != "/console" && !req.path.starts_with(kPrefix)) return std::nullopt;
  const ConsoleFile* f = find_file(req.path);
  HttpResponse r;
  if (req.path != "/console" && f == nullptr) {
    r = problem_response(Status(Code::kNotFound, "no such route (the console has no such file)"), req.path);
  } else if (req.method != "GET") {
    r = problem_response(405, Status(Code::kInvalidArgument, "method not allowed"), req.path);
  } else if (f == nullptr) {  // "/console": the page's relative URLs need the trailing '/'
    r.status = 308;
    r.content_type = "text/plain; charset=utf-8";
    r.headers.emplace_back("Location", std::string(kPrefix));
  } else {
    r.headers.emplace_back("ETag", std::string(f->etag));
    r.headers.emplace_back("Cache-Control", "no-cache");
    if (req.header("if-none-match").find(f->etag) != std::string_view::npos) {
      r.status = 304;
    } else {
      r.content_type = std::string(f->content_type);
      r.body = std::string(f->body);
    }
  }
  add_console_headers(r);
  return r;
}

}  // namespace agentos::gateway
