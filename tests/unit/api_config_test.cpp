// The HTTP server's settings: defaults, TOML, environment, and the checks that name the key.
#include <gtest/gtest.h>

#include "docket/config.hpp"
#include "docket/errors.hpp"

using namespace docket;

TEST(ApiConfig, ServerLimitsParseFromTomlAndEnvironment) {
  Config c = Config::parse(
      "[api]\nmax_connections = 64\nmax_header_bytes = \"8KiB\"\nmax_response = \"1MiB\"\n"
      "header_timeout = \"2s\"\nbody_timeout = \"20s\"\nidle_timeout = \"1s\"\n",
      "t");
  EXPECT_EQ(c.api.max_connections, 64);
  EXPECT_EQ(c.api.max_header_bytes, 8u << 10);
  EXPECT_EQ(c.api.max_response, 1u << 20);
  EXPECT_EQ(c.api.header_timeout, Millis(2000));
  EXPECT_EQ(c.api.body_timeout, Millis(20000));
  EXPECT_EQ(c.api.idle_timeout, Millis(1000));
  c.apply_env({"DOCKET_API_MAX_CONNECTIONS=128", "DOCKET_API_IDLE_TIMEOUT=3s"});
  EXPECT_EQ(c.api.max_connections, 128);
  EXPECT_EQ(c.api.idle_timeout, Millis(3000));
  EXPECT_NO_THROW(c.validate());
  c.api.max_connections = 2;
  EXPECT_THROW(c.validate(), ConfigError);
  c.api.max_connections = 64;
  c.api.header_timeout = Millis(10);
  try {
    c.validate();
    ADD_FAILURE() << "a 10ms header timeout was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("api.header_timeout"), std::string::npos) << e.what();
  }
}

TEST(ApiConfig, BlankTokenVariableIsAnErrorNamingIt) {
  for (const char* blank : {"DOCKET_API_TOKENS=", "DOCKET_API_TOKENS= ", "DOCKET_API_TOKENS=, ,"}) {
    Config c;
    try {
      c.apply_env({blank});
      ADD_FAILURE() << blank << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("DOCKET_API_TOKENS"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(c.api.tokens.empty());
  }
  Config ok;
  ok.apply_env({"DOCKET_API_TOKENS=t1, t2"});
  EXPECT_EQ(ok.api.tokens, (std::vector<std::string>{"t1", "t2"}));
}
