#pragma once
// The one error type of the code base: Status (OK or a code plus a message for a human) and
// Result<T> (a value or a non-OK Status). Messages are lowercase, without a trailing period,
// and quote user values. Thread-compatible value types.

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace smv {

enum class Code {
  kOk,
  kInvalidArgument,     // the request or an option is wrong; the user must change it
  kNotFound,            // a named thing (pool, network, link) does not exist
  kAlreadyExists,       // a named thing exists and may not be created again
  kFailedPrecondition,  // the system is in a state that forbids the request (address reserved)
  kResourceExhausted,   // no free address, store full
  kPermissionDenied,
  kUnavailable,  // a transient failure; the caller may retry
  kAborted,      // another writer changed shared state first; decide again on fresh state
  kInternal,
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Adds what the caller was doing: "create network 3f2a9c1b2d4e: <message>".
  Status Annotate(std::string_view context) const {
    return ok() ? *this : Status(code_, fmt::format("{}: {}", context, message_));
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status OkStatus() { return {}; }
inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

// Holds a T or a non-OK Status (g++ 12 in C++20 mode has no std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // implicit on purpose: `return value;`
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace smv

// The only macro; a single statement.
#define SMV_RETURN_IF_ERROR(expr)                                                  \
  do {                                                                             \
    if (::smv::Status smv_status_ = (expr); !smv_status_.ok()) return smv_status_; \
  } while (0)
