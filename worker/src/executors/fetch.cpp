// httplib's client only has per-recv timeouts and no cancellation, so each request runs under a
// watchdog that shuts its socket down (Client::stop, the one thread-safe abort) at the deadline or
// on a stop request; a content receiver enforces the byte cap while the body streams in.
#include "executors/fetch.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace docket {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// Aborts `client`'s request at `deadline` or when `stop` fires, until disarmed. Client::stop
/// ends reads and writes; a connect in progress is ended by shutting down a duplicate of the
/// socket (a duplicate, so the number cannot be reused by another thread before we let it go).
class Watchdog {
 public:
  Watchdog(httplib::Client& client, SteadyClock::time_point deadline, std::stop_token stop)
      : thread_([this, &client, deadline, stop](const std::stop_token& done) {
          std::stop_callback wake(stop, [this] {
            std::lock_guard guard(mutex_);
            cv_.notify_all();
          });
          std::unique_lock lock(mutex_);
          cv_.wait_until(lock, done, deadline, [&] { return stop.stop_requested(); });
          if (done.stop_requested()) return;
          (stop.stop_requested() ? stopped_ : timed_out_) = true;
          // Keep shutting the socket down: the first call may land before the socket exists.
          while (!done.stop_requested()) {
            // The socket first: Client::stop waits for a connect in progress (it holds the lock).
            for (const int fd : sockets_) ::shutdown(fd, SHUT_RDWR);
            client.stop();
            cv_.wait_for(lock, done, std::chrono::milliseconds(20), [] { return false; });
          }
        }) {}
  ~Watchdog() {
    disarm();
    for (const int fd : sockets_) ::close(fd);
  }
  /// Called by httplib with each socket it creates, before connecting.
  void watch_socket(int fd) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return;
    std::lock_guard lock(mutex_);
    sockets_.push_back(copy);
  }
  void disarm() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  bool stopped() const { return stopped_; }
  bool timed_out() const { return timed_out_; }

 private:
  std::mutex mutex_;
  std::condition_variable_any cv_;
  bool stopped_ = false;
  bool timed_out_ = false;
  std::vector<int> sockets_;  ///< duplicates of the request's sockets, guarded by mutex_
  std::jthread thread_;
};

}  // namespace

std::optional<HttpUrl> parse_http_url(const std::string& url) {
  const bool https = url.rfind("https://", 0) == 0;
  if (!https && url.rfind("http://", 0) != 0) return std::nullopt;
  // No spaces or control bytes (a NUL or CR/LF from a page's next link must not reach a request
  // line or a text column).
  if (std::any_of(url.begin(), url.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7F; })) return std::nullopt;
  const std::size_t start = https ? 8 : 7;
  const std::size_t slash = url.find_first_of("/?#", start);
  HttpUrl u;
  u.host = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
  if (u.host.empty() || u.host.find('@') != std::string::npos) return std::nullopt;
  u.origin = url.substr(0, start) + lower(u.host);
  u.target = slash == std::string::npos ? "/" : url.substr(slash);
  if (u.target.front() != '/') u.target = "/" + u.target;
  if (auto hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
  return u;
}

std::string resolve_url(const std::string& base, const std::string& ref) {
  if (ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0) return ref;
  const auto u = parse_http_url(base);
  if (!u) return ref;
  if (ref.rfind("//", 0) == 0) return base.substr(0, base.find("//")) + ref;
  if (!ref.empty() && ref.front() == '/') return u->origin + ref;
  if (!ref.empty() && ref.front() == '?') return u->origin + u->target.substr(0, u->target.find('?')) + ref;
  const std::string path = u->target.substr(0, u->target.find('?'));
  return u->origin + path.substr(0, path.rfind('/') + 1) + ref;
}

std::string FetchResult::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (lower(k) == lower(name)) return v;
  }
  return "";
}

FetchResult fetch(const FetchRequest& request) {
  const auto deadline = SteadyClock::now() + request.timeout;
  FetchResult out;
  std::string url = request.url;
  for (int redirects = 0;; ++redirects) {
    out = FetchResult{};
    out.url = url;
    const auto u = parse_http_url(url);
    if (!u) {
      out.error = "\"" + url + "\" is not an http(s) URL";
      return out;
    }
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      out.timed_out = true;
      out.error = request.method + " " + url + ": no answer within " + format_duration(request.timeout);
      return out;
    }
    httplib::Client client(u->origin);
    const auto secs = static_cast<time_t>(left.count() / 1000000);
    const auto usecs = static_cast<time_t>(left.count() % 1000000);
    client.set_connection_timeout(secs, usecs);  // the watchdog ends it sooner on a stop
    client.set_read_timeout(secs, usecs);
    client.set_write_timeout(secs, usecs);
    client.set_follow_location(false);
    client.set_keep_alive(false);

    httplib::Request req;
    req.method = request.method;
    req.path = u->target;
    req.headers = request.headers;
    // The kind's headers (tokens, API keys) go to the origin they were configured for, never to
    // wherever a redirect or a link points.
    if (u->origin == request.credentials_origin) {
      for (const auto& [k, v] : request.credentials) req.headers.emplace(k, v);
    }
    if (!request.body.empty() || request.method == "POST") {
      req.body = request.body;
      req.headers.emplace("Content-Type", request.content_type);
    }
    std::string body;
    bool too_large = false;
    req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
      if (body.size() + n > request.max_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    Watchdog watchdog(client, deadline, request.stop);
    client.set_socket_options([&watchdog](socket_t fd) { watchdog.watch_socket(fd); });
    const bool ok = client.send(req, res, error);
    watchdog.disarm();
    if (watchdog.stopped()) {
      out.stopped = true;
      out.error = request.method + " " + url + ": stopped";
      return out;
    }
    if (too_large) {
      out.too_large = true;
      out.error = request.method + " " + url + ": the response is larger than " + std::to_string(request.max_bytes) +
                  " bytes (max_response)";
      return out;
    }
    if (watchdog.timed_out() || (!ok && SteadyClock::now() >= deadline)) {
      out.timed_out = true;
      out.error = request.method + " " + url + ": no complete answer within " + format_duration(request.timeout);
      return out;
    }
    if (!ok) {
      out.error = request.method + " " + url + " failed: " + httplib::to_string(error);
      return out;
    }
    out.status = res.status;
    out.headers = res.headers;
    out.body = std::move(body);
    const std::string location = out.header("Location");
    if (res.status >= 300 && res.status < 400 && !location.empty() && redirects < request.max_redirects) {
      url = resolve_url(url, location);
      continue;
    }
    return out;
  }
}

}  // namespace docket
