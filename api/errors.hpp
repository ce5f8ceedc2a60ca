#pragma once
// HTTP errors: {"error": {"code": "...", "message": "..."}} with the status that fits.
#include <stdexcept>
#include <string>

namespace docket::api {

/// An error answered with `status`; `code` is stable for clients, `message` is for humans.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

/// 400: the request is malformed (bad JSON, wrong type); the message names the field.
inline ApiError bad_request(const std::string& message) {
  return ApiError(400, "bad_request", message);
}
/// 422: well-formed but not acceptable (out of range, unknown state).
inline ApiError unprocessable(const std::string& message) {
  return ApiError(422, "unprocessable", message);
}

}  // namespace docket::api
