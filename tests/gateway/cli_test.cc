// The `agentos` binary's `sessions list` / `sessions show` against a running engine with
// read models: piped, it prints the API's JSON unchanged; on a terminal (a real pseudo-
// terminal, forkpty) it prints a table; errors go to stderr with a non-zero exit.
#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <vector>

#include "events/clock.h"
#include "events/codec.h"
#include "events/pii.h"
#include "tests/gateway/gateway_fixture.h"
#include "events/tenant_topics.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

#ifndef AGENTOS_BIN
#error "AGENTOS_BIN: the agentos binary (tests/CMakeLists.txt)"
#endif

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;
using agentos::test::TestPostgres;

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

// Runs the binary with `args`; its stdout a pipe, or a pseudo-terminal with `tty`
// (stderr then shares it). Reads until EOF, so it waits for the process without a timer.
CliRun run_cli(const std::vector<std::string>& args, bool tty) {
  std::vector<std::string> all = {AGENTOS_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  CliRun r;
  int out_fd = -1, err_fd = -1;
  pid_t pid;
  if (tty) {
    pid = ::forkpty(&out_fd, nullptr, nullptr, nullptr);
    if (pid == 0) {
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  } else {
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) return r;
    pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::close(out[0]);
      ::close(err[0]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_fd = out[0];
    err_fd = err[0];
  }
  if (pid < 0) return r;
  auto drain = [](int fd, std::string& into) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;  // EOF, or EIO from a pty whose child has gone
      into.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
  };
  drain(out_fd, r.out);  // a pipe's stderr is small: the child never blocks on it first
  if (err_fd >= 0) drain(err_fd, r.err);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (tty) {  // the terminal writes \r\n
    std::string clean;
    for (char c : r.out)
      if (c != '\r') clean += c;
    r.out = clean;
  }
  return r;
}

// The binary runs on jemalloc with the options of gateway/cmd/allocator.cc: freed memory
// handed back lazily (MADV_FREE, never unmapped by jemalloc) by jemalloc's own thread.
// jemalloc prints its options at exit under MALLOC_CONF=stats_print:true.
TEST(CliAllocator, TheEngineBinaryRunsOnJemallocWithItsOptions) {
  ASSERT_EQ(::setenv("MALLOC_CONF", "stats_print:true", 1), 0);
  const CliRun r = run_cli({"help"}, false);
  ::unsetenv("MALLOC_CONF");
  EXPECT_NE(r.out.find("serve"), std::string::npos) << r.out;  // the usage: the binary ran
  EXPECT_NE(r.err.find("opt.muzzy_decay_ms: -1"), std::string::npos) << r.err.substr(0, 2000);
  EXPECT_NE(r.err.find("opt.background_thread: true"), std::string::npos) << r.err.substr(0, 2000);
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    auto v = open_pii_vault(dir.sub("pii"));
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    vault = std::move(v).value();
    EngineOptions o;
    o.pulse = true;
    o.projector = true;
    o.pii = vault.get();
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
    key = engine->create_tenant("acme", "pro");
    for (const std::string id : {"s-1", "s-2", "s/3"}) {
      auto r = engine->post_event(
          "acme", key,
          R"({"specversion":"1.0","id":"c-)" + id + R"(","source":"/runner","type":"session.created","data":{"sessionId":")" +
              id + R"(","config":{"name":"run )" + id + R"(","model":"gpt-4o","metadata":{"team":"x"}}}})");
      ASSERT_EQ(r.status, 201) << r.body;
      last = r.body.substr(r.body.find("\"offset\":") + 9);
      last = last.substr(0, last.find('}'));
    }
    // The CLI reads what the projector committed: wait for the last session once.
    ASSERT_EQ(engine->call("GET", "/v1/tenants/acme/sessions?after=" + last, key).status, 200);
  }
  std::vector<std::string> flags(std::vector<std::string> more) {
    std::vector<std::string> f = {"--server", "http://127.0.0.1:" + engine->url().port, "--tenant", "acme", "--api-key", key};
    f.insert(f.end(), more.begin(), more.end());
    return f;
  }
  TempDir dir;
  std::unique_ptr<PiiVault> vault;
  std::unique_ptr<Engine> engine;
  std::string key, last;
};

