#include "server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <regex>
#include <thread>

#include <spdlog/spdlog.h>

#include "auth_limiter.hpp"
#include "core/log.hpp"
#include "core/secret.hpp"
#include "core/url.hpp"
#include "core/watch.hpp"
#include "dashboard.hpp"
#include "docket/errors.hpp"
#include "docket/json.hpp"
#include "docket/time.hpp"
#include "errors.hpp"
#include "http_server.hpp"
#include "metrics_server.hpp"
#include "requests.hpp"
#include "submitter.hpp"

namespace docket::api {

namespace {

using Request = http::Request;
using Response = http::Response;
namespace net = boost::asio;

/// /ready's whole budget: the database must connect and answer within it.
constexpr int kReadySeconds = 1;
/// Keys of each keyed kind on /metrics: the busiest ones only, so the label count stays bounded.
constexpr int kHotKeys = 10;

/// A JSON body as sent: compact, invalid UTF-8 replaced rather than thrown on.
std::string json_text(const Json& body) {
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void write_json(Response& res, int status, const Json& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = json_text(body);
}

Response error_response(int status, const std::string& code, const std::string& message) {
  Response res;
  write_json(res, status, Json{{"error", {{"code", code}, {"message", message}}}});
  return res;
}

/// 429 for a client whose address (or everyone) made too many failed token attempts: the token was
/// not even compared, so waiting out Retry-After is the only way on.
Response too_many_failures(std::chrono::seconds wait) {
  Response res = error_response(429, "too_many_requests",
                                "too many failed token attempts from this address (or from all clients); retry in " +
                                    std::to_string(wait.count()) + " s");
  res.route = "auth";
  res.headers.emplace_back("Retry-After", std::to_string(wait.count()));
  return res;
}

void write_error(Response& res, int status, const std::string& code, const std::string& message) {
  write_json(res, status, Json{{"error", {{"code", code}, {"message", message}}}});
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

/// A page of a list: {"<name>": [...], "next_after": cursor}. Rows stop when the page is full or
/// the answer would pass `max_bytes` (one row is always answered); next_after is then the cursor
/// of the last row sent (its id, or a schedule's name), else null.
template <class Rows, class Cursor>
void write_page(Response& res, const char* name, const Rows& rows, int limit, std::size_t max_bytes, Cursor cursor) {
  std::string body = std::string("{\"") + name + "\":[";
  std::size_t sent = 0;
  Json last;
  for (const auto& row : rows) {
    std::string item = Json(row).dump(-1, ' ', false, Json::error_handler_t::replace);
    if (sent > 0 && body.size() + item.size() + 64 > max_bytes) break;
    if (sent > 0) body += ',';
    body += item;
    last = cursor(row);
    ++sent;
  }
  const bool more = sent > 0 && (sent < rows.size() || static_cast<int>(rows.size()) == limit);
  body +=
      "],\"next_after\":" + (more ? last.dump(-1, ' ', false, Json::error_handler_t::replace) : std::string("null")) +
      "}";
  res.status = 200;
  res.content_type = "application/json";
  res.body = std::move(body);
}

template <class T>
void write_page(Response& res, const char* name, const std::vector<T>& rows, int limit, std::size_t max_bytes) {
  write_page(res, name, rows, limit, max_bytes, [](const T& row) { return Json(row.id); });
}

/// The header carrying a job's callback token, to the endpoint and back to the API.
constexpr const char* kCallbackTokenHeader = "Docket-Callback-Token";

/// POST /jobs/{id}/progress and /outcome: authenticated by the job's callback token instead.
bool callback_path(const std::string& path) {
  static const std::regex pattern(R"(/jobs/\d{1,18}/(progress|outcome))");
  return std::regex_match(path, pattern);
}

std::int64_t path_id(const Request& req) {
  try {
    return std::stoll(req.groups.at(0));
  } catch (...) {
    throw ApiError(404, "not_found", "no job with id " + (req.groups.empty() ? std::string() : req.groups[0]));
  }
}

/// The dashboard's session cookie, and the header its page sends with every request: a cookie is
/// accepted only with that header, which a cross-site form or image cannot send and a cross-site
/// script could send only after a CORS preflight this server never grants.
constexpr const char* kSessionCookie = "docket_session";
constexpr const char* kDashboardHeader = "X-Docket-Dashboard";

/// Answers /ready from its own lane: one probe of the database at a time, shared by every request
/// waiting for it, each of which gives up at its own deadline.
class ReadyLane {
 public:
  /// What a probe found: the schema version, or why there is none.
  struct Outcome {
    int version = -1;
    std::string error;
  };

  explicit ReadyLane(std::string url) : url_(std::move(url)), pool_(2) {}
  ~ReadyLane() {
    pool_.join();
    std::lock_guard lock(mutex_);
    if (probe_.joinable()) probe_.join();
  }

  /// Calls `done` with 200 or 503 within about kReadySeconds, whatever the database does.
  void check(std::function<void(Response)> done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kReadySeconds);
    net::post(pool_, [this, deadline, done = std::move(done)] {
      Response res;
      res.route = "/ready";
      auto outcome = current();
      if (outcome.wait_until(deadline) != std::future_status::ready) {
        write_json(res, 503, Json{{"status", "unavailable"}, {"reason", "the database did not answer within 1s"}});
        return done(std::move(res));
      }
      const Outcome& o = outcome.get();
      const int want = known_schema_version();
      if (!o.error.empty()) {
        write_json(res, 503, Json{{"status", "unavailable"}, {"reason", o.error}});
      } else if (o.version != want) {
        write_json(res, 503,
                   Json{{"status", "schema_mismatch"},
                        {"reason", o.version < 0 ? "the database has no docket schema: run `docket migrate`"
                                                 : "the database schema is at version " + std::to_string(o.version) +
                                                       ", this binary needs " + std::to_string(want)},
                        {"schema_version", o.version},
                        {"binary_schema_version", want}});
      } else {
        write_json(res, 200, Json{{"status", "ready"}, {"schema_version", o.version}});
      }
      done(std::move(res));
    });
  }

 private:
  /// The probe in flight, or a new one when the last has finished.
  std::shared_future<Outcome> current() {
    std::lock_guard lock(mutex_);
    if (inflight_.valid() && inflight_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return inflight_;
    if (probe_.joinable()) probe_.join();  // finished: its future is ready
    auto promise = std::make_shared<std::promise<Outcome>>();
    inflight_ = promise->get_future().share();
    probe_ = std::thread([url = url_, promise] {
      Outcome o;
      try {
        o.version = database_schema_version(url, kReadySeconds);
      } catch (const std::exception& e) {
        o.error = std::string("the database does not answer: ") + e.what();
      }
      promise->set_value(std::move(o));
    });
    return inflight_;
  }

  std::string url_;
  net::thread_pool pool_;
  std::mutex mutex_;
  std::shared_future<Outcome> inflight_;
  std::thread probe_;
};

}  // namespace

std::pair<std::string, int> parse_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    throw ConfigError("api.listen \"" + listen + "\" must be host:port, like 127.0.0.1:8080");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "127.0.0.1";
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) port = -1;
  } catch (...) {
  }
  if (port < 0 || port > 65535) throw ConfigError("api.listen \"" + listen + "\" has no valid port (0-65535)");
  return {host, port};
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

std::vector<Token> parse_tokens(const std::vector<std::string>& specs) {
  std::vector<Token> out;
  for (const auto& spec : specs) {
    Token t;
    const auto semi = spec.find(';');
    t.secret = spec.substr(0, semi);
    if (t.secret.size() < 16) {
      throw ConfigError("API tokens must be at least 16 characters (one is " + std::to_string(t.secret.size()) +
                        "); generate one with: openssl rand -hex 24");
    }
    std::size_t pos = semi;
    bool seen_expires = false, seen_scope = false;
    while (pos != std::string::npos) {
      const auto next = spec.find(';', pos + 1);
      const std::string option = spec.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
      pos = next;
      if (option.rfind("expires=", 0) == 0 && !seen_expires) {
        seen_expires = true;
        t.expires = parse_timestamp(option.substr(8));
        if (!t.expires) throw ConfigError("API token expiry \"" + option.substr(8) + "\" is not an RFC 3339 time");
      } else if (option.rfind("scope=", 0) == 0 && !seen_scope) {
        seen_scope = true;
        const std::string scope = option.substr(6);
        if (scope != "read" && scope != "write")
          throw ConfigError("API token scope must be read or write, got \"" + scope.substr(0, 64) + "\"");
        t.read_only = scope == "read";
      } else {
        throw ConfigError(
            "API token options are ;expires=<RFC 3339 time> and ;scope=read|write, each at most once; got \";" +
            option.substr(0, 64) + "\"");
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

struct Server::Impl {
  Impl(const std::string& database_url, ApiConfig c, std::shared_ptr<Metrics> m)
      : url(database_url),
        config(std::move(c)),
        metrics(m ? std::move(m) : std::make_shared<Metrics>()),
        client(database_url,
               ClientOptions{config.db_connections, "docket-api", true, config.statement_timeout, config.lock_timeout}),
        submitter(client, std::max(1, config.db_connections / 2)),  // the rest serve reads
        tokens(parse_tokens(config.tokens)),
        http(limits(config), handlers()),
        ready(database_url),
        pool(static_cast<std::size_t>(std::max(1, config.threads))) {}
  ~Impl() {
    http.stop();
    pool.join();
  }

  using Handler = std::function<void(const Request&, Response&)>;
  /// A route: the method, a pattern matched against the whole decoded path, the name metrics use.
  struct Route {
    std::string method;
    std::regex pattern;
    const char* name;
    Handler handler;
  };
  void route(const std::string& method, const std::string& pattern, const char* name, Handler handler);
  void routes();
  /// 200 with the kind's quota as it now stands (GET /limits row), also for a kind with no row.
  void write_limit(Response& res, const std::string& kind);
  /// The answer to a callback token holder's call (200 with the job, or 403/404/409/410).
  void answer_callback(Response& res, std::int64_t id, const CallbackResult& r, const std::string& peer, bool finish);
  static http::Limits limits(const ApiConfig& c);
  http::Handlers handlers();
  /// An answer to give before reading the body (auth, Host, Origin, Content-Type), or nullopt.
  std::optional<Response> check_head(const http::Message& head, const std::string& peer) const;
  /// A presented token: the configured one it is (its place in `tokens`), or none; or, while the
  /// client's address (or everyone) is over the failed-attempt limit, unchecked and `wait` > 0.
  struct TokenMatch {
    std::optional<std::size_t> token;
    std::chrono::seconds wait{0};
  };
  /// Compares `presented` with every token in constant time; a miss counts against `peer`.
  TokenMatch match_token(const std::string& presented, const std::string& peer) const;
  /// Who a request speaks for: a configured token (its place in `tokens`), or why none.
  struct Caller {
    std::optional<std::size_t> token;
    std::string why;
    std::chrono::seconds wait{0};  ///< > 0: refused unchecked, the address is over the failure limit
  };
  /// The caller by its bearer token, or by its dashboard session cookie (accepted only with the
  /// X-Docket-Dashboard header, which a cross-site form cannot send).
  Caller caller(const http::Message& head, const std::string& peer) const;
  /// An answer refusing the request (401 no or bad credentials, 403 a read-only token writing,
  /// 429 too many failed tokens from the address), or nullopt.
  std::optional<Response> auth_failure(const std::string& path, bool write, const http::Message& head,
                                       const std::string& peer) const;
  /// GET, POST and DELETE /session: the dashboard's sign-in.
  void session_routes();
  /// Host values this server answers to without tokens: the listen address and loopback names, with the port.
  bool allowed_host(const std::string& host) const;
  /// Runs the matching route on the handler pool (health inline, ready on its lane).
  void handle(Request req, std::function<void(Response)> done);
  Response run_route(Request& req);
  /// GET /jobs/{id}?wait=: parks the request on the watch (no thread, no pooled connection held)
  /// and answers when the job finishes or the wait ends.
  void await_job(const Request& req, const std::function<void(Response)>& done);
  /// The waits' watch, started by the first wait: its own connection, LISTENing on docket_finished.
  JobWatch& watch();
  std::vector<GaugeSample> database_gauges();
  /// GET /jobs/{id}?wait= requests parked now.
  GaugeSample waits_gauge();
  /// The schedule's status row, or a 404.
  Json found_schedule(const std::string& name);

  std::string url;
  ApiConfig config;
  std::shared_ptr<Metrics> metrics;
  Client client;
  Submitter submitter;
  std::vector<Token> tokens;
  mutable SessionStore sessions;
  /// Failed token attempts per client address and in all (brute-force guard).
  mutable AuthLimiter auth_limiter;
  std::vector<Route> table;
  std::string listen_host;
  int port = -1;
  // Destroyed in reverse order: the pools finish before the transport they answer through goes.
  http::HttpServer http;
  ReadyLane ready;
  net::thread_pool pool;
  std::mutex watch_mutex;  ///< guards job_watch's creation
  /// The job the last wait was answered with, and its body: the watch answers every waiter of a
  /// job in one go with one shared record, which is then formatted once, not once per waiter.
  /// A weak reference: the record's args and result are freed with the last waiter.
  std::mutex answered_mutex;
  std::weak_ptr<const JobRecord> answered_job;
  std::string answered_body;
  /// Last: destroyed first, so its pending waits are ended (503) while the transport still stands.
  std::unique_ptr<JobWatch> job_watch;
};

http::Limits Server::Impl::limits(const ApiConfig& c) {
  http::Limits l;
  l.max_header_bytes = c.max_header_bytes;
  l.max_body = c.max_body;
  l.header_timeout = c.header_timeout;
  l.body_timeout = c.body_timeout;
  l.idle_timeout = c.idle_timeout;
  l.max_connections = c.max_connections;
  return l;
}

http::Handlers Server::Impl::handlers() {
  http::Handlers h;
  h.check_head = [this](const http::Message& head, const std::string& peer) { return check_head(head, peer); };
  h.handle = [this](Request req, std::function<void(Response)> done) { handle(std::move(req), std::move(done)); };
  h.observe = [this](const std::string& method, const Response& res, double secs) {
    metrics->api_request(res.route, method, res.status, secs);
  };
  h.error = &error_response;
  return h;
}

void Server::Impl::route(const std::string& method, const std::string& pattern, const char* name, Handler handler) {
  table.push_back({method, std::regex(pattern), name, std::move(handler)});
}

Response Server::Impl::run_route(Request& req) {
  Response res;
  const std::string method = req.method();
  for (const auto& r : table) {
    std::smatch m;
    if (r.method != method || !std::regex_match(req.path, m, r.pattern)) continue;
    for (std::size_t i = 1; i < m.size(); ++i) req.groups.push_back(m[i].str());
    res.route = r.name;
    try {
      r.handler(req, res);
    } catch (const ApiError& e) {
      write_error(res, e.status(), e.code(), e.what());
    } catch (const TooLarge& e) {
      write_error(res, 413, "payload_too_large", e.what());
    } catch (const InvalidInput& e) {
      write_error(res, 422, "unprocessable", e.what());
    } catch (const NotFound& e) {
      write_error(res, 404, "not_found", e.what());
    } catch (const Conflict& e) {
      write_error(res, 409, "conflict", e.what());
    } catch (const Timeout& e) {
      write_error(res, 503, "timeout", e.what());
    } catch (const Unavailable& e) {
      write_error(res, 503, "unavailable", e.what());
    } catch (const SchemaMismatch& e) {
      write_error(res, 503, "schema_mismatch", e.what());
    } catch (const std::exception& e) {
      write_error(res, 500, "internal", e.what());
    }
    return res;
  }
  write_error(res, 404, "route_not_found", "no route " + method + " " + req.path + "; see GET /openapi.json");
  return res;
}

void Server::Impl::handle(Request req, std::function<void(Response)> done) {
  const bool get = req.method() == "GET";
  if (get && req.path == "/health") {
    // Liveness: answered on the I/O thread, needing neither the handler pool nor the database.
    Response res;
    res.route = "/health";
    write_json(res, 200, Json{{"status", "ok"}, {"schema_version", known_schema_version()}});
    return done(std::move(res));
  }
  if (get && req.path == "/ready") return ready.check(std::move(done));
  static const std::regex job_path(R"(/jobs/(\d{1,18}))");
  if (get && req.params.contains("wait") && std::regex_match(req.path, job_path)) return await_job(req, done);
  net::post(pool, [this, req = std::move(req), done = std::move(done)]() mutable { done(run_route(req)); });
}

GaugeSample Server::Impl::waits_gauge() {
  std::size_t n = 0;
  {
    std::lock_guard lock(watch_mutex);
    if (job_watch) n = job_watch->waiting();
  }
  return {"docket_api_waits", "GET /jobs/{id}?wait= requests waiting for their job to finish", {}, double(n)};
}

JobWatch& Server::Impl::watch() {
  std::lock_guard lock(watch_mutex);
  if (!job_watch) job_watch = std::make_unique<JobWatch>(url, config.listen_url, config.statement_timeout);
  return *job_watch;
}

void Server::Impl::await_job(const Request& req, const std::function<void(Response)>& done) {
  auto answer = [done](Response res) {
    res.route = "/jobs/{id}";
    done(std::move(res));
  };
  Response res;
  try {
    const std::int64_t id = std::stoll(req.path.substr(std::string("/jobs/").size()));
    const auto wait = parse_wait(req.params);
    watch().wait(id, *wait,
                 [this, answer, id](const std::shared_ptr<const JobRecord>& job, const std::exception_ptr& error) {
                   Response out;
                   try {
                     if (error) std::rethrow_exception(error);
                     if (!job) throw NotFound("no job with id " + std::to_string(id));
                     out.status = 200;
                     out.content_type = "application/json";
                     {
                       std::lock_guard lock(answered_mutex);
                       if (answered_job.lock() != job) {  // a live record is the only one at its address
                         answered_body = json_text(Json(*job));
                         answered_job = job;
                       }
                       out.body = answered_body;
                     }
                     // Whether the job finished or the wait ran out: the body is the job either way.
                     out.headers.emplace_back("Docket-Wait", is_finished(job->state) ? "finished" : "timeout");
                   } catch (const NotFound& e) {
                     write_error(out, 404, "not_found", e.what());
                   } catch (const Timeout& e) {
                     write_error(out, 503, "timeout", e.what());
                   } catch (const std::exception& e) {
                     write_error(out, 503, "unavailable", e.what());
                   }
                   answer(std::move(out));
                 });
    return;
  } catch (const ApiError& e) {
    write_error(res, e.status(), e.code(), e.what());
  } catch (const Unavailable& e) {
    write_error(res, 503, "unavailable", e.what());
  } catch (const std::exception& e) {
    write_error(res, 500, "internal", e.what());
  }
  answer(std::move(res));
}

bool Server::Impl::allowed_host(const std::string& host) const {
  const std::string p = ":" + std::to_string(port);
  const std::string h = lower(host);
  const std::string own = listen_host.find(':') != std::string::npos ? "[" + listen_host + "]" : listen_host;
  return h == lower(own) + p || h == "localhost" + p || h == "127.0.0.1" + p || h == "[::1]" + p;
}

std::optional<Response> Server::Impl::check_head(const http::Message& head, const std::string& peer) const {
  std::string path;
  std::multimap<std::string, std::string> ignored;
  http::split_target(std::string(head.target()), path, ignored);
  const std::string method(head.method_string());
  const bool write = method != "GET" && method != "HEAD" && method != "OPTIONS";
  const auto field = [&head](const char* name) {
    const auto it = head.find(name);
    return it == head.end() ? std::string() : std::string(it->value());
  };
  const std::string host = field("Host");
  auto refuse = [](int status, const char* code, const char* route, const std::string& message) {
    Response res = error_response(status, code, message);
    res.route = route;
    return std::optional<Response>(std::move(res));
  };
  // Without tokens the only guard is the loopback address: a browser page on another site must
  // not reach it by DNS rebinding (foreign Host) or by a cross-site form or fetch (foreign Origin).
  if (tokens.empty() && !allowed_host(host)) {
    return refuse(421, "misdirected_request", "refused",
                  "Host \"" + host + "\" is not this server's address; without API tokens only localhost:" +
                      std::to_string(port) + " (or 127.0.0.1, [::1]) is answered");
  }
  if (auto refused = auth_failure(path, write, head, peer)) return refused;
  const std::string origin = lower(field("Origin"));
  if (write && !origin.empty() && origin != "http://" + lower(host) && origin != "https://" + lower(host)) {
    return refuse(403, "forbidden_origin", "refused",
                  "cross-origin writes are refused (Origin \"" + field("Origin") + "\" is not this server)");
  }
  const bool has_body = head.chunked() || (head.has_content_length() && field("Content-Length") != "0");
  if (tokens.empty() && write && has_body) {
    const std::string type = lower(field("Content-Type"));
    std::string media = type.substr(0, type.find(';'));
    media.erase(0, std::min(media.size(), media.find_first_not_of(" \t")));
    media.erase(media.find_last_not_of(" \t") + 1);
    if (media != "application/json") {
      return refuse(415, "unsupported_media_type", "refused",
                    "a request body must be sent as Content-Type: application/json");
    }
  }
  return std::nullopt;
}

Server::Impl::TokenMatch Server::Impl::match_token(const std::string& presented, const std::string& peer) const {
  const std::string key = limiter_key(peer);
  if (const auto wait = auth_limiter.retry_after(key); wait.count() > 0) return {std::nullopt, wait};
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (constant_time_equal(presented, tokens[i].secret)) found = i;  // no early exit: same time for each
  }
  if (!found) {
    auth_limiter.failed(key);
    spdlog::warn("api.token_refused peer={}", peer);
  }
  return {found, std::chrono::seconds{0}};
}

Server::Impl::Caller Server::Impl::caller(const http::Message& head, const std::string& peer) const {
  const auto auth = head.find("Authorization");
  if (auth == head.end()) {
    const auto cookie = head.find("Cookie");
    const std::string id =
        cookie == head.end() ? std::string() : cookie_value(std::string(cookie->value()), kSessionCookie);
    if (id.empty()) return {std::nullopt, "missing Authorization: Bearer <token>"};
    if (head.find(kDashboardHeader) == head.end())
      return {std::nullopt, std::string("a session cookie is accepted only with the ") + kDashboardHeader +
                                " header the dashboard sends (a cross-site request cannot send it)"};
    const auto token = sessions.find(id);
    if (!token || *token >= tokens.size()) return {std::nullopt, "the session has ended; sign in again"};
    if (tokens[*token].expires && Clock::now() >= *tokens[*token].expires)
      return {std::nullopt, "this token has expired"};
    return {token, {}};
  }
  const std::string header(auth->value());
  const auto space = header.find(' ');
  // RFC 7235: the scheme is case-insensitive.
  if (space == std::string::npos || lower(header.substr(0, space)) != "bearer")
    return {std::nullopt, "the Authorization header must be: Bearer <token>"};
  const auto begin = header.find_first_not_of(' ', space);
  const std::string presented = begin == std::string::npos ? std::string() : header.substr(begin);
  const TokenMatch m = match_token(presented, peer);
  if (m.wait.count() > 0) return {std::nullopt, {}, m.wait};
  if (!m.token) return {std::nullopt, "invalid token"};
  if (tokens[*m.token].expires && Clock::now() >= *tokens[*m.token].expires)
    return {std::nullopt, "this token has expired"};
  return {m.token, {}};
}

std::optional<Response> Server::Impl::auth_failure(const std::string& path, bool write, const http::Message& head,
                                                   const std::string& peer) const {
  if (tokens.empty()) return std::nullopt;  // loopback only, enforced at bind
  if (path == "/health" || path == "/ready" || path == "/session") return std::nullopt;
  if (write && callback_path(path)) return std::nullopt;  // the route checks the job's callback token
  if (path == "/metrics" && !config.metrics_auth) return std::nullopt;
  if (!write && dashboard_asset(path)) return std::nullopt;  // the page itself holds no data
  const Caller c = caller(head, peer);
  if (c.wait.count() > 0) return too_many_failures(c.wait);
  if (!c.token) {
    Response res = error_response(401, "unauthorized", c.why);
    res.route = "auth";
    res.headers.emplace_back("WWW-Authenticate", "Bearer");
    return res;
  }
  if (write && tokens[*c.token].read_only) {
    Response res = error_response(403, "forbidden_scope", "this token's scope is read: it can see, not change");
    res.route = "auth";
    return res;
  }
  return std::nullopt;
}

std::vector<GaugeSample> Server::Impl::database_gauges() {
  std::vector<GaugeSample> g;
  try {
    for (const auto& [queue, state, n] : client.queue_states()) {
      g.push_back({"docket_jobs", "Jobs by queue and state", {{"queue", queue}, {"state", state}}, double(n)});
    }
    for (const auto& k : client.limits()) {
      g.push_back({"docket_kind_running", "Running jobs per kind", {{"kind", k.kind}}, double(k.running)});
      if (k.max_running) {
        g.push_back({"docket_kind_max_running",
                     "The kind's global quota (docket.set_limit)",
                     {{"kind", k.kind}},
                     double(*k.max_running)});
      }
      g.push_back({"docket_kind_at_limit",
                   "1 when a limit of the kind (or of one of its keys) holds jobs back now",
                   {{"kind", k.kind}},
                   k.at_limit ? 1.0 : 0.0});
      if (k.rate_tokens) {
        g.push_back({"docket_kind_rate_tokens",
                     "Starts the kind's rate allows right now (its bucket)",
                     {{"kind", k.kind}},
                     *k.rate_tokens});
        g.push_back({"docket_kind_rate_burst", "The kind's bucket size", {{"kind", k.kind}}, k.rate_burst.value_or(0)});
      }
      if (!k.partition) continue;
      if (k.max_running_per_key) {
        g.push_back({"docket_kind_max_running_per_key",
                     "Most running jobs of one key (docket.set_partition)",
                     {{"kind", k.kind}},
                     double(*k.max_running_per_key)});
      }
      g.push_back({"docket_kind_max_key_running",
                   "Running jobs of the kind's busiest key",
                   {{"kind", k.kind}},
                   double(k.max_key_running)});
      g.push_back({"docket_kind_keys_at_limit",
                   "Keys a per-key limit holds back now",
                   {{"kind", k.kind}},
                   double(k.keys_at_limit)});
      // The busiest keys only: a top N keeps the label count bounded however many keys there are.
      for (const auto& key : client.hot_keys(k.kind, kHotKeys)) {
        const std::map<std::string, std::string> where{{"kind", k.kind}, {"key", key.key}};
        g.push_back({"docket_key_running", "Running jobs of one of a kind's busiest keys", where, double(key.running)});
        g.push_back({"docket_key_held_back", "Waiting jobs of a busy key at its limit (counted up to 100000)", where,
                     key.at_limit ? double(key.available) : 0.0});
      }
    }
    for (const auto& q : client.queues()) {
      g.push_back({"docket_queue_paused", "1 when the queue is paused", {{"queue", q.queue}}, q.paused ? 1.0 : 0.0});
      g.push_back({"docket_queue_oldest_available_age_seconds",
                   "Age of the oldest job waiting to run",
                   {{"queue", q.queue}},
                   q.oldest_available_age_s.value_or(0)});
    }
    const Json stats = client.stats();
    for (const auto& u : stats.at("unserved")) {
      const std::map<std::string, std::string> where{{"kind", u.at("kind")}, {"queue", u.at("queue")}};
      g.push_back({"docket_unserved_jobs", "Waiting jobs no live worker can run (docket.unserved_jobs)", where,
                   u.at("jobs").get<double>()});
      g.push_back({"docket_unserved_oldest_due_age_seconds", "How long the oldest due unserved job has waited", where,
                   u.value("oldest_due_age_s", Json()).is_number() ? u.at("oldest_due_age_s").get<double>() : 0});
    }
    // Per kind over the last hour (docket.kind_stats): the same figures as docket stats.
    for (const auto& k : stats.at("kinds")) {
      const std::map<std::string, std::string> kind{{"kind", k.at("kind")}};
      g.push_back(
          {"docket_kind_completed_1h", "Jobs completed in the last hour", kind, k.at("completed_1h").get<double>()});
      g.push_back({"docket_kind_failed_1h", "Jobs failed in the last hour", kind, k.at("failed_1h").get<double>()});
      for (const char* figure : {"run_p50", "run_p95", "wait_p50", "wait_p95"}) {
        const Json& ms = k.value(std::string(figure) + "_ms", Json());
        if (!ms.is_number()) continue;
        g.push_back({std::string("docket_kind_") + figure + "_seconds",
                     std::string(figure[0] == 'r' ? "Run" : "Wait") + " time percentile over the last hour", kind,
                     ms.get<double>() / 1000.0});
      }
    }
    for (auto& s : schedule_gauges(client)) g.push_back(std::move(s));
    g.push_back({"docket_database_up", "1 when the database answered this scrape", {}, 1});
    g.push_back(waits_gauge());
  } catch (const std::exception&) {
    g.clear();
    g.push_back({"docket_database_up", "1 when the database answered this scrape", {}, 0});
    g.push_back(waits_gauge());
  }
  return g;
}

void Server::Impl::answer_callback(Response& res, std::int64_t id, const CallbackResult& r, const std::string& peer,
                                   bool finish) {
  const std::string job = "job " + std::to_string(id);
  switch (r.answer) {
    case CallbackAnswer::applied: {
      log::info(finish ? "job.callback_outcome" : "job.callback_progress",
                {{"job_id", id}, {"state", r.state}, {"peer", peer}});
      const auto record = client.job(id);
      if (!record) throw NotFound("no job with id " + std::to_string(id));
      return write_json(res, 200, Json(*record));
    }
    case CallbackAnswer::unknown_job:
      throw NotFound("no job with id " + std::to_string(id));
    case CallbackAnswer::bad_token:
      auth_limiter.failed(limiter_key(peer));
      log::warn("api.callback_token_refused", {{"job_id", id}, {"peer", peer}});
      throw ApiError(403, "forbidden", "this is not " + job + "'s current callback token");
    case CallbackAnswer::finished:
      throw ApiError(410, "gone", job + " already finished; its callback token is spent");
    case CallbackAnswer::stale:
      throw ApiError(409, "conflict",
                     "the run of " + job + " this token was sent to is over (its deadline passed, or it was retried)");
  }
}

void Server::Impl::write_limit(Response& res, const std::string& kind) {
  for (const auto& k : client.limits()) {
    if (k.kind == kind) return write_json(res, 200, Json(k));
  }
  write_json(res, 200, Json(KindLimit{.kind = kind}));
}

Json Server::Impl::found_schedule(const std::string& name) {
  auto row = client.find_schedule(name);
  if (!row) throw NotFound("no schedule named " + name);
  return std::move(*row);
}

void Server::Impl::routes() {
  // jobs ---------------------------------------------------------------------------------------
  route("POST", "/jobs", "/jobs", [this](const Request& req, Response& res) {
    std::optional<std::string> idem;
    if (req.message.find("Idempotency-Key") != req.message.end()) idem = req.header("Idempotency-Key");
    const EnqueueRequest r = parse_enqueue(req.message.body(), idem);
    const Submitted s = submitter.submit(r);
    res.headers.emplace_back("Location", "/jobs/" + std::to_string(s.job.id));
    Json body(s.job);
    // The job is in, but no live worker would run it (a typo'd kind, a queue nobody claims).
    if (s.warning) body["warnings"] = Json::array({*s.warning});
    write_json(res, s.created ? 201 : 200, body);
  });
  route("GET", "/jobs", "/jobs", [this](const Request& req, Response& res) {
    const JobFilter f = parse_job_filter(req.params, config.max_list_limit);
    write_page(res, "jobs", client.jobs(f), f.limit, config.max_response);
  });
  route("GET", R"(/jobs/(\d{1,18}))", "/jobs/{id}", [this](const Request& req, Response& res) {
    const auto id = path_id(req);
    const auto job = client.job(id);
    if (!job) throw NotFound("no job with id " + std::to_string(id));
    write_json(res, 200, Json(*job));
  });
  route("POST", R"(/jobs/(\d{1,18})/cancel)", "/jobs/{id}/cancel", [this](const Request& req, Response& res) {
    const auto id = path_id(req);
    const auto r = client.cancel(id);
    if (r == CancelResult::already_finished) {
      const auto job = client.job(id);
      throw ApiError(409, "conflict",
                     "job " + std::to_string(id) + " already finished (" +
                         (job ? std::string(to_string(job->state)) : "gone") + "); nothing to cancel");
    }
    const auto job = client.job(id);
    if (!job) throw NotFound("no job with id " + std::to_string(id));
    // 202: a running job is asked to stop; its worker records `cancelled` shortly.
    write_json(res, r == CancelResult::cancel_requested ? 202 : 200, Json(*job));
  });
  // Callbacks: authenticated by the job's callback token only, never by the API's tokens (the
  // endpoint of a url kind holds no API token). Wrong tokens count against the address like
  // wrong API tokens.
  for (const bool finish : {false, true}) {
    route("POST", finish ? R"(/jobs/(\d{1,18})/outcome)" : R"(/jobs/(\d{1,18})/progress)",
          finish ? "/jobs/{id}/outcome" : "/jobs/{id}/progress", [this, finish](const Request& req, Response& res) {
            const auto id = path_id(req);
            const std::string key = limiter_key(req.peer);
            if (const auto wait = auth_limiter.retry_after(key); wait.count() > 0) {
              res = too_many_failures(wait);
              return;
            }
            const std::string token = req.header(kCallbackTokenHeader);
            if (token.empty()) {
              throw ApiError(
                  401, "unauthorized",
                  std::string("missing ") + kCallbackTokenHeader + ": the token the job's endpoint was sent");
            }
            const Json body = parse_object(req.message.body());
            CallbackResult r;
            if (finish) {
              r = client.callback_outcome(id, token, body);
            } else {
              if (body.size() != 1 || !body.contains("progress")) {
                throw bad_request("the body must be {\"progress\": any JSON}");
              }
              r = client.callback_progress(id, token, body.at("progress"));
            }
            answer_callback(res, id, r, req.peer, finish);
          });
  }
  route("POST", R"(/jobs/(\d{1,18})/retry)", "/jobs/{id}/retry", [this](const Request& req, Response& res) {
    const auto id = path_id(req);
    client.retry(id);
    const auto job = client.job(id);
    if (!job) throw NotFound("no job with id " + std::to_string(id));
    write_json(res, 200, Json(*job));
  });

  // queues and limits ----------------------------------------------------------------------------
  route("GET", "/queues", "/queues", [this](const Request&, Response& res) {
    Json out = Json::array();
    std::map<std::string, Json> states;
    for (const auto& [queue, state, n] : client.queue_states()) states[queue][state] = n;
    for (const auto& q : client.queues()) {
      Json item = q;
      Json counts = Json::object();
      for (const auto& s : job_state_names()) counts[s] = 0;
      if (states.contains(q.queue)) counts.update(states[q.queue]);
      item["states"] = counts;
      out.push_back(std::move(item));
    }
    write_json(res, 200, Json{{"queues", out}, {"unserved", client.unserved()}});
  });
  for (const bool pause : {true, false}) {
    route("POST", pause ? R"(/queues/([^/]+)/pause)" : R"(/queues/([^/]+)/resume)",
          pause ? "/queues/{queue}/pause" : "/queues/{queue}/resume", [this, pause](const Request& req, Response& res) {
            const std::string queue = req.groups.at(0);
            if (pause) {
              client.pause(queue);
            } else {
              client.resume(queue);
            }
            write_json(res, 200, Json{{"queue", queue}, {"paused", pause}});
          });
  }
  route("GET", "/limits", "/limits", [this](const Request&, Response& res) {
    write_json(res, 200, Json{{"limits", client.limits()}});
  });
  route("PUT", R"(/limits/([^/]+))", "/limits/{kind}", [this](const Request& req, Response& res) {
    const std::string kind = req.groups.at(0);
    const auto change = parse_limit(req.message.body());
    // The keyed limits are checked before anything is written, and the rate goes first: it has
    // the other checks that can refuse (docket.parse_rate), so a refused request changes nothing.
    if (change.keyed) client.check_partition(*change.keyed);
    if (change.rate) {
      client.set_rate(kind, *change.rate, change.burst);
      log::info("kind.rate_changed", {{"kind", kind},
                                      {"rate", *change.rate ? **change.rate : std::string("none")},
                                      {"burst", change.burst ? std::to_string(*change.burst) : std::string("default")},
                                      {"source", "operator"}});
    }
    if (change.max_running) {
      const std::optional<int> limit = *change.max_running;
      client.set_limit(kind, limit);
      log::info("kind.limit_changed", {{"kind", kind},
                                       {"max_running", limit ? std::to_string(*limit) : std::string("none")},
                                       {"source", "operator"}});
    }
    if (change.keyed) {
      client.set_partition(kind, *change.keyed);
      const auto& k = *change.keyed;
      log::info("kind.partition_changed",
                {{"kind", kind},
                 {"partition", k.partition.value_or("none")},
                 {"max_running_per_key", k.max_running_per_key ? std::to_string(*k.max_running_per_key) : "none"},
                 {"rate_per_key", k.rate_per_key.value_or("none")},
                 {"source", "operator"}});
    }
    write_limit(res, kind);
  });
  route("GET", R"(/limits/([^/]+)/keys)", "/limits/{kind}/keys", [this](const Request& req, Response& res) {
    int top = 20;
    for (const auto& [name, value] : req.params) {
      if (name != "top") throw InvalidInput("unknown parameter \"" + name.substr(0, 32) + "\"; use top");
      try {
        std::size_t used = 0;
        top = std::stoi(value, &used);
        if (used != value.size() || top < 1 || top > 1000) throw std::invalid_argument(value);
      } catch (const std::exception&) {
        throw InvalidInput("top must be a number 1-1000, got \"" + value.substr(0, 32) + "\"");
      }
    }
    const std::string kind = req.groups.at(0);
    write_json(res, 200, Json{{"kind", kind}, {"keys", client.hot_keys(kind, top)}});
  });
  route("DELETE", R"(/limits/([^/]+))", "/limits/{kind}", [this](const Request& req, Response& res) {
    const std::string kind = req.groups.at(0);
    if (client.reset_limit(kind)) {
      log::info("kind.limit_reset", {{"kind", kind}, {"source", "operator"}});
    }
    write_limit(res, kind);
  });

  route("POST", R"(/kinds/([^/]+)/retry_failed)", "/kinds/{kind}/retry_failed",
        [this](const Request& req, Response& res) {
          // One batch per request, so each answers within the statement budget; the caller repeats
          // with `after` = next until next is null (the dashboard does).
          std::optional<std::string> after;
          int limit = 500;
          for (const auto& [name, value] : req.params) {
            if (name == "after") {
              after = value;
            } else if (name == "limit") {
              try {
                std::size_t used = 0;
                limit = std::stoi(value, &used);
                if (used != value.size()) throw std::invalid_argument(value);
              } catch (const std::exception&) {
                throw InvalidInput("limit must be a number 1-1000, got \"" + value.substr(0, 32) + "\"");
              }
            } else {
              throw InvalidInput("unknown parameter \"" + name.substr(0, 64) + "\"; use after, limit");
            }
          }
          const RetryBatch b = client.retry_failed(req.groups.at(0), after, limit);
          write_json(res, 200,
                     Json{{"kind", req.groups.at(0)},
                          {"retried", b.retried},
                          {"skipped", b.skipped},
                          {"next", b.next ? Json(*b.next) : Json(nullptr)}});
        });

  // stats ---------------------------------------------------------------------
  route("GET", "/stats", "/stats", [this](const Request&, Response& res) { write_json(res, 200, client.stats()); });
  route("GET", "/stats/throughput", "/stats/throughput", [this](const Request&, Response& res) {
    write_json(res, 200, Json{{"throughput", client.throughput()}});
  });

  // crawls ------------------------------------------------------------------------------------------
  route("GET", "/crawls", "/crawls", [this](const Request& req, Response& res) {
    const CrawlFilter f = parse_crawl_filter(req.params, config.max_list_limit);
    write_page(res, "crawls", client.crawls(f), f.limit, config.max_response);
  });
  route("GET", R"(/crawls/(\d{1,18}))", "/crawls/{id}", [this](const Request& req, Response& res) {
    const auto id = path_id(req);
    const auto crawl = client.crawl(id);
    if (!crawl) throw NotFound("no crawl with id " + std::to_string(id));
    write_json(res, 200, Json(*crawl));
  });

  // dashboard ----------------------------------------------------------------------------------------
  route("GET", R"(/|/index\.html|/dashboard/[a-z]+\.(js|css))", "/dashboard", [](const Request& req, Response& res) {
    const auto asset = dashboard_asset(req.path);
    if (!asset) throw ApiError(404, "not_found", "no dashboard file " + req.path.substr(0, 64));
    res.status = 200;
    res.content_type = asset->content_type;
    res.body = *asset->body;
    res.headers = dashboard_headers();
  });
  session_routes();

  // schedules -----------------------------------------------------------------------------------
  // A name is any printable text, "/" included: the path after /schedules/ is the name, decoded.
  route("GET", "/schedules", "/schedules", [this](const Request& req, Response& res) {
    const ScheduleFilter f = parse_schedule_filter(req.params, config.max_list_limit);
    write_page(res, "schedules", client.schedules(f.limit, f.after), f.limit, config.max_response,
               [](const Json& row) { return row.at("name"); });
  });
  route("GET", R"(/schedules/([\s\S]+))", "/schedules/{name}", [this](const Request& req, Response& res) {
    write_json(res, 200, found_schedule(schedule_name(req.groups.at(0))));
  });
  route("PUT", R"(/schedules/([\s\S]+))", "/schedules/{name}", [this](const Request& req, Response& res) {
    const ScheduleSpec spec = parse_schedule(req.groups.at(0), req.message.body());
    const Json row = client.schedule(spec);
    // Both stamps are the transaction's now() only when this request inserted the row.
    const bool created = row.at("created_at") == row.at("updated_at");
    if (created) res.headers.emplace_back("Location", "/schedules/" + url_encode(spec.name));
    write_json(res, created ? 201 : 200, found_schedule(spec.name));
  });
  route("DELETE", R"(/schedules/([\s\S]+))", "/schedules/{name}", [this](const Request& req, Response& res) {
    const std::string name = schedule_name(req.groups.at(0));
    if (!client.unschedule(name)) throw NotFound("no schedule named " + name);
    write_json(res, 200, Json{{"name", name}, {"deleted", true}});
  });
  route("POST", R"(/schedules/([\s\S]+)/run)", "/schedules/{name}/run", [this](const Request& req, Response& res) {
    const std::string name = schedule_name(req.groups.at(0));
    const auto id = client.run_schedule_now(name);
    if (!id) {
      throw ApiError(409, "conflict",
                     "schedule " + name + ": its kind's unique job is still unfinished; nothing enqueued");
    }
    const auto job = client.job(*id);
    if (!job) throw NotFound("job " + std::to_string(*id) + " of schedule " + name + " is gone");
    res.headers.emplace_back("Location", "/jobs/" + std::to_string(*id));
    write_json(res, 201, Json(*job));
  });
  for (const bool pause : {true, false}) {
    route("POST", pause ? R"(/schedules/([\s\S]+)/pause)" : R"(/schedules/([\s\S]+)/resume)",
          pause ? "/schedules/{name}/pause" : "/schedules/{name}/resume",
          [this, pause](const Request& req, Response& res) {
            const std::string name = schedule_name(req.groups.at(0));
            if (pause) {
              client.pause_schedule(name);
            } else {
              client.resume_schedule(name);
            }
            write_json(res, 200, found_schedule(name));
          });
  }

  // operations -------------------------------------------------------------------------------------
  route("GET", "/metrics", "/metrics", [this](const Request&, Response& res) {
    res.status = 200;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = metrics->render(database_gauges());
  });
  route("GET", "/openapi.json", "/openapi.json", [](const Request&, Response& res) {
    res.status = 200;
    res.body = openapi_document();
  });
}

void Server::Impl::session_routes() {
  auto scope_of = [this](const std::optional<std::size_t>& token) {
    return tokens.empty() ? Json("write") : token ? Json(tokens[*token].read_only ? "read" : "write") : Json(nullptr);
  };
  route("GET", "/session", "/session", [this, scope_of](const Request& req, Response& res) {
    const Caller c = tokens.empty() ? Caller{} : caller(req.message, req.peer);
    if (c.wait.count() > 0) {
      res = too_many_failures(c.wait);
      return;
    }
    const bool in = tokens.empty() || c.token.has_value();
    write_json(res, 200, Json{{"auth_required", !tokens.empty()}, {"signed_in", in}, {"scope", scope_of(c.token)}});
  });
  route("POST", "/session", "/session", [this, scope_of](const Request& req, Response& res) {
    if (tokens.empty()) throw ApiError(409, "conflict", "no API tokens are configured: nothing to sign in to");
    const Json body = parse_json(req.message.body(), "the sign-in body");
    if (!body.is_object() || body.size() != 1 || !body.contains("token") || !body.at("token").is_string())
      throw ApiError(400, "bad_request", "the sign-in body must be {\"token\": \"<an API token>\"}");
    const TokenMatch m = match_token(body.at("token").get<std::string>(), req.peer);
    if (m.wait.count() > 0) {
      res = too_many_failures(m.wait);
      return;
    }
    const std::optional<std::size_t> found = m.token;
    if (!found) throw ApiError(401, "unauthorized", "invalid token");
    if (tokens[*found].expires && Clock::now() >= *tokens[*found].expires)
      throw ApiError(401, "unauthorized", "this token has expired");
    const std::string id = sessions.create(*found, tokens[*found].expires);
    // HttpOnly: no script reads it; SameSite=Strict: no other site's request carries it.
    res.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) + "=" + id +
                                               "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                               std::to_string(std::chrono::seconds(SessionStore::kLifetime).count()));
    spdlog::info("api.signed_in token={} scope={}", *found, tokens[*found].read_only ? "read" : "write");
    write_json(res, 200, Json{{"auth_required", true}, {"signed_in", true}, {"scope", scope_of(found)}});
  });
  route("DELETE", "/session", "/session", [this](const Request& req, Response& res) {
    sessions.erase(cookie_value(req.header("Cookie"), kSessionCookie));
    res.headers.emplace_back("Set-Cookie",
                             std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    write_json(res, 200, Json{{"auth_required", !tokens.empty()}, {"signed_in", tokens.empty()}});
  });
}

Server::Server(const std::string& database_url, ApiConfig config, std::shared_ptr<Metrics> metrics)
    : impl_(std::make_unique<Impl>(database_url, std::move(config), std::move(metrics))) {
  impl_->routes();
}

Server::~Server() = default;

void Server::bind(const std::string& listen) {
  const auto [host, port] = parse_listen(listen);
  if (impl_->tokens.empty() && !is_loopback(host)) {
    throw ConfigError(
        "refusing to listen on " + host +
        " without an API token: set api.tokens in the config or DOCKET_API_TOKENS, or listen on 127.0.0.1");
  }
  try {
    impl_->port = impl_->http.bind(host, port);
  } catch (const std::exception& e) {
    throw ConfigError("cannot listen on " + listen + ": " + e.what() +
                      " (is another process using the port? set api.listen or --listen)");
  }
  impl_->listen_host = host;
}

int Server::port() const {
  return impl_->port;
}

bool Server::run() {
  return impl_->http.run();
}

void Server::stop() {
  if (impl_) impl_->http.stop();
}

}  // namespace docket::api
