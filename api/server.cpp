#include "server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <httplib.h>
#include <chrono>

#include "docket/errors.hpp"
#include "docket/time.hpp"
#include "errors.hpp"
#include "requests.hpp"
#include "submitter.hpp"

namespace docket::api {

namespace {

using Request = httplib::Request;
using Response = httplib::Response;
using SteadyClock = std::chrono::steady_clock;

// Per-request bookkeeping for the access metrics: httplib serves a request on one thread.
thread_local SteadyClock::time_point t_started;
thread_local const char* t_route = "unmatched";

void write_json(Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

void write_error(Response& res, int status, const std::string& code, const std::string& message) {
  write_json(res, status, Json{{"error", {{"code", code}, {"message", message}}}});
}

const char* code_for_status(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 414:
      return "uri_too_long";
    case 422:
      return "unprocessable";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "error";
  }
}

/// Compares without leaking where the first difference is: every byte of the longer string is
/// read whatever the input.
bool constant_time_equal(const std::string& a, const std::string& b) {
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

/// A page of a list: {"<name>": [...], "next_after": the last id when the page is full, else null}.
template <class T>
void write_page(Response& res, const char* name, const std::vector<T>& rows, int limit) {
  Json body = {{name, rows}, {"next_after", nullptr}};
  if (!rows.empty() && static_cast<int>(rows.size()) == limit) body["next_after"] = rows.back().id;
  write_json(res, 200, body);
}

std::int64_t path_id(const Request& req) {
  try {
    return std::stoll(req.matches[1].str());
  } catch (...) {
    throw ApiError(404, "not_found", "no job with id " + req.matches[1].str());
  }
}

/// Widens httplib's listen backlog (compiled in as 5 in Debian's library): a burst of clients
/// connecting at once would otherwise see SYNs dropped and wait a second to retry.
void widen_backlog(int port) {
  for (int fd = 3; fd < 4096; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int bound = -1;
    if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (bound == port) ::listen(fd, 1024);
  }
}

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
    if (semi != std::string::npos) {
      const std::string rest = spec.substr(semi + 1);
      if (rest.rfind("expires=", 0) != 0) {
        throw ConfigError("API token options must be ;expires=<RFC 3339 time>, got \";" + rest + "\"");
      }
      t.expires = parse_timestamp(rest.substr(8));
      if (!t.expires) throw ConfigError("API token expiry \"" + rest.substr(8) + "\" is not an RFC 3339 time");
    }
    out.push_back(std::move(t));
  }
  return out;
}

struct Server::Impl {
  Impl(const std::string& url, ApiConfig c, std::shared_ptr<Metrics> m)
      : config(std::move(c)),
        metrics(m ? std::move(m) : std::make_shared<Metrics>()),
        client(url, ClientOptions{config.db_connections, "docket-api", true, config.statement_timeout,
                                  config.lock_timeout}),
        submitter(client, std::max(1, config.db_connections / 2)),  // the rest serve reads
        tokens(parse_tokens(config.tokens)) {}

  using Handler = std::function<void(const Request&, Response&)>;
  void route(const std::string& method, const std::string& pattern, const char* name, Handler handler);
  void routes();
  /// nullopt when the request may proceed; else the 401 message.
  std::optional<std::string> auth_failure(const Request& req) const;
  std::vector<GaugeSample> database_gauges();

