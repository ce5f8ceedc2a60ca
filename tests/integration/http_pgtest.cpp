// The HTTP server as an attacker sees it: raw bytes over real sockets against a real database.
// Every case asserts the exact answer, what was (not) written, and that the server still answers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "docket/client.hpp"
#include "http_server.hpp"
#include "pg.hpp"
#include "server.hpp"

using namespace docket;
using docket::test::PgCluster;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr const char* kToken = "test-token-0123456789abcdef";

/// An API server on a free port over a fresh database, served on a thread.
class Served {
 public:
  explicit Served(ApiConfig config = {}) {
    db_ = PgCluster::shared().fresh_database();
    server_ = std::make_unique<api::Server>(db_->url(), config, std::make_shared<Metrics>());
    server_->bind("127.0.0.1:0");
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Served() {
    server_->stop();
    thread_.join();
  }
  int port() const { return server_->port(); }
  test::TestDatabase& db() { return *db_; }
  long long jobs() { return db_->count("SELECT count(*) FROM docket.jobs"); }
  long long paused() { return db_->count("SELECT count(*) FROM docket.queues WHERE paused_at IS NOT NULL"); }
  /// The status of GET `path`, or -1 when there was no answer.
  int get(const std::string& path) const {
    httplib::Client c("127.0.0.1", port());
    c.set_read_timeout(5, 0);
    auto r = c.Get(path.c_str());
    return r ? r->status : -1;
  }

 private:
  std::unique_ptr<test::TestDatabase> db_;
  std::unique_ptr<api::Server> server_;
  std::thread thread_;
};

/// A raw TCP connection to 127.0.0.1:port.
class Raw {
 public:
  explicit Raw(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Raw() { ::close(fd_); }
  bool connected() const { return connected_; }
  /// Sends all of `bytes`; false once the peer has closed.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  /// Reads until the peer closes or `wait` passes; `closed` tells which.
  std::string read_all(std::chrono::milliseconds wait, bool& closed) {
    std::string out;
    closed = false;
    const auto until = SteadyClock::now() + wait;
    char buf[65536];
    while (SteadyClock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()).count();
      if (::poll(&p, 1, static_cast<int>(std::max<long long>(left, 1))) <= 0) continue;
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed = true;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

int count_of(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

ApiConfig with_token() {
  ApiConfig c;
  c.tokens = {kToken};
  c.max_body = 64 * 1024;
  return c;
}

std::string host_of(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

/// A second request hidden in a body, its head left open so the next request's headers (a
/// victim's token included) would complete it.
std::string smuggled(int port) {
  return "POST /queues/default/pause HTTP/1.1\r\nHost: " + host_of(port) + "\r\nContent-Length: 0\r\nX-Swallow: ";
}

std::string victim(int port) {
  return "GET /queues HTTP/1.1\r\nHost: " + host_of(port) + "\r\nAuthorization: Bearer " + kToken + "\r\n\r\n";
}

/// Sends a victim's request after the attack on the same connection and checks that only the
/// attack's `status_line` came back, the connection closed, nothing was written, and the server lives.
void expect_victim_never_runs(Served& api, Raw& c, const std::string& status_line) {
  std::this_thread::sleep_for(200ms);
  c.send(victim(api.port()));
  bool closed = false;
  const std::string got = c.read_all(3s, closed);
  EXPECT_EQ(got.rfind(status_line, 0), 0u) << got;
  EXPECT_EQ(count_of(got, "HTTP/1.1 "), 1) << "only the early answer is given: " << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
  EXPECT_TRUE(closed) << "the connection closes after an early answer with an unread body";
  EXPECT_EQ(api.paused(), 0);
  EXPECT_EQ(api.jobs(), 0);
  EXPECT_EQ(api.get("/health"), 200);
}

long long vm_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

}  // namespace

TEST(HttpServer, UnauthenticatedBodyHidingARequestIsNeverRunWithAVictimsToken) {
  Served api(with_token());
  Raw c(api.port());
  ASSERT_TRUE(c.connected());
  // The body is padded so the hidden request starts at byte 4096, as in the reported attack.
  std::string body(4096, ' ');
  body += smuggled(api.port());
  c.send("POST /jobs HTTP/1.1\r\nHost: " + host_of(api.port()) + "\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  expect_victim_never_runs(api, c, "HTTP/1.1 401");
}

TEST(HttpServer, OversizedContentLengthIs413AndTheRestIsNeverParsed) {
  Served api(with_token());
  Raw c(api.port());
  c.send("POST /jobs HTTP/1.1\r\nHost: " + host_of(api.port()) + "\r\nAuthorization: Bearer " + kToken +
         "\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" + smuggled(api.port()));
  expect_victim_never_runs(api, c, "HTTP/1.1 413");
}

TEST(HttpServer, ChunkedBodyOverMaxBodyIs413WithoutBufferingIt) {
  Served api(with_token());
  Raw c(api.port());
  c.send("POST /jobs HTTP/1.1\r\nHost: " + host_of(api.port()) + "\r\nAuthorization: Bearer " + kToken +
         "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
  // 64 KiB is the cap: send up to 64 MiB in 64 KiB chunks. The server answers 413 at once, discards
  // (never buffers or parses) at most 32 MiB more so we can read the answer, then closes.
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
  const long long before = vm_rss_kib();
  int sent = 0;
  for (; sent < 1024 && c.send(chunk); ++sent) {
  }
  bool closed = false;
  const std::string got = c.read_all(3s, closed);
  const long long grown = vm_rss_kib() - before;
  std::printf("chunked flood: %d chunks accepted before the close, RSS grew %lld KiB\n", sent, grown);
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got.substr(0, 200);
  EXPECT_NE(got.find("api.max_body"), std::string::npos);
  EXPECT_TRUE(closed);
  EXPECT_LT(sent, 1024) << "the server kept reading past max_body and the drain cap";
  EXPECT_LT(grown, 50 * 1024);
  EXPECT_EQ(api.jobs(), 0);
  EXPECT_EQ(api.get("/health"), 200);
}

TEST(HttpServer, HeaderFloodIs431QuicklyWithBoundedMemory) {
  Served api(with_token());
  const long long before = vm_rss_kib();
  std::vector<std::unique_ptr<Raw>> conns;
  std::string answers;
  const auto started = SteadyClock::now();
  for (int i = 0; i < 16; ++i) {
    auto c = std::make_unique<Raw>(api.port());
    c->send("GET /jobs HTTP/1.1\r\nHost: " + host_of(api.port()) + "\r\n");
    const std::string line = "X-Flood: " + std::string(1000, 'a') + "\r\n";
    for (int k = 0; k < 4096 && c->send(line); ++k) {  // up to 4 MB each
    }
    bool closed = false;
    answers += c->read_all(2s, closed).substr(0, 12) + "|";
    conns.push_back(std::move(c));
  }
  const double secs = std::chrono::duration<double>(SteadyClock::now() - started).count();
  const long long grown = vm_rss_kib() - before;
  std::printf("header flood: 16 x up to 4 MB of headers in %.2fs, RSS grew %lld KiB\n", secs, grown);
  EXPECT_EQ(count_of(answers, "HTTP/1.1 431"), 16) << answers;
  EXPECT_LT(grown, 50 * 1024);
  // Too many (small) fields is refused the same way.
  Raw many(api.port());
  std::string head = "GET /jobs HTTP/1.1\r\nHost: " + host_of(api.port()) + "\r\n";
  for (int k = 0; k < 200; ++k) head += "X-" + std::to_string(k) + ": 1\r\n";
  many.send(head + "\r\n");
  bool closed = false;
  EXPECT_EQ(many.read_all(2s, closed).rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(api.get("/health"), 200);
}

TEST(HttpServer, SlowAndIdleConnectionsNeverStarveHealthOrReady) {
  ApiConfig config = with_token();
  config.header_timeout = 3s;
  config.idle_timeout = 3s;
  Served api(config);
  std::vector<std::unique_ptr<Raw>> idle, slow;
  for (int i = 0; i < 320; ++i) idle.push_back(std::make_unique<Raw>(api.port()));
  for (int i = 0; i < 70; ++i) slow.push_back(std::make_unique<Raw>(api.port()));
  const std::string head = "GET /queues HTTP/1.1\r\nHost: " + host_of(api.port()) + "\r\n";
  const auto started = SteadyClock::now();
  double worst = 0;
  for (std::size_t byte = 0; byte < 5; ++byte) {
    for (auto& s : slow) s->send(head.substr(byte, 1));
    for (const char* path : {"/health", "/ready"}) {
      const auto t = SteadyClock::now();
      EXPECT_EQ(api.get(path), 200) << path;
      worst = std::max(worst, std::chrono::duration<double>(SteadyClock::now() - t).count());
    }
    std::this_thread::sleep_for(1s);
  }
  std::printf("390 slow/idle connections: worst /health or /ready answer %.3fs\n", worst);
  EXPECT_LT(worst, 1.0);
  // The slow ones were cut at the header deadline (3s): each got a 408 or a close.
  int cut = 0;
  for (auto& s : slow) {
    bool closed = false;
    const std::string got = s->read_all(2s, closed);
    if (closed || got.rfind("HTTP/1.1 408", 0) == 0) ++cut;
  }
  EXPECT_EQ(cut, 70);
  EXPECT_LT(std::chrono::duration<double>(SteadyClock::now() - started).count(), 12.0);
  EXPECT_EQ(api.get("/health"), 200);
}

TEST(HttpServer, ConnectionsBeyondTheCapGet503AndClose) {
  ApiConfig config = with_token();
  config.max_connections = 8;
  Served api(config);
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<Raw>(api.port()));
  std::this_thread::sleep_for(200ms);
  Raw extra(api.port());
  bool closed = false;
  const std::string got = extra.read_all(2s, closed);
  EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
  EXPECT_TRUE(closed);
  held.clear();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(api.get("/health"), 200);
}

TEST(HttpServer, TokenlessModeRefusesCrossSiteWrites) {
  Served api;  // no tokens: loopback only
  httplib::Client c("127.0.0.1", api.port());
  // A cross-site form or no-cors fetch can only send text/plain, form or multipart bodies.
  auto r = c.Post("/jobs", R"({"kind":"evil"})", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_NE(r->body.find("unsupported_media_type"), std::string::npos);
  EXPECT_EQ(api.jobs(), 0);
  EXPECT_EQ(c.Post("/jobs", R"({"kind":"evil"})", "application/jsonp")->status, 415);
  EXPECT_EQ(c.Post("/jobs", R"({"kind":"evil"})", "")->status, 415);
  EXPECT_EQ(api.jobs(), 0);
  // A foreign Origin is refused on writes, body or not.
  r = c.Post("/queues/default/pause", httplib::Headers{{"Origin", "http://evil.example"}}, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("forbidden_origin"), std::string::npos);
  EXPECT_EQ(api.paused(), 0);
  r = c.Post("/jobs", httplib::Headers{{"Origin", "null"}}, R"({"kind":"evil"})", "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(api.jobs(), 0);
  // DNS rebinding: a foreign Host is refused, reads included.
  r = c.Get("/jobs", httplib::Headers{{"Host", "evil.example:" + std::to_string(api.port())}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 421);
  r = c.Post("/queues/default/pause", httplib::Headers{{"Host", "rebound.example"}}, "", "application/json");
  EXPECT_EQ(r->status, 421);
  EXPECT_EQ(api.paused(), 0);
  // The same-origin page and plain clients still work: curl -X POST url sends no body at all.
  r = c.Post("/jobs", httplib::Headers{{"Origin", "http://127.0.0.1:" + std::to_string(api.port())}},
             R"({"kind":"ok"})", "application/json; charset=utf-8");
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(api.jobs(), 1);
  Raw curl(api.port());
  curl.send("POST /queues/default/pause HTTP/1.1\r\nHost: localhost:" + std::to_string(api.port()) +
            "\r\nConnection: close\r\n\r\n");
  bool closed = false;
  EXPECT_EQ(curl.read_all(3s, closed).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(api.paused(), 1);
}

// httplib's server dropped a header with an empty value before our code saw it, so an empty
// Idempotency-Key silently meant "no key": over raw bytes it is a 400 and nothing is written.
TEST(HttpServer, AnEmptyIdempotencyKeyIs400NotIgnored) {
  Served api;
  Raw c(api.port());
  const std::string body = R"({"kind":"report"})";
  c.send("POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(api.port()) +
         "\r\nContent-Type: application/json\r\nIdempotency-Key:\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body);
  bool closed = false;
  const std::string answer = c.read_all(3s, closed);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("Idempotency-Key header is empty"), std::string::npos) << answer;
  EXPECT_EQ(api.jobs(), 0);
  EXPECT_EQ(api.get("/health"), 200);
}

TEST(HttpServer, BearerSchemeIsCaseInsensitiveAndForeignOriginsAreRefusedWithTokens) {
  Served api(with_token());
  httplib::Client c("127.0.0.1", api.port());
  auto r = c.Get("/queues", httplib::Headers{{"Authorization", std::string("bearer ") + kToken}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c.Get("/queues", httplib::Headers{{"Authorization", std::string("BEARER ") + kToken}})->status, 200);
  EXPECT_EQ(c.Get("/queues", httplib::Headers{{"Authorization", std::string("Basic ") + kToken}})->status, 401);
  r = c.Post("/queues/default/pause",
             httplib::Headers{{"Authorization", std::string("Bearer ") + kToken}, {"Origin", "https://evil.example"}},
             "", "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(api.paused(), 0);
}

TEST(HttpServer, ReadyFollowsTheDatabasesSchemaVersion) {
  Served api;
  api.db().scalar("DROP SCHEMA docket CASCADE");
  httplib::Client c("127.0.0.1", api.port());
  auto r = c.Get("/ready");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("schema_mismatch"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("docket migrate"), std::string::npos) << r->body;
  EXPECT_EQ(c.Get("/health")->status, 200);
  migrate(api.db().url());
  r = c.Get("/ready");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"schema_version\":" + std::to_string(known_schema_version())), std::string::npos);
}

TEST(HttpServer, HealthAndReadyAnswerWithinASecondWhileTheDatabaseHangsAndThePoolIsBusy) {
  // A "database" that accepts TCP connections and never says a word.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(silent, 64), 0);
  socklen_t len = sizeof a;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&a), &len);
  ApiConfig config;
  config.threads = 1;
  config.db_connections = 1;
  api::Server server("postgresql://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/x", config, nullptr);
  server.bind("127.0.0.1:0");
  std::thread serving([&] { server.run(); });
  // Occupy the only handler thread with requests stuck on the silent database.
  std::vector<std::thread> stuck;
  for (int i = 0; i < 3; ++i) {
    stuck.emplace_back([&] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_read_timeout(2, 0);
      const auto t = SteadyClock::now();
      auto r = c.Get("/queues");
      std::printf("stuck GET /queues: %d after %.2fs\n", r ? r->status : -1,
                  std::chrono::duration<double>(SteadyClock::now() - t).count());
    });
  }
  std::this_thread::sleep_for(300ms);
  httplib::Client c("127.0.0.1", server.port());
  for (int round = 0; round < 3; ++round) {
    auto t = SteadyClock::now();
    auto r = c.Get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(std::chrono::duration<double>(SteadyClock::now() - t).count(), 0.5);
    t = SteadyClock::now();
    r = c.Get("/ready");
    ASSERT_TRUE(r);
    const double secs = std::chrono::duration<double>(SteadyClock::now() - t).count();
    std::printf("/ready with a silent database and a busy pool: %d in %.3fs\n", r->status, secs);
    EXPECT_EQ(r->status, 503);
    EXPECT_NE(r->body.find("unavailable"), std::string::npos) << r->body;
    EXPECT_LT(secs, 1.5);
  }
  server.stop();
  for (auto& t : stuck) t.join();
  serving.join();
  ::close(silent);
}

TEST(HttpServer, ListPagesAreCappedInBytesAndPagingStillSeesEveryRow) {
  ApiConfig config;
  config.max_response = 4096;
  Served api(config);
  httplib::Client c("127.0.0.1", api.port());
  for (int i = 0; i < 12; ++i) {
    const std::string body = R"({"kind":"big","args":{"pad":")" + std::string(1000, 'p') + R"("}})";
    ASSERT_EQ(c.Post("/jobs", body, "application/json")->status, 201);
  }
  std::set<long long> seen;
  std::string after;
  int pages = 0;
  for (; pages < 20; ++pages) {
    auto r = c.Get(("/jobs?limit=100" + after).c_str());
    ASSERT_EQ(r->status, 200);
    EXPECT_LE(r->body.size(), 4096u);
    const auto page = Json::parse(r->body);
    for (const auto& j : page.at("jobs")) EXPECT_TRUE(seen.insert(j.at("id").get<long long>()).second);
    if (page.at("next_after").is_null()) break;
    after = "&after=" + std::to_string(page.at("next_after").get<long long>());
  }
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_GE(pages, 3);
}

TEST(HttpRequestParser, PlainFunctionAppliesTheServersLimits) {
  api::http::Limits limits;
  limits.max_body = 10;
  auto r = api::http::parse_request_bytes("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", limits);
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->body(), "abc");
  r = api::http::parse_request_bytes("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", limits);
  EXPECT_EQ(r.status, 413);
  r = api::http::parse_request_bytes(
      "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n0\r\n\r\n", limits);
  EXPECT_EQ(r.status, 413);
  r = api::http::parse_request_bytes("GET /x HTTP/1.1\r\nHost: a\r\nX: " + std::string(20000, 'a') + "\r\n\r\n",
                                     limits);
  EXPECT_EQ(r.status, 431);
  r = api::http::parse_request_bytes("GET /x HTTP/1.1\r\nHo st: a\r\n\r\n", limits);
  EXPECT_EQ(r.status, 400);
  r = api::http::parse_request_bytes("GET /x HTTP/1.1\r\nHost: a\r\n", limits);
  EXPECT_FALSE(r.request);
  EXPECT_EQ(r.status, 0);
}
