// {args.NAME} templates in crawl kinds: hostile values never change the host, the path's shape or
// the headers, and every refusal names the arg (or, for a config, the field).
#include <gtest/gtest.h>

#include "core/arg_template.hpp"
#include "docket/config.hpp"
#include "docket/errors.hpp"
#include "executors/fetch.hpp"

using namespace docket;

namespace {

const std::string kUrl = "https://api.example.com:8443/projects/{args.project_id}/items?tag={args.tag}&page={page}";

std::string refusal(const std::string& url, const Json& args) {
  try {
    return "(accepted: " + expand_url_args(url, args) + ")";
  } catch (const InvalidInput& e) {
    return e.what();
  }
}

std::string config_refusal(const std::string& toml) {
  try {
    Config::parse(toml, "docket.toml").validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST(ArgTemplate, StringsAndNumbersFillThePathAndQuery) {
  EXPECT_EQ(expand_url_args(kUrl, Json{{"project_id", 7}, {"tag", "red"}}),
            "https://api.example.com:8443/projects/7/items?tag=red&page={page}");
  EXPECT_EQ(expand_url_args(kUrl, Json{{"project_id", "p-7_x.y~z"}, {"tag", -3}}),
            "https://api.example.com:8443/projects/p-7_x.y~z/items?tag=-3&page={page}");
  EXPECT_EQ(expand_url_args("http://h/{args.a.b}/{args.ids.1}?x={args.f}",
                            Json{{"a", {{"b", "deep"}}}, {"ids", {10, 20}}, {"f", 1.5}}),
            "http://h/deep/20?x=1.5");
  EXPECT_EQ(expand_url_args("http://h/p?page={page}", Json::object()), "http://h/p?page={page}") << "no args needed";
}

TEST(ArgTemplate, HostileValuesAreEncodedAndNeverMoveTheHostPathOrHeaders) {
  const std::map<std::string, std::string> encoded = {
      {"a/b", "a%2Fb"},
      {"x?admin=1", "x%3Fadmin%3D1"},
      {"x#frag", "x%23frag"},
      {"../../admin", "..%2F..%2Fadmin"},
      {"a b", "a%20b"},
      {"x\r\nHost: evil.example\r\nX: y", "x%0D%0AHost%3A%20evil.example%0D%0AX%3A%20y"},
      {"caf\xc3\xa9", "caf%C3%A9"},
      {"@evil.example", "%40evil.example"},
      {"{page}", "%7Bpage%7D"},
      {"%2e%2e", "%252e%252e"},
      {"...", "..."},
  };
  for (const auto& [value, want] : encoded) {
    const std::string url = expand_url_args(kUrl, Json{{"project_id", value}, {"tag", value}});
    EXPECT_EQ(url, "https://api.example.com:8443/projects/" + want + "/items?tag=" + want + "&page={page}") << value;
    const auto parsed = parse_http_url(url);
    ASSERT_TRUE(parsed) << url;
    EXPECT_EQ(parsed->origin, "https://api.example.com:8443") << value;
    EXPECT_EQ(url.find_first_of("\r\n "), std::string::npos) << value;
  }
}

TEST(ArgTemplate, DotSegmentsAreRefusedNamingTheArgs) {
  EXPECT_EQ(refusal(kUrl, Json{{"project_id", ".."}, {"tag", "x"}}),
            "args.project_id would make the path segment \"..\" in crawl.url; a value may not move the request up "
            "the path");
  EXPECT_NE(refusal(kUrl, Json{{"project_id", "."}, {"tag", "x"}}).find("args.project_id would make"),
            std::string::npos);
  EXPECT_NE(refusal("http://h/{args.a}{args.b}/x", Json{{"a", "."}, {"b", "."}}).find("args.a, args.b would make"),
            std::string::npos)
      << "two values that together make ..";
  EXPECT_EQ(expand_url_args("http://h/x?q={args.a}", Json{{"a", ".."}}), "http://h/x?q=..") << "in the query: harmless";
}

TEST(ArgTemplate, ValuesThatAreNotStringsOrNumbersFailNamingTheArg) {
  const struct {
    Json args;
    const char* error;
  } cases[] = {
      {Json::object(), "args.project_id is missing from the job's args"},
      {Json{{"project_id", nullptr}}, "args.project_id must be a string or a number, got null"},
      {Json{{"project_id", {{"a", 1}}}}, "args.project_id must be a string or a number, got object"},
      {Json{{"project_id", {1, 2}}}, "args.project_id must be a string or a number, got array"},
      {Json{{"project_id", true}}, "args.project_id must be a string or a number, got boolean"},
      {Json{{"project_id", ""}}, "args.project_id is empty"},
      {Json{{"project_id", std::string(201, 'x')}}, "args.project_id is longer than 200 bytes"},
      {Json::array(), "args.project_id is missing"},
      {Json("text"), "args.project_id is missing"},
  };
  for (const auto& c : cases) {
    const std::string msg = refusal("http://h/p/{args.project_id}?page={page}", c.args);
    EXPECT_EQ(msg.rfind(c.error, 0), 0u) << c.args.dump() << " -> " << msg;
  }
  EXPECT_EQ(refusal("http://h/{args.a.b}", Json{{"a", "flat"}}).rfind("args.a.b is missing", 0), 0u);
  EXPECT_EQ(refusal("http://h/{args.ids.5}", Json{{"ids", {1}}}).rfind("args.ids.5 is missing", 0), 0u);
  EXPECT_EQ(expand_url_args(kUrl, Json{{"project_id", std::string(200, 'x')}, {"tag", 1}}).size(),
            kUrl.size() - std::string("{args.project_id}{args.tag}").size() + 201)
      << "200 bytes is the bound, inclusive";
}

TEST(ArgTemplate, ConfigRefusesBadPlaceholdersNamingTheField) {
  const std::string head = "[kinds.scrape]\ncrawl = { ";
  const struct {
    std::string crawl;
    const char* error;
  } cases[] = {
      {"url = \"http://h/{args.}?page={page}\"", "kinds.scrape.crawl.url: \"{args.}\" names no arg"},
      {"url = \"http://h/{args.a..b}?page={page}\"", "kinds.scrape.crawl.url: \"{args.a..b}\" names no arg"},
      {"url = \"http://h/{args.a b}?page={page}\"", "kinds.scrape.crawl.url: \"{args.a b}\" names no arg"},
      {"url = \"http://h/{arg.a}?page={page}\"", "kinds.scrape.crawl.url: unknown placeholder \"{arg.a}\""},
      {"url = \"http://h/{project}?page={page}\"", "kinds.scrape.crawl.url: unknown placeholder \"{project}\""},
      {"url = \"http://h/{args.a?page={page}\"", "kinds.scrape.crawl.url: the '{' at offset 9 is not closed"},
      {"url = \"http://h/a}?page={page}\"", "kinds.scrape.crawl.url: the '}' at offset 10 closes no placeholder"},
      {"url = \"http://{args.host}/p?page={page}\"",
       "kinds.scrape.crawl.url: {args.host} may only be in the path or the query"},
      {"url = \"http://h:{args.port}/p?page={page}\"", "kinds.scrape.crawl.url: {args.port} may only be in the path"},
      {"url = \"{args.scheme}://h/p?page={page}\"", "kinds.scrape.crawl.url: {args.scheme} may only be in the path"},
      {"url = \"http://h/p?page={page}\", collection = \"p_{args.}\"",
       "kinds.scrape.crawl.collection: \"{args.}\" names no arg"},
      {"url = \"http://h/p?page={page}\", collection = \"p_{page}\"",
       "kinds.scrape.crawl.collection: unknown placeholder \"{page}\""},
      {"url = \"http://h/p?page={page}\", collection = \"p_{args.id\"",
       "kinds.scrape.crawl.collection: the '{' at offset 2 is not closed"},
      {"url = \"http://h/p?page={page}\", headers = { X-Project = \"{args.id}\" }",
       "kinds.scrape.crawl.headers.X-Project: {args.NAME} works only in crawl.url and crawl.collection"},
  };
  for (const auto& c : cases) {
    const std::string msg = config_refusal(head + c.crawl + " }\n");
    EXPECT_NE(msg.find(c.error), std::string::npos) << c.crawl << "\n-> " << msg;
  }
  const std::string ok = config_refusal(head +
                                        "url = \"http://h/projects/{args.project_id}/items?page={page}\", collection = "
                                        "\"project_{args.project_id}\" }\n");
  EXPECT_EQ(ok, "(accepted)");
}
