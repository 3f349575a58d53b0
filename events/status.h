// One error vocabulary for the engine. Expected failures travel as values
// (`Result<T>`); gateway/problem.cc maps every `Code` to an HTTP status in one table.
// Exceptions are reserved for bugs and for failures that end the process.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace agentos {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,     // bad input; `field` names the offending JSON path
  kNotFound = 2,
  kAlreadyExists = 3,
  kUnauthenticated = 4,     // no or unknown credentials
  kPermissionDenied = 5,    // credentials valid, not for this tenant / role
  kResourceExhausted = 6,   // rate limit or quota; `retry_after_s` is set
  kUnavailable = 7,         // the log cannot accept writes right now; retry later
  kTooLarge = 8,            // body or batch over a configured cap
  kUnsupportedMedia = 9,
  kCorruption = 10,         // stored bytes failed verification
  kInternal = 11,
  kTimeout = 12,
};

const char* code_name(Code c);

// One problem found in the input: where (`field`, a JSON path such as
// `data.sessionId` or `[3].time`) and what.
struct FieldError {
  std::string field;
  std::string reason;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }
  static Status invalid(std::string field, std::string reason) {
    Status s(Code::kInvalidArgument, reason);
    s.errors_.push_back({std::move(field), std::move(reason)});
    return s;
  }

  bool is_ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Every field problem found (the codec reports all of a batch, not just the first).
  const std::vector<FieldError>& errors() const { return errors_; }
  std::vector<FieldError>& mutable_errors() { return errors_; }
  int retry_after_s() const { return retry_after_s_; }
  Status& with_retry_after(int s) {
    retry_after_s_ = s;
    return *this;
  }
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::vector<FieldError> errors_;
  int retry_after_s_ = 0;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status s) : v_(std::move(s)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  Status take_status() && { return ok() ? Status() : std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace agentos
