// `docket api` as a process under a token brute force: failed tokens (bearer headers and the
// dashboard's sign-in) are limited per client address and in all, answered 429 with Retry-After,
// while a good token from another address still works and the process's memory stays bounded.
// Client addresses are loopback aliases (127.0.0.2, 127.1.x.y, ...): Linux routes all of 127/8
// to lo, so one machine plays many clients.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;

namespace {

constexpr const char* kToken = "e2e-limit-token-0123456789";

/// An answer read off the wire.
struct Answer {
  int status = 0;           ///< 0: no answer
  std::string retry_after;  ///< the Retry-After header, "" when absent
  std::string head;         ///< status line and headers
};

/// Sends one request from source address `from` to 127.0.0.1:port and reads the answer.
Answer http_from(const std::string& from, int port, const std::string& method, const std::string& path,
                 const std::string& auth = "", const std::string& body = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<std::uint16_t>(port));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  Answer a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0 &&
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req =
        method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n";
    if (!auth.empty()) req += "Authorization: Bearer " + auth + "\r\n";
    if (!body.empty() || method == "POST") {
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    }
    req += "\r\n" + body;
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    std::smatch m;
    if (std::regex_search(got, m, std::regex("^HTTP/1\\.1 (\\d{3})"))) a.status = std::stoi(m[1]);
    if (std::regex_search(got, m, std::regex("\r\nRetry-After: (\\d+)\r\n", std::regex::icase))) a.retry_after = m[1];
    a.head = got.substr(0, got.find("\r\n\r\n"));
  }
  ::close(fd);
  return a;
}

/// `docket api` with one token on a fresh database; its port in `port`.
std::unique_ptr<Child> start_api(TestDatabase& db, const TempDir& dir, int& port) {
  auto api = std::make_unique<Child>(
      std::vector<std::string>{DOCKET_BIN, "api", "--listen", "127.0.0.1:0"},
      std::map<std::string, std::string>{{"DATABASE_URL", db.url()}, {"DOCKET_API_TOKENS", kToken}}, dir / "api.log");
  port = api_port_from_log(*api, "url");
  return api;
}

const std::string kJob = R"({"kind":"report","args":{"n":1}})";

}  // namespace

TEST(AuthLimit, TenBadTokensFromAnAddressThen429WhileAGoodTokenFromAnotherWorks) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  int port = -1;
  auto api = start_api(*db, dir, port);
  ASSERT_GT(port, 0) << api->log_text();
  // Ten guesses, each a 401 and nothing written; the eleventh is not even compared.
  for (int i = 0; i < 10; ++i) {
    const auto a = http_from("127.0.0.2", port, "POST", "/jobs", "guess-" + std::to_string(i) + "-0123456789", kJob);
    ASSERT_EQ(a.status, 401) << i << "\n" << a.head;
  }
  auto a = http_from("127.0.0.2", port, "POST", "/jobs", "guess-10-0123456789", kJob);
  EXPECT_EQ(a.status, 429) << a.head;
  ASSERT_FALSE(a.retry_after.empty()) << a.head;
  EXPECT_GE(std::stoi(a.retry_after), 1);
  EXPECT_LE(std::stoi(a.retry_after), 6);
  // The right token from that address waits too (else the 429 would not slow a guesser), on every
  // path that compares tokens: bearer reads and writes, and the dashboard's sign-in.
  EXPECT_EQ(http_from("127.0.0.2", port, "GET", "/jobs", kToken).status, 429);
  EXPECT_EQ(http_from("127.0.0.2", port, "GET", "/session", kToken).status, 429);
  EXPECT_EQ(http_from("127.0.0.2", port, "POST", "/session", "", std::string(R"({"token":")") + kToken + "\"}").status,
            429);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  // Routes without a token still answer it: the process is alive and the address is not banned.
  EXPECT_EQ(http_from("127.0.0.2", port, "GET", "/health").status, 200);
  // Another address with the good token is served, and signs in.
  EXPECT_EQ(http_from("127.0.0.3", port, "POST", "/jobs", kToken, kJob).status, 201);
  a = http_from("127.0.0.3", port, "POST", "/session", "", std::string(R"({"token":")") + kToken + "\"}");
  EXPECT_EQ(a.status, 200) << a.head;
  EXPECT_NE(a.head.find("Set-Cookie: docket_session="), std::string::npos) << a.head;
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 1);
  // The sign-in form counts the same way: ten wrong tokens, then 429.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(http_from("127.0.0.4", port, "POST", "/session", "", R"({"token":"wrong-token-0123456789"})").status, 401)
        << i;
  }
  a = http_from("127.0.0.4", port, "POST", "/session", "", std::string(R"({"token":")") + kToken + "\"}");
  EXPECT_EQ(a.status, 429) << a.head;
  EXPECT_EQ(a.head.find("Set-Cookie"), std::string::npos) << a.head;
  // Waiting out Retry-After gives the address one more try.
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(a.retry_after)));
  EXPECT_EQ(http_from("127.0.0.4", port, "GET", "/jobs", kToken).status, 200);
  EXPECT_TRUE(api->running());
  const std::string log = api->log_text();
  EXPECT_NE(log.find("api.token_refused peer=127.0.0.2"), std::string::npos) << log;
  EXPECT_EQ(log.find(kToken), std::string::npos) << "a token was logged";
}

TEST(AuthLimit, ManyAddressesMeetTheNetworkCapsWithBoundedMemoryAndAGoodTokenStillWorks) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  int port = -1;
  auto api = start_api(*db, dir, port);
  ASSERT_GT(port, 0) << api->log_text();
  ASSERT_EQ(http_from("127.0.0.1", port, "GET", "/jobs", kToken).status, 200);
  const long long rss_before = rss_kib(api->pid());
  // 5,000 addresses in 20 /24 networks, one guess each: each network's first 30 (its burst, plus
  // what refills at one per 2 s meanwhile) are compared and refused with 401, the rest get 429
  // unchecked. 600 failures spend the global burst (100) too.
  const auto started = std::chrono::steady_clock::now();
  int refused = 0, limited = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string from = "127.1." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250);
    const int status = http_from(from, port, "GET", "/jobs", "guess-" + std::to_string(i) + "-0123456789").status;
    if (status == 401) ++refused;
    if (status == 429) ++limited;
  }
  const double took = seconds_since(started);
  std::printf("auth limit: 5000 addresses in %.1f s: %d compared (401), %d limited (429)\n", took, refused, limited);
  EXPECT_EQ(refused + limited, 5000);
  EXPECT_GE(refused, 20 * 30);
  EXPECT_LE(refused, 20 * 30 + 20 * static_cast<int>(took / 2 + 1));
  // Memory: the limiter remembers addresses in a bounded table, never one entry per request.
  const long long rss_after = rss_kib(api->pid());
  std::printf("auth limit: api RSS %lld kB before, %lld kB after\n", rss_before, rss_after);
  EXPECT_LT(rss_after - rss_before, 16 * 1024);
  // The global budget is spent, yet a client that never failed presents the right token and is
  // served at once: a distributed guesser cannot lock out token holders. One that failed waits.
  EXPECT_EQ(http_from("127.0.0.9", port, "GET", "/jobs", kToken).status, 200);
  EXPECT_EQ(http_from("127.0.0.10", port, "GET", "/jobs", "wrong-token-0123456789").status, 401);
  EXPECT_EQ(http_from("127.0.0.10", port, "GET", "/jobs", kToken).status, 429);
  EXPECT_EQ(http_from("127.0.0.9", port, "GET", "/health").status, 200);
  EXPECT_TRUE(api->running());
}
