// Helpers over JSON text that a parser has already accepted (valid JSON, valid UTF-8, depth
// checked): what the codec needs to keep a producer's own JSON as the producer wrote it —
// session `metadata`, a tenant-defined type's `data` (events/codec.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentos::json_text {

// `valid` without the whitespace between tokens. Strings, numbers and literals are kept
// byte for byte (escapes, number spellings, member order and duplicates included).
std::string minify(std::string_view valid);

// The text of the value at `path` inside the valid document `valid`: members by name
// ("data.config.metadata"; names compared after unescaping), array items by index
// ("[3].data"); "" is the whole document. Leading and trailing whitespace excluded.
// nullopt when the path does not lead to a value (a member is absent, a step goes into a
// scalar, an index is past the end) or is malformed. With duplicate member names, the
// first one.
std::optional<std::string_view> value_at(std::string_view valid, std::string_view path);

// The items of the valid top-level array `valid` (empty if it is not an array).
std::vector<std::string_view> array_items(std::string_view valid);

// Whether `s` is one complete JSON value and nothing else (RFC 8259, UTF-8 not checked
// beyond what the grammar needs; depth bounded by `max_depth`). For stored text that is
// emitted raw into JSON output.
bool is_json_value(std::string_view s, size_t max_depth);

}  // namespace agentos::json_text