TEST_F(Cli, PipedItPrintsTheApisJsonUnchanged) {
  auto args = flags({"--limit", "2"});
  args.insert(args.begin(), {"sessions", "list"});
  const CliRun r = run_cli(args, false);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto api = engine->call("GET", "/v1/tenants/acme/sessions?limit=2", key);
  EXPECT_EQ(r.out, api.body + "\n");
  EXPECT_NE(r.out.find("\"next\":\""), std::string::npos) << r.out;

  args = flags({"--session", "s/3"});
  args.insert(args.begin(), {"sessions", "show"});
  const CliRun show = run_cli(args, false);
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(show.out, engine->call("GET", "/v1/tenants/acme/sessions/s%2F3", key).body + "\n");
  EXPECT_NE(show.out.find(R"("metadata":{"team":"x"})"), std::string::npos) << show.out;
}

TEST_F(Cli, OnATerminalItPrintsATableAndTheNextPage) {
  auto args = flags({"--limit", "2"});
  args.insert(args.begin(), {"sessions", "list"});
  const CliRun r = run_cli(args, true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("SESSION  STATE  ", 0), 0u) << r.out;
  const size_t row = r.out.find("\ns-1  ");
  ASSERT_NE(row, std::string::npos) << r.out;
  const std::string line = r.out.substr(row + 1, r.out.find('\n', row + 1) - row - 1);
  EXPECT_NE(line.find("  run s-1  "), std::string::npos) << line;
  EXPECT_NE(line.find("  gpt-4o  "), std::string::npos) << line;
  EXPECT_NE(r.out.find("\nnext page: --cursor "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("s/3"), std::string::npos) << "a page of 2" << r.out;

  // --output json wins over the terminal.
  args.insert(args.end(), {"--output", "json"});
  EXPECT_EQ(run_cli(args, true).out.rfind("{\"sessions\":[", 0), 0u);

  args = flags({"--session", "s/3"});
  args.insert(args.begin(), {"sessions", "show"});
  const CliRun show = run_cli(args, true);
  EXPECT_EQ(show.exit_code, 0) << show.out;
  EXPECT_EQ(show.out.rfind("FIELD  ", 0), 0u) << show.out;
  EXPECT_NE(show.out.find("\nsessionId  s/3\n"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(R"(  {"name":"run s/3","model":"gpt-4o","metadata":{"team":"x"}})"), std::string::npos)
      << show.out;
}

// `audit events` / `audit trace` with the tenant's admin key (compliance staff's commands):
// piped, the API's JSON; on a terminal, a table; each run is recorded as audit.accessed.
TEST_F(Cli, AuditEventsAndTraceAsJsonAndAsATable) {
  auto args = flags({"--type", "session.created", "--limit", "2"});
  args.insert(args.begin(), {"audit", "events"});
  const CliRun piped = run_cli(args, false);
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out.rfind("{\"events\":[", 0), 0u) << piped.out;
  EXPECT_NE(piped.out.find(R"("c-s-1")"), std::string::npos) << piped.out;
  EXPECT_EQ(piped.out.find(R"("c-s/3")"), std::string::npos) << "a page of 2: " << piped.out;

  const CliRun table = run_cli(args, true);
  EXPECT_EQ(table.exit_code, 0) << table.out;
  EXPECT_EQ(table.out.rfind("OFFSET  TIME  ", 0), 0u) << table.out;
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 4) << "header, 2 rows, next page: " << table.out;
  EXPECT_NE(table.out.find("Z  session.created"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("\nnext page: --cursor "), std::string::npos) << table.out;

  // The trace of c-s-1 holds it at depth 0 (Pulse's facts follow once projected).
  args = flags({"--event", "c-s-1"});
  args.insert(args.begin(), {"audit", "trace"});
  const CliRun trace = run_cli(args, true);
  EXPECT_EQ(trace.exit_code, 0) << trace.out;
  EXPECT_EQ(trace.out.rfind("DEPTH  OFFSET  ", 0), 0u) << trace.out;
  EXPECT_NE(trace.out.find("\n0      "), std::string::npos) << trace.out;

  // Both reads are in the trail.
  const int64_t end = engine->end_of("acme").value();
  auto trail = engine->call("GET", "/v1/tenants/acme/audit/events?type=audit.accessed&after=" + std::to_string(end - 1), key);
  EXPECT_EQ(std::count(trail.body.begin(), trail.body.end(), '{') - 1, 3) << "3 reads by the CLI: " << trail.body;

  // A reader key is refused: the problem on stderr, exit 1.
  const std::string reader = engine->create_key("acme", key, "reader");
  args = {"audit", "events", "--server", "http://127.0.0.1:" + engine->url().port, "--tenant", "acme", "--api-key", reader};
  const CliRun refused = run_cli(args, false);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("HTTP 403"), std::string::npos) << refused.err;
  EXPECT_EQ(run_cli({"audit", "trace", "--tenant", "acme", "--api-key", key}, false).exit_code, 2);  // no --event
}

