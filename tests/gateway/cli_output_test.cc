// The CLI's output for people (gateway/cli_output.h): the format chosen from the flag and
// the terminal, aligned tables, and cells a terminal cannot misread.
#include "gateway/cli_output.h"

#include <gtest/gtest.h>

namespace agentos::cli {
namespace {

TEST(CliOutput, JsonWhenPipedATableOnATerminalAndTheFlagWins) {
  EXPECT_EQ(*choose_output("auto", false), Output::json);
  EXPECT_EQ(*choose_output("", false), Output::json);
  EXPECT_EQ(*choose_output("auto", true), Output::table);
  EXPECT_EQ(*choose_output("json", true), Output::json);
  EXPECT_EQ(*choose_output("table", false), Output::table);
  EXPECT_EQ(choose_output("yaml", true).status().code(), Code::kInvalidArgument);
}

TEST(CliOutput, ColumnsAreAlignedByCharactersNotBytes) {
  const std::string t = render_table({"ID", "NAME", "N"}, {{"a", "\xC3\xA9t\xC3\xA9", "1"}, {"bbbb", "x"}});
  EXPECT_EQ(t,
            "ID    NAME  N\n"
            "a     \xC3\xA9t\xC3\xA9   1\n"
            "bbbb  x\n");
}

TEST(CliOutput, ControlCharactersAndInvalidBytesCannotReachTheTerminal) {
  // ESC [ 2 J would clear the screen; a newline would fake a row; U+009B is the C1 CSI.
  const std::string t = render_table({"NAME"}, {{"x\x1b[2J\ny\xC2\x9B" "z\xFFok"}});
  EXPECT_EQ(t, "NAME\nx\\x1B[2J\\x0Ay\\x9Bz\\xFFok\n");
  EXPECT_EQ(t.find('\x1b'), std::string::npos);
}

TEST(CliOutput, LongCellsAreCutWithAnEllipsisAtTheLimit) {
  const std::string t = render_table({"V"}, {{std::string(kMaxCell, 'a')}, {std::string(kMaxCell + 1, 'b')}});
  EXPECT_NE(t.find(std::string(kMaxCell, 'a') + "\n"), std::string::npos) << t;
  EXPECT_NE(t.find(std::string(kMaxCell - 1, 'b') + "\xE2\x80\xA6\n"), std::string::npos) << t;
  EXPECT_EQ(t.find(std::string(kMaxCell, 'b')), std::string::npos) << t;
}

TEST(CliOutput, SessionListAsATableWithTheNextPage) {
  const std::string list =
      R"({"sessions":[{"tenantId":"acme","sessionId":"s-1","state":"RUNNING","name":"one","model":"gpt-4o",)"
      R"("createdAt":"2026-11-24T10:00:00.000000Z","updatedAt":"2026-11-24T10:01:00.000000Z","tokensIn":10,)"
      R"("tokensOut":2,"computeMs":0,"costUsd":"0.000100"},{"tenantId":"acme","sessionId":"s-2","state":"CREATED",)"
      R"("updatedAt":"2026-11-24T10:02:00.000000Z","tokensIn":0,"tokensOut":0,"costUsd":"0.000000"}],"next":"czI"})";
  auto t = sessions_table(list);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(*t,
            "SESSION  STATE    NAME  MODEL   UPDATED                      TOKENS IN/OUT  COST USD\n"
            "s-1      RUNNING  one   gpt-4o  2026-11-24T10:01:00.000000Z  10/2           0.000100\n"
            "s-2      CREATED                2026-11-24T10:02:00.000000Z  0/0            0.000000\n"
            "next page: --cursor czI\n");
  EXPECT_EQ(sessions_table(R"({"sessions":[],"next":null})").value(),
            "SESSION  STATE  NAME  MODEL  UPDATED  TOKENS IN/OUT  COST USD\n");
  EXPECT_FALSE(sessions_table("{\"problem\":1}").ok());
  EXPECT_FALSE(sessions_table("not json").ok());
}

TEST(CliOutput, OneSessionAsFieldsInTheAnswersOrder) {
  auto t = session_table(
      R"({"sessionId":"s-1","state":"RUNNING","config":{"name":"one","metadata":{"team":"x"}},"pct":0.5,)"
      R"("position":{"partition":3,"offset":17}})");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(*t,
            "FIELD      VALUE\n"
            "sessionId  s-1\n"
            "state      RUNNING\n"
            "config     {\"name\":\"one\",\"metadata\":{\"team\":\"x\"}}\n"
            "pct        0.5\n"
            "position   {\"partition\":3,\"offset\":17}\n");
  EXPECT_FALSE(session_table("[1]").ok());
}

TEST(CliOutput, AuditRowsAndTracesAsTables) {
  auto page = audit_table(
      R"({"events":[{"partition":3,"offset":17,"id":"e1","type":"session.created","source":"/r","subject":"s-1",)"
      R"("actor":"alice","correlationId":"run-1","causationId":"","traceparent":"","time":"2026-11-24T10:00:00.000000Z"}],)"
      R"("next":"MTcuMw"})");
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  EXPECT_EQ(*page,
            "OFFSET  TIME                         TYPE             SUBJECT  ACTOR  CORRELATION  CAUSED BY\n"
            "17      2026-11-24T10:00:00.000000Z  session.created  s-1      alice  run-1\n"
            "next page: --cursor MTcuMw\n");
  auto trace = audit_table(
      R"({"eventId":"e1","events":[{"offset":17,"type":"session.created","causationId":"","depth":0},)"
      R"({"offset":18,"type":"session.transitioned","causationId":"e1","depth":1}],"truncated":true})");
  ASSERT_TRUE(trace.ok()) << trace.status().to_string();
  EXPECT_EQ(*trace,
            "DEPTH  OFFSET  TIME  TYPE                  SUBJECT  ACTOR  CORRELATION  CAUSED BY\n"
            "0      17            session.created\n"
            "1      18            session.transitioned                               e1\n"
            "truncated: more events than --limit\n");
  // A subject with a terminal escape is shown escaped, not sent to the terminal.
  auto hostile = audit_table(R"({"events":[{"offset":1,"subject":"\u001b[2J"}],"next":null})");
  ASSERT_TRUE(hostile.ok());
  EXPECT_EQ(hostile->find('\x1b'), std::string::npos) << *hostile;
  EXPECT_FALSE(audit_table(R"({"sessions":[]})").ok());
}

}  // namespace
}  // namespace agentos::cli
