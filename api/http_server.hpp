#pragma once
// The HTTP/1.1 transport under the API: Boost.Beast on a few asynchronous I/O threads, with a
// deadline on every read, byte caps on heads and bodies and a bounded connection count, so a slow,
// idle or hostile client costs a buffer and a timer, never a thread. Routing and handlers live in
// server.cpp; this file knows nothing about jobs.
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace docket::api::http {

/// Every limit a request is held to before any handler sees it.
struct Limits {
  std::size_t max_header_bytes = 16 * 1024;          ///< request line and headers; more gets 431
  std::size_t max_header_count = 100;                ///< header fields; more gets 431
  std::size_t max_body = 1 << 20;                    ///< declared or chunked; more gets 413
  std::chrono::milliseconds header_timeout{10'000};  ///< from the first byte to the end of the head
  std::chrono::milliseconds body_timeout{30'000};    ///< to read the whole body, and to write a response
  std::chrono::milliseconds idle_timeout{5'000};     ///< a keep-alive connection waiting for its next request
  int max_connections = 1024;                        ///< open connections; more get 503 and are closed
};

/// The wire message a request is parsed into.
using Message = boost::beast::http::request<boost::beast::http::string_body>;

/// A request as the router sees it: the message plus its decoded path and query.
struct Request {
  Message message;
  std::string path;                                ///< percent-decoded, without the query
  std::multimap<std::string, std::string> params;  ///< decoded query parameters
  std::vector<std::string> groups;                 ///< the route pattern's capture groups
  std::string peer;                                ///< the client's IP address, as the socket saw it
  /// A header's value, "" when absent.
  std::string header(std::string_view name) const;
  /// The method as text: "GET", "POST", ...
  std::string method() const;
};

/// An answer; `route` names the matched route for the access metrics.
struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  const char* route = "unmatched";
};

/// Splits a request target into a decoded path and decoded query parameters; false when the
/// percent-encoding is broken.
bool split_target(std::string_view target, std::string& path, std::multimap<std::string, std::string>& params);

/// What parse_request_bytes made of some bytes.
struct ParseResult {
  std::optional<Message> request;  ///< a whole request, within the limits
  int status = 0;                  ///< else the answer the server would give: 400, 413, 431; 0 = incomplete
  std::string reason;              ///< why, for humans
};

/// Feeds `bytes` to the request parser held to `limits`, exactly as a connection does, without
/// sockets: the entry point for fuzzing the request decoder.
ParseResult parse_request_bytes(std::string_view bytes, const Limits& limits);

/// The callbacks a server routes requests with. All may be called on any I/O thread.
struct Handlers {
  /// Called once the head is read, before the body: an answer to send now (the connection then
  /// closes unless the request had no body), or nullopt to read the body and call `handle`.
  /// `peer` is the client's IP address.
  std::function<std::optional<Response>(const Message& head, const std::string& peer)> check_head;
  /// Called with the whole request; must call `done` exactly once, from any thread.
  std::function<void(Request request, std::function<void(Response)> done)> handle;
  /// Called after each answer is written (or failed to be), for the access metrics.
  std::function<void(const std::string& method, const Response& response, double seconds)> observe;
  /// Builds an error answer in the API's envelope.
  std::function<Response(int status, const std::string& code, const std::string& message)> error;
};

/// Accepts connections and serves them with `handlers` until stop().
class HttpServer {
 public:
  HttpServer(Limits limits, Handlers handlers, int io_threads = 2);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds host:port (port 0: any free port); returns the bound port. Throws std::system_error.
  int bind(const std::string& host, int port);
  /// Serves until stop(); returns false if the server could not run.
  bool run();
  /// Ends run(); safe from any thread, before or during run().
  void stop();
  /// Connections open now.
  int connections() const;

  /// The server's state, shared with its connections (defined in http_server.cpp).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace docket::api::http