// `replay` (replay/REPLAY.md) with the operator token: a dry run of clean tables exits 0
// with the report; after a row is altered behind the projector's back the dry run names it
// and exits 1, and a replay of that projection puts it back.
TEST_F(Cli, ReplayReportsAndRepairs) {
  const std::vector<std::string> op = {"--server", "http://127.0.0.1:" + engine->url().port, "--admin-token",
                                       Engine::kOperatorToken};
  auto cmd = [&](std::vector<std::string> more) {
    std::vector<std::string> args = {"replay"};
    args.insert(args.end(), op.begin(), op.end());
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  const CliRun clean = run_cli(cmd({"--dry-run"}), true);
  EXPECT_EQ(clean.exit_code, 0) << clean.out;
  EXPECT_NE(clean.out.find("TABLE "), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("\nsessions "), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("rebuilt tables equal the live ones"), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("dry run: nothing changed"), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("replayed "), std::string::npos) << "the progress line: " << clean.out;

  agentos::test::pg_query(engine->owner_url(),
                          "UPDATE agentos_rm.sessions SET name = 'altered' WHERE tenant_id = 'acme' AND session_id = 's-2'");
  const CliRun found = run_cli(cmd({"--dry-run", "--projection", "sessions", "--output", "json"}), false);
  EXPECT_EQ(found.exit_code, 1) << found.err;
  EXPECT_NE(found.out.find(R"({"key":"acme/s-2","kind":"differs"})"), std::string::npos) << found.out;
  EXPECT_NE(found.out.find(R"("differences":true)"), std::string::npos) << found.out;

  const CliRun fixed = run_cli(cmd({"--projection", "sessions"}), false);
  EXPECT_EQ(fixed.exit_code, 0) << fixed.err;
  EXPECT_NE(fixed.out.find(R"("applied":true)"), std::string::npos) << fixed.out;
  auto s2 = engine->call("GET", "/v1/tenants/acme/sessions/s-2", key);
  EXPECT_NE(s2.body.find(R"("name":"run s-2")"), std::string::npos) << s2.body;

  const CliRun bad = run_cli(cmd({"--projection", "nope"}), false);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("projections[0]"), std::string::npos) << bad.out;

  // Pulse's state: the two hashes on a terminal.
  const CliRun pulse = run_cli(cmd({"--processor", "pulse", "--dry-run"}), true);
  EXPECT_EQ(pulse.exit_code, 0) << pulse.out;
  EXPECT_NE(pulse.out.find("PROCESSOR  LIVE HASH"), std::string::npos) << pulse.out;
  EXPECT_NE(pulse.out.find("the rebuilt state equals the live one"), std::string::npos) << pulse.out;

  // To a point: acme's sessions before offset 0 of its partition are none; the live table
  // has rows now, which is what changed since, and exits 0; the table stays for SQL.
  const CliRun then = run_cli(cmd({"--projection", "sessions", "--tenant", "acme", "--to-offset", "0"}), true);
  EXPECT_EQ(then.exit_code, 0) << then.out;
  EXPECT_NE(then.out.find("AS OF offset 0"), std::string::npos) << then.out;
  EXPECT_NE(then.out.find("what changed since"), std::string::npos) << then.out;
  EXPECT_NE(then.out.find("stay in schema agentos_rm_shadow"), std::string::npos) << then.out;
  EXPECT_EQ(agentos::test::pg_query(engine->owner_url(), "SELECT count(*) FROM agentos_rm_shadow.sessions")[0][0], "0");
  const CliRun at = run_cli(cmd({"--processor", "pulse", "--to-time", "2000-01-01T00:00:00Z"}), true);
  EXPECT_EQ(at.exit_code, 0) << at.out;
  EXPECT_NE(at.out.find("STATE HASH AS OF 2000-01-01T00:00:00.000000Z"), std::string::npos) << at.out;
  EXPECT_EQ(run_cli(cmd({"--tenant", "acme", "--to-offset", "-3"}), false).exit_code, 2);
  const CliRun no_tenant = run_cli(cmd({"--to-offset", "3"}), false);  // an offset of whose partition?
  EXPECT_EQ(no_tenant.exit_code, 1);
  EXPECT_NE(no_tenant.out.find("\"toOffset\""), std::string::npos) << no_tenant.out;
}

