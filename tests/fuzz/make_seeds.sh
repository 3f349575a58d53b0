#!/usr/bin/env bash
# Writes the hand-made seeds of tests/fuzz/corpus/ (run from anywhere; overwrites only the
# files named here). Kept so that a seed's bytes can be read and changed as text; the
# committed corpus is what CI uses, this script is not run by it. Golden samples are copied
# from tests/golden/ (they are never regenerated there, so the copies stay equal).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
C="$ROOT/tests/fuzz/corpus"
mkdir -p "$C/codec" "$C/stored" "$C/domain" "$C/http"

# ---- codec: every golden event's JSON and bytes, plus batches and broken documents -------
cp "$ROOT"/tests/golden/v1/*.json "$ROOT"/tests/golden/v1/*.aose "$C/codec/"
printf '%s' '[{"specversion":"1.0","id":"a","source":"/s","type":"session.created","data":{"sessionId":"s1","agent":"a"}},{"specversion":"1.0","id":"b","source":"/s","type":"dream.planted","data":{"dreamId":"d","seed":"x"}}]' >"$C/codec/batch_two"
printf '%s' '[{"specversion":"1.0","id":"a","source":"/s","type":"nope.nope"},7,null]' >"$C/codec/batch_bad_items"
printf '%s' '{"specversion":"1.0","id":"a","source":"/s","type":"session.created","ext1":"v","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","time":"2026-01-01T00:00:00.1234567+01:00","data":{"sessionId":"s","sessionId":"t"}}' >"$C/codec/duplicate_member"
printf '%s' '{"specversion":"1.0","id":"a","source":"/s","type":"session.created","data":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}' >"$C/codec/too_deep"
printf '{"id":"\xff\xfe","data":{}}' >"$C/codec/bad_utf8"

# ---- stored: the golden records, and a few cut or bent ones ------------------------------
cp "$ROOT"/tests/golden/v1/*.aose "$C/stored/"
head -c 200 "$ROOT/tests/golden/v1/030_session.created.aose" >"$C/stored/truncated"
printf 'XXXXAOSE' >"$C/stored/identifier_only"

# ---- domain: [type index] [time index] data JSON (indexes: kTypes / kTimes in domain_fuzz.cc)
d() {  # d <type index> <time index> <name> <data json>
  printf "\\x$(printf %02x "$1")\\x$(printf %02x "$2")%s" "$4" >"$C/domain/$3"
}
d 0 0 hb_configured '{"zone":"Europe/Berlin","quietHours":[{"start":"22:00","end":"07:00"}],"digestMinutes":30,"digestChannel":"ops","routes":[{"minPriority":0,"channel":"low"},{"minPriority":7,"channel":"pager"}],"piercePriority":8,"catchUpSeconds":600}'
d 0 1 hb_configured_bad_zone '{"zone":"../../etc/passwd"}'
d 0 0 hb_configured_whole_day '{"quietHours":[{"start":"00:00","end":"12:00"},{"start":"12:00","end":"00:00"}]}'
d 1 1 hb_registered_calendar '{"checkId":"db-backup","check":{"name":"backup","schedule":{"calendar":{"minutes":[0,30],"hours":[9,17],"daysOfMonth":[1],"months":[1,7],"daysOfWeek":[1,5]},"exclude":[{"months":[7]}]},"priority":5,"deadlineSeconds":600,"labels":[{"key":"team","value":"db"}]}}'
d 1 3 hb_registered_impossible '{"checkId":"feb31","check":{"schedule":{"calendar":{"months":[2],"daysOfMonth":[31]}}}}'
d 1 0 hb_registered_interval '{"checkId":"api","check":{"schedule":{"intervalSeconds":300},"priority":9}}'
d 2 6 hb_changed_dst '{"checkId":"night","check":{"schedule":{"calendar":{"hours":[1],"minutes":[30]}}}}'
d 2 0 hb_changed_bad_hour '{"checkId":"x","check":{"schedule":{"calendar":{"hours":[1,24]}}}}'
d 3 0 hb_removed '{"checkId":"api"}'
d 4 0 dream_planted '{"dreamId":"d-1","seed":"a garden that writes itself","tags":["a","b-c"]}'
d 4 0 dream_planted_bad_tag '{"dreamId":"d-1","seed":"s","tags":["UPPER"]}'
d 5 0 dream_nurtured '{"dreamId":"d-1","source":"agent:7","score":0.75,"weight":2.5,"vote":1,"note":"good"}'
d 5 0 dream_nurtured_bad_weight '{"dreamId":"d-1","source":"s","weight":0}'
d 6 0 dream_pollinate '{"dreamId":"d-3","parentA":"d-1","parentB":"d-2","seed":"mix"}'
d 7 0 dream_configured '{"halfLifeSeconds":86400,"diversitySources":4,"massPpm":2000000,"sessionModel":"m"}'
d 7 0 dream_configured_bad '{"halfLifeSeconds":1}'
d 8 0 dream_share_offered '{"dreamId":"d-1","target":"globex"}'
d 9 0 dream_evolve '{"dreamId":"d-1"}'
d 10 0 skill_published '{"skillId":"acme/summarize","version":"1.2.3-rc.1+build.5","name":"Summarize","description":"d","tags":["text"],"visibility":"PUBLIC","digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","registry":"https://skills.example.com/r"}'
d 10 0 skill_published_bad_version '{"skillId":"acme/summarize","version":"01.2.3","digest":"00"}'
d 11 0 skill_yank '{"skillId":"acme/summarize","version":"1.2.3"}'
d 12 0 skill_install_range '{"skillId":"acme/summarize","range":">=1.0.0 <2.0.0 || 3.x"}'
d 12 0 skill_install_custom '{"skillId":"acme/summarize","range":"1.0.0","registry":"https://r.example.com","digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}'
d 12 0 skill_install_caret '{"skillId":"acme/x","range":"^1.2.3.4"}'
d 13 0 skill_uninstall '{"skillId":"acme/summarize"}'
d 14 0 model_provider_added '{"providerId":"anth","kind":"anthropic","models":[{"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15"},{"model":"claude-haiku","inputPerMtok":"0.25","outputPerMtok":"1.250000"}],"credentialVersion":1}'
d 14 0 model_provider_custom '{"providerId":"mine","kind":"custom","endpoint":"https://user@[::1]:8443/v1","models":[{"model":"m","inputPerMtok":"1000000","outputPerMtok":"0.000001"}],"credentialVersion":3}'
d 15 0 model_chain_set '{"chain":[{"providerId":"anth","model":"claude-sonnet"},{"providerId":"oai","model":"gpt"},{"providerId":"anth","model":"claude-sonnet"}]}'
d 16 0 model_health '{"failureThreshold":3,"errorRatePct":40,"windowCalls":10,"minCalls":5,"cooldownSeconds":60}'
d 16 0 model_health_bad_min '{"windowCalls":5,"minCalls":6}'
d 17 0 model_call_completed '{"providerId":"anth","model":"claude-sonnet","latencyMs":420,"tokensIn":1000,"tokensOut":200,"sessionId":"s-1"}'
d 18 0 model_call_failed '{"providerId":"anth","model":"claude-sonnet","latencyMs":-1,"errorClass":"timeout"}'
d 19 0 model_provider_removed '{"providerId":"anth"}'
d 20 0 route_request '{"model":"claude-sonnet","tokensIn":1000,"tokensOut":1000000000,"preferences":{"strategy":"cheapest","provider":"anth","costCapMicros":5000}}'
d 20 0 route_request_bad '{"tokensIn":-1}'
d 21 0 estimate_request '{"model":"gpt-4o","tokensIn":1000000000,"tokensOut":1000000000}'
d 0 0 not_json '{"zone":'

# ---- http: [split point, 2 bytes LE] request bytes ----------------------------------------
h() {  # h <split> <name> <request, printf format>
  # shellcheck disable=SC2059
  { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8)))"; printf "$3"; } >"$C/http/$2"
}
body='{"specversion":"1.0","id":"e1","source":"/s","type":"session.created","data":{"sessionId":"s1"}}'
h 20 post_event "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/cloudevents+json\r\nIdempotency-Key: i-1\r\nContent-Length: ${#body}\r\n\r\n${body}"
h 90 post_chunked "POST /v1/tenants/acme/events:batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/cloudevents-batch+json\r\n\r\n5;ext=1\r\n[{\"a\"\r\n3\r\n:1}\r\n1\r\n]\r\n0\r\nTrailer-Field: t\r\n\r\n"
h 33 get_stream "GET /v1/tenants/acme/events/stream?from=12&type=session. HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 41\r\n\r\n"
h 5 get_query "GET /v1/admin/events?from=0&limit=10%%20&q=a+b%%zz HTTP/1.0\r\n\r\n"
h 60 te_gzip "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
h 60 te_and_length "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
h 70 too_large "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"
h 40 pipelined "GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n"
h 30 obs_fold "GET / HTTP/1.1\r\nX: a\r\n  folded\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
h 8 bad_method "G\x01T / HTTP/1.1\r\n\r\n"
