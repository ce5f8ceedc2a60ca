#pragma once
// The dashboard's server side: its static files (api/dashboard/, compiled into the binary) and the
// sign-in sessions that let a browser use the API without keeping a bearer token in the page.
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace docket::api {

/// One static file of the dashboard.
struct Asset {
  const std::string* body;
  const char* content_type;
};

/// The file served at `path` ("/", "/dashboard/app.js", ...), or nullopt.
std::optional<Asset> dashboard_asset(const std::string& path);

/// Headers every dashboard file is sent with: a Content-Security-Policy that allows this origin's
/// own scripts and styles only (no inline script, no CDN, no framing), and no caching of a page
/// an upgraded binary would change.
const std::vector<std::pair<std::string, std::string>>& dashboard_headers();

/// Sign-in sessions: an unguessable id (the HttpOnly cookie's value) standing for one configured
/// token until it or the session expires. In memory: a restart signs everyone out.
class SessionStore {
 public:
  using Clock = std::chrono::system_clock;
  /// At most this many sessions; signing in past it drops the one closest to expiry.
  static constexpr std::size_t kMaxSessions = 10'000;
  /// A session lasts this long at most (less when its token expires sooner).
  static constexpr std::chrono::hours kLifetime{12};

  /// A new session for token number `token` (its place in the configured list); returns its id.
  std::string create(std::size_t token, std::optional<Clock::time_point> token_expires);
  /// The token number of a live session, or nullopt (unknown or expired).
  std::optional<std::size_t> find(const std::string& id);
  /// Signs a session out; unknown ids are ignored.
  void erase(const std::string& id);

 private:
  struct Entry {
    std::size_t token;
    Clock::time_point expires;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> sessions_;
};

/// The value of cookie `name` in a Cookie header, or "" when absent.
std::string cookie_value(const std::string& header, const std::string& name);

}  // namespace docket::api
