// `docket api` as a process under hostile bytes: its resident memory stays bounded.
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "e2e.hpp"

using namespace docket;
using namespace docket::e2e;
using docket::test::run;

namespace {

constexpr const char* kToken = "e2e-token-0123456789abcdef";

/// Opens a connection, sends a request head that never ends (lines of `line` up to `total` bytes)
/// and returns the first bytes of the answer ("" if none came within 5 s).
std::string flood_headers(int port, const std::string& line, std::size_t total) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string head = "GET /jobs HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
    ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    for (std::size_t sent = 0; sent < total; sent += line.size()) {
      if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) <= 0) break;
    }
    char buf[64];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) answer.assign(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer;
}

}  // namespace

TEST(ApiProcess, HeaderFloodGets431AndKeepsRssBounded) {
  auto db = PgCluster::shared().fresh_database();
  TempDir dir;
  Child api({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"},
            {{"DATABASE_URL", db->url()}, {"DOCKET_API_TOKENS", kToken}}, dir / "api.log");
  int port = -1;
  wait_until(
      [&] {
        std::smatch m;
        const std::string log = api.log_text();
        if (std::regex_search(log, m, std::regex("http://127\\.0\\.0\\.1:(\\d+)"))) port = std::stoi(m[1]);
        return port > 0;
      },
      20s);
  ASSERT_GT(port, 0) << api.log_text();
  httplib::Client http("127.0.0.1", port);
  ASSERT_EQ(http.Get("/health")->status, 200);
  const long long before = rss_kib(api.pid());
  // 48 connections x 4 MiB of headers: the 192 MiB of the original report.
  const std::string line = "X-Flood: " + std::string(4086, 'h') + "\r\n";
  int refused = 0;
  for (int i = 0; i < 48; ++i) {
    if (flood_headers(port, line, 4 << 20).rfind("HTTP/1.1 431", 0) == 0) ++refused;
  }
  const long long grown = rss_kib(api.pid()) - before;
  std::printf("docket api RSS before %lld KiB, grew %lld KiB after 48 x 4 MiB header floods (bound 51200 KiB)\n",
              before, grown);
  EXPECT_EQ(refused, 48);
  EXPECT_LT(grown, 50 * 1024);
  EXPECT_EQ(http.Get("/health")->status, 200);
  EXPECT_EQ(db->count("SELECT count(*) FROM docket.jobs"), 0);
  api.signal(SIGTERM);
  EXPECT_EQ(api.wait(10s), 0) << api.log_text();
}

TEST(ApiProcess, BlankTokenVariableIsAConfigErrorNotNoAuth) {
  for (const char* blank : {"", " ", " , ,"}) {
    auto r = run({DOCKET_BIN, "api", "--listen", "127.0.0.1:0"},
                 {{"DATABASE_URL", "postgresql:///x"}, {"DOCKET_API_TOKENS", blank}});
    EXPECT_EQ(r.status, 2) << "DOCKET_API_TOKENS=\"" << blank << "\"";
    EXPECT_NE(r.err.find("DOCKET_API_TOKENS is set but holds no token"), std::string::npos) << r.err;
  }
}
