#include "dashboard.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/secret.hpp"

namespace docket::api {

// The files of api/dashboard/, embedded at build time (cmake/embed_file.cmake).
const std::string& dashboard_index_html();
const std::string& dashboard_app_js();
const std::string& dashboard_style_css();

std::optional<Asset> dashboard_asset(const std::string& path) {
  if (path == "/" || path == "/index.html") return Asset{&dashboard_index_html(), "text/html; charset=utf-8"};
  if (path == "/dashboard/app.js") return Asset{&dashboard_app_js(), "text/javascript; charset=utf-8"};
  if (path == "/dashboard/style.css") return Asset{&dashboard_style_css(), "text/css; charset=utf-8"};
  return std::nullopt;
}

const std::vector<std::pair<std::string, std::string>>& dashboard_headers() {
  static const std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-cache"}};
  return headers;
}

std::string SessionStore::create(std::size_t token, std::optional<Clock::time_point> token_expires) {
  const auto now = Clock::now();
  Clock::time_point expires = now + kLifetime;
  if (token_expires) expires = std::min(expires, *token_expires);
  std::string id = random_hex(32);  // 32 bytes: unguessable
  std::lock_guard lock(mutex_);
  // Full: drop the expired, then (still full) the one closest to expiry. A linear pass, only at the cap.
  if (sessions_.size() >= kMaxSessions)
    std::erase_if(sessions_, [now](const auto& kv) { return kv.second.expires <= now; });
  if (sessions_.size() >= kMaxSessions) {
    sessions_.erase(std::min_element(sessions_.begin(), sessions_.end(),
                                     [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; }));
  }
  sessions_[id] = Entry{token, expires};
  return id;
}

std::optional<std::size_t> SessionStore::find(const std::string& id) {
  if (id.empty()) return std::nullopt;
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires <= Clock::now()) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second.token;
}

void SessionStore::erase(const std::string& id) {
  std::lock_guard lock(mutex_);
  sessions_.erase(id);
}

std::string cookie_value(const std::string& header, const std::string& name) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    const auto end = std::min(header.find(';', pos), header.size());
    std::string part = header.substr(pos, end - pos);
    part.erase(0, std::min(part.size(), part.find_first_not_of(' ')));
    if (part.size() > name.size() && part.compare(0, name.size(), name) == 0 && part[name.size()] == '=')
      return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return {};
}

}  // namespace docket::api