  ApiConfig config;
  std::shared_ptr<Metrics> metrics;
  Client client;
  Submitter submitter;
  std::vector<Token> tokens;
  httplib::Server server;
  int port = -1;
};

void Server::Impl::route(const std::string& method, const std::string& pattern, const char* name, Handler handler) {
  auto wrapped = [name, handler = std::move(handler)](const Request& req, Response& res) {
    t_route = name;
    try {
      handler(req, res);
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
  };
  if (method == "GET") server.Get(pattern, wrapped);
  if (method == "POST") server.Post(pattern, wrapped);
  if (method == "PUT") server.Put(pattern, wrapped);
}

std::optional<std::string> Server::Impl::auth_failure(const Request& req) const {
  if (tokens.empty()) return std::nullopt;  // loopback only, enforced at bind
  if (req.path == "/health") return std::nullopt;
  if (req.path == "/metrics" && !config.metrics_auth) return std::nullopt;
  const std::string header = req.get_header_value("Authorization");
  if (header.empty()) return "missing Authorization: Bearer <token>";
  if (header.rfind("Bearer ", 0) != 0) return "the Authorization header must be: Bearer <token>";
  const std::string presented = header.substr(7);
  for (const auto& t : tokens) {
    if (constant_time_equal(presented, t.secret)) {
      if (t.expires && Clock::now() >= *t.expires) return "this token has expired";
      return std::nullopt;
    }
  }
  return "invalid token";
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
    }
    for (const auto& q : client.queues()) {
      g.push_back({"docket_queue_paused", "1 when the queue is paused", {{"queue", q.queue}}, q.paused ? 1.0 : 0.0});
      g.push_back({"docket_queue_oldest_available_age_seconds",
                   "Age of the oldest job waiting to run",
                   {{"queue", q.queue}},
                   q.oldest_available_age_s.value_or(0)});
    }
    g.push_back({"docket_database_up", "1 when the database answered this scrape", {}, 1});
  } catch (const std::exception&) {
    g.clear();
    g.push_back({"docket_database_up", "1 when the database answered this scrape", {}, 0});
  }
  return g;
}

