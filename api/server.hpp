#pragma once
// The HTTP API: a thin adapter over docket::Client (no SQL here), served by Boost.Beast (http_server.hpp) with a
// bounded handler pool and a small fixed pool of database connections.
#include <memory>
#include <string>
#include <utility>

#include "docket/client.hpp"
#include "docket/config.hpp"
#include "docket/metrics.hpp"

namespace docket::api {

/// "127.0.0.1:8080", "[::1]:8080", ":8080" (loopback). Throws ConfigError.
std::pair<std::string, int> parse_listen(const std::string& listen);
/// 127.0.0.0/8, ::1 and localhost.
bool is_loopback(const std::string& host);

/// A bearer token from api.tokens / DOCKET_API_TOKENS: "secret", then options separated by ';':
/// "expires=<RFC 3339>" and "scope=read" (sees everything, changes nothing) or "scope=write" (the
/// default), e.g. "secret;scope=read;expires=2027-01-01T00:00:00Z".
struct Token {
  std::string secret;
  std::optional<Clock::time_point> expires;
  bool read_only = false;  ///< scope=read: every method but GET/HEAD/OPTIONS is refused with 403
};
std::vector<Token> parse_tokens(const std::vector<std::string>& specs);

class Server {
 public:
  Server(const std::string& database_url, ApiConfig config, std::shared_ptr<Metrics> metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds `listen` (port 0: any free port). Refuses a non-loopback address without a token.
  void bind(const std::string& listen);
  /// The bound port.
  int port() const;
  /// Serves until stop(). Returns false if the server could not run.
  bool run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The OpenAPI 3.1 document of these routes (api/openapi.json, embedded at build time).
const std::string& openapi_document();

}  // namespace docket::api