// `agentos erase` and `agentos tenant delete` (replay/ERASURE.md): the API's answer on
// stdout, its problem on a non-zero exit, missing flags exit 2.
TEST_F(Cli, EraseAndTenantDelete) {
  auto r = engine->post_event("acme", key,
                              R"({"specversion":"1.0","id":"p-1","source":"/runner","type":"session.created","datasubject":"user-1",)"
                              R"("data":{"sessionId":"s-9","config":{"prompt":"cli-canary-4d2e"}}})");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string server = "http://127.0.0.1:" + engine->url().port;
  EXPECT_EQ(run_cli({"erase", "--server", server, "--tenant", "acme", "--api-key", key}, false).exit_code, 2);  // no --subject
  const CliRun erased = run_cli({"erase", "--server", server, "--tenant", "acme", "--api-key", key, "--subject", "user-1"}, false);
  EXPECT_EQ(erased.exit_code, 0) << erased.err;
  EXPECT_NE(erased.out.find(R"("keysDestroyed":1)"), std::string::npos) << erased.out;
  const std::string offset = erased.out.substr(erased.out.find("\"offset\":") + 9);
  auto s9 = engine->call("GET", "/v1/tenants/acme/sessions/s-9?after=" + offset.substr(0, offset.find('}')), key);
  EXPECT_NE(s9.body.find(R"("prompt":"[erased]")"), std::string::npos) << s9.body;
  const CliRun refused = run_cli({"erase", "--server", server, "--tenant", "acme", "--api-key", "nope", "--subject", "u"}, false);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("401"), std::string::npos) << refused.err;

  EXPECT_EQ(run_cli({"tenant", "delete", "--server", server, "--admin-token", Engine::kOperatorToken}, false).exit_code, 2);
  const CliRun deleted =
      run_cli({"tenant", "delete", "--server", server, "--admin-token", Engine::kOperatorToken, "--slug", "acme"}, false);
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_NE(deleted.out.find(R"("tenant":"acme")"), std::string::npos) << deleted.out;
  const CliRun twice =
      run_cli({"tenant", "delete", "--server", server, "--admin-token", Engine::kOperatorToken, "--slug", "acme"}, false);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("404"), std::string::npos) << twice.err;
}

TEST_F(Cli, ErrorsGoToStderrWithANonZeroExit) {
  auto args = flags({"--session", "nope"});
  args.insert(args.begin(), {"sessions", "show"});
  const CliRun missing = run_cli(args, false);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_NE(missing.err.find("HTTP 404"), std::string::npos) << missing.err;

  const CliRun usage = run_cli({"sessions", "show", "--tenant", "acme"}, false);
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.err.find("--session"), std::string::npos) << usage.err;

  args = flags({"--output", "yaml"});
  args.insert(args.begin(), {"sessions", "list"});
  EXPECT_EQ(run_cli(args, false).exit_code, 2);

  // A boolean flag takes true or false only: a typo must not read as false.
  const CliRun typo = run_cli({"serve", "--pii", "no"}, false);
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("--pii (AGENTOS_PII) must be true or false, not 'no'"), std::string::npos) << typo.err;
}

// `agentos tail --brokers`: the tenant's Kafka topic (events/tenant_topics.h) read by the
// binary as JSON lines, each event as the log holds it.
TEST_F(Cli, TailReadsTheTenantsKafkaTopic) {
  agentos::testing::MockKafkaCluster cluster(1);
  cluster.create_topic("agentos.tenant-topics.progress", 1);
  cluster.create_topic("agentos.tenant.acme", 1);
  TenantTopicsOptions o;
  o.brokers = cluster.bootstraps();
  o.create_topics = false;
  o.transactional_id = "cli-test";
  auto tt = open_tenant_topics(engine->log(), o);
  ASSERT_TRUE(tt.ok()) << tt.status().to_string();
  ASSERT_TRUE((*tt)->start().is_ok());
  // tenant.created, apikey.created, three session.created (and what Pulse derived).
  ASSERT_TRUE(agentos::test::wait_until([&] { return (*tt)->stats().records_published >= 5; },
                                        std::chrono::seconds(30)))
      << (*tt)->health().to_string();
  const CliRun r = run_cli({"tail", "--brokers", cluster.bootstraps(), "--tenant", "acme", "--from", "0", "--type",
                            "session.created", "--limit", "3"},
                           false);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = r.out.find('\n', at)) != std::string::npos; at = nl + 1) lines.push_back(r.out.substr(at, nl - at));
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("{\"partition\":0,\"offset\":", 0), 0u) << lines[i];
    EXPECT_NE(lines[i].find(R"("type":"session.created","event":{"specversion":"1.0")"), std::string::npos) << lines[i];
    EXPECT_NE(lines[i].find(R"("metadata":{"team":"x"})"), std::string::npos) << lines[i];
  }
  EXPECT_NE(lines[2].find(R"("sessionId":"s/3")"), std::string::npos) << lines[2];
  (*tt)->stop();
}

}  // namespace
}  // namespace agentos::gateway::test