void Server::Impl::routes() {
  // jobs ---------------------------------------------------------------------------------------
  route("POST", "/jobs", "/jobs", [this](const Request& req, Response& res) {
    std::optional<std::string> idem;
    if (req.has_header("Idempotency-Key")) idem = req.get_header_value("Idempotency-Key");
    const EnqueueRequest r = parse_enqueue(req.body, idem);
    const Submitted s = submitter.submit(r);
    res.set_header("Location", "/jobs/" + std::to_string(s.job.id));
    write_json(res, s.created ? 201 : 200, Json(s.job));
  });
  route("GET", "/jobs", "/jobs", [this](const Request& req, Response& res) {
    const JobFilter f = parse_job_filter(req.params, config.max_list_limit);
    write_page(res, "jobs", client.jobs(f), f.limit);
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
    write_json(res, 200, Json{{"queues", out}});
  });
  for (const bool pause : {true, false}) {
    route("POST", pause ? R"(/queues/([^/]+)/pause)" : R"(/queues/([^/]+)/resume)",
          pause ? "/queues/{queue}/pause" : "/queues/{queue}/resume", [this, pause](const Request& req, Response& res) {
            const std::string queue = req.matches[1].str();
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
    const std::string kind = req.matches[1].str();
    const auto limit = parse_limit(req.body);
    client.set_limit(kind, limit);
    for (const auto& k : client.limits()) {
      if (k.kind == kind) return write_json(res, 200, Json(k));
    }
    write_json(res, 200, Json(KindLimit{kind, limit, 0, std::nullopt}));
  });

  // crawls ------------------------------------------------------------------------------------------
  route("GET", "/crawls", "/crawls", [this](const Request& req, Response& res) {
    const CrawlFilter f = parse_crawl_filter(req.params, config.max_list_limit);
    write_page(res, "crawls", client.crawls(f), f.limit);
  });
  route("GET", R"(/crawls/(\d{1,18}))", "/crawls/{id}", [this](const Request& req, Response& res) {
    const auto id = path_id(req);
    const auto crawl = client.crawl(id);
    if (!crawl) throw NotFound("no crawl with id " + std::to_string(id));
    write_json(res, 200, Json(*crawl));
  });

  // operations -------------------------------------------------------------------------------------
  route("GET", "/health", "/health", [this](const Request&, Response& res) {
    client.ping();
    write_json(res, 200, Json{{"status", "ok"}, {"database", "ok"}, {"schema_version", known_schema_version()}});
  });
  route("GET", "/metrics", "/metrics", [this](const Request&, Response& res) {
    res.status = 200;
    res.set_content(metrics->render(database_gauges()), "text/plain; version=0.0.4; charset=utf-8");
  });
  route("GET", "/openapi.json", "/openapi.json", [](const Request&, Response& res) {
    res.status = 200;
    res.set_content(openapi_document(), "application/json");
  });
}

Server::Server(const std::string& database_url, ApiConfig config, std::shared_ptr<Metrics> metrics)
    : impl_(std::make_unique<Impl>(database_url, std::move(config), std::move(metrics))) {
  auto& s = impl_->server;
  const int threads = impl_->config.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  s.set_payload_max_length(impl_->config.max_body);
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle holds the body until
  // the client's delayed ACK (40 ms) on every keep-alive request.
  s.set_tcp_nodelay(true);
  s.set_read_timeout(10, 0);
  s.set_write_timeout(10, 0);
  s.set_keep_alive_timeout(5);
  // A keep-alive connection holds a pool thread while it lasts; recycling it every 100 requests
  // lets connections beyond the pool size take turns instead of waiting seconds.
  s.set_keep_alive_max_count(100);
  s.set_pre_routing_handler([this](const Request& req, Response& res) {
    t_started = SteadyClock::now();
    t_route = "unmatched";
    // `curl -X POST url` sends neither Content-Length nor a chunked body, which the (compiled)
    // httplib rejects with a bare 400 when it reads the body, right after this hook. Such a
    // request has no body: say so. The Request is httplib's own mutable object, passed as const.
    if ((req.method == "POST" || req.method == "PUT") && !req.has_header("Content-Length") &&
        !req.has_header("Transfer-Encoding")) {
      const_cast<Request&>(req).headers.emplace("Content-Length", "0");
    }
    if (auto why = impl_->auth_failure(req)) {
      t_route = "auth";
      res.set_header("WWW-Authenticate", "Bearer");
      write_error(res, 401, "unauthorized", *why);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib produces itself (404 for unknown routes, 413 over the body cap, 400 for
  // unreadable requests) get the same JSON shape as ours. Our own errors already have a body.
  s.set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    switch (res.status) {
      case 404:
        message = "no route " + req.method + " " + req.path + "; see GET /openapi.json";
        break;
      case 413:
        message = "the request body is larger than the server accepts (api.max_body)";
        break;
      default:
        message = std::string("HTTP ") + std::to_string(res.status) + " " + code_for_status(res.status);
    }
    write_error(res, res.status, res.status == 404 ? "route_not_found" : code_for_status(res.status), message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_logger([this](const Request& req, const Response& res) {
    const double secs = std::chrono::duration<double>(SteadyClock::now() - t_started).count();
    impl_->metrics->api_request(t_route, req.method, res.status, secs);
  });
  impl_->routes();
}

Server::~Server() {
  stop();
}

void Server::bind(const std::string& listen) {
  const auto [host, port] = parse_listen(listen);
  if (impl_->tokens.empty() && !is_loopback(host)) {
    throw ConfigError(
        "refusing to listen on " + host +
        " without an API token: set api.tokens in the config or DOCKET_API_TOKENS, or listen on 127.0.0.1");
  }
  if (port == 0) {
    impl_->port = impl_->server.bind_to_any_port(host);
  } else {
    impl_->port = impl_->server.bind_to_port(host, port) ? port : -1;
  }
  if (impl_->port <= 0) {
    throw ConfigError("cannot listen on " + listen + ": " + std::strerror(errno) +
                      " (is another process using the port? set api.listen or --listen)");
  }
  widen_backlog(impl_->port);
}

int Server::port() const {
  return impl_->port;
}

bool Server::run() {
  return impl_->server.listen_after_bind();
}

void Server::stop() {
  if (impl_ && impl_->server.is_running()) impl_->server.stop();
}

}  // namespace docket::api
