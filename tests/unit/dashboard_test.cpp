// The dashboard's server-side pieces without a network: its embedded files, the session store's
// bounds and expiry, and the Cookie header parser fed hostile headers.
#include <gtest/gtest.h>

#include <set>

#include "dashboard.hpp"

using docket::api::cookie_value;
using docket::api::dashboard_asset;
using docket::api::SessionStore;

TEST(DashboardUnit, OnlyItsOwnFilesAreServed) {
  for (const char* path : {"/", "/index.html", "/dashboard/app.js", "/dashboard/style.css"}) {
    const auto a = dashboard_asset(path);
    ASSERT_TRUE(a) << path;
    EXPECT_FALSE(a->body->empty()) << path;
  }
  for (const char* path :
       {"", "/dashboard/", "/dashboard/app.js/", "/dashboard/../app.js", "/dashboard/APP.JS", "/app.js"})
    EXPECT_FALSE(dashboard_asset(path)) << path;
  // No file reaches outside the binary: nothing here reads the disk or the network.
  EXPECT_EQ(dashboard_asset("/")->body->find("http://"), std::string::npos);
  EXPECT_EQ(dashboard_asset("/")->body->find("https://"), std::string::npos);
}

TEST(DashboardUnit, SessionsAreRandomBoundedAndEndWithTheirToken) {
  SessionStore store;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < SessionStore::kMaxSessions + 50; ++i) ids.insert(store.create(i % 3, std::nullopt));
  EXPECT_EQ(ids.size(), SessionStore::kMaxSessions + 50);  // never the same id twice
  std::size_t live = 0;
  for (const auto& id : ids) live += store.find(id).has_value();
  EXPECT_EQ(live, SessionStore::kMaxSessions);  // the oldest were dropped, the store stays bounded
  // A session never outlives its token.
  const auto gone = store.create(7, SessionStore::Clock::now() - std::chrono::seconds(1));
  EXPECT_FALSE(store.find(gone));
  const auto soon = store.create(7, SessionStore::Clock::now() + std::chrono::hours(1));
  EXPECT_EQ(store.find(soon), 7u);
  store.erase(soon);
  EXPECT_FALSE(store.find(soon));
  EXPECT_FALSE(store.find(""));
  EXPECT_FALSE(store.find(std::string(64, '0')));
}

TEST(DashboardUnit, CookieHeaderParsing) {
  EXPECT_EQ(cookie_value("docket_session=abc", "docket_session"), "abc");
  EXPECT_EQ(cookie_value("a=1; docket_session=abc; b=2", "docket_session"), "abc");
  EXPECT_EQ(cookie_value("a=1;docket_session=abc", "docket_session"), "abc");
  EXPECT_EQ(cookie_value("xdocket_session=abc", "docket_session"), "");
  EXPECT_EQ(cookie_value("docket_sessionx=abc", "docket_session"), "");
  EXPECT_EQ(cookie_value("docket_session", "docket_session"), "");
  EXPECT_EQ(cookie_value("", "docket_session"), "");
  EXPECT_EQ(cookie_value(";;;", "docket_session"), "");
  EXPECT_EQ(cookie_value(std::string(100000, ';') + "docket_session=z", "docket_session"), "z");
}
