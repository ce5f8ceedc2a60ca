#include "core/arg_template.hpp"

#include <algorithm>

#include "core/url.hpp"
#include "docket/errors.hpp"

namespace docket {

namespace {

constexpr std::string_view kHow =
    "; write {args.NAME} (NAME: letters, digits, _ and -, nested with dots like {args.project.id})";

/// A piece of hostile config text for an error message: bounded.
std::string quoted(std::string_view text) {
  return "\"" + std::string(text.substr(0, 60)) + (text.size() > 60 ? "...\"" : "\"");
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/// Where a URL's path starts (after scheme://host:port); npos when it has none.
std::size_t path_start(std::string_view url) {
  const auto scheme = url.find("://");
  return url.find_first_of("/?#", scheme == std::string_view::npos ? 0 : scheme + 3);
}

/// url[from, to) with the placeholders inside it replaced by their percent-encoded values.
std::string expand_range(const std::string& url, std::size_t from, std::size_t to,
                         const std::vector<ArgPlaceholder>& placeholders, const Json& args) {
  std::string out;
  std::size_t at = from;
  for (const auto& p : placeholders) {
    if (p.pos < from || p.pos >= to) continue;
    out.append(url, at, p.pos - at);
    out += url_encode(arg_value(args, p));
    at = p.pos + p.len;
  }
  out.append(url, at, to - at);
  return out;
}

}  // namespace

std::vector<ArgPlaceholder> arg_placeholders(std::string_view text, const std::string& field,
                                             const std::vector<std::string_view>& allowed) {
  std::vector<ArgPlaceholder> out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '}') {
      throw ConfigError(field + ": the '}' at offset " + std::to_string(i) + " closes no placeholder" +
                        std::string(kHow));
    }
    if (text[i] != '{') continue;
    const auto close = text.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || text[close] == '{') {
      throw ConfigError(field + ": the '{' at offset " + std::to_string(i) + " is not closed" + std::string(kHow));
    }
    const std::string_view inner = text.substr(i, close - i + 1);
    if (std::find(allowed.begin(), allowed.end(), inner) != allowed.end()) {
      i = close;
      continue;
    }
    if (inner.rfind("{args.", 0) != 0) {
      std::string known = "{args.NAME}";
      for (const auto& a : allowed) known += ", " + std::string(a);
      throw ConfigError(field + ": unknown placeholder " + quoted(inner) + "; the placeholders here are " + known);
    }
    ArgPlaceholder p{i, inner.size(), std::string(inner.substr(1, inner.size() - 2)), {}};
    const std::string_view name = inner.substr(6, inner.size() - 7);
    std::size_t from = 0;
    for (;;) {
      const auto dot = name.find('.', from);
      const std::string_view seg = name.substr(from, dot == std::string_view::npos ? dot : dot - from);
      if (seg.empty() || !std::all_of(seg.begin(), seg.end(), name_char)) {
        throw ConfigError(field + ": " + quoted(inner) + " names no arg" + std::string(kHow));
      }
      p.path.emplace_back(seg);
      if (dot == std::string_view::npos) break;
      from = dot + 1;
    }
    out.push_back(std::move(p));
    i = close;
  }
  return out;
}

std::string arg_value(const Json& args, const ArgPlaceholder& placeholder) {
  const Json* v = &args;
  for (const auto& seg : placeholder.path) {
    if (v->is_object()) {
      const auto it = v->find(seg);
      v = it == v->end() ? nullptr : &*it;
    } else if (v->is_array() && seg.size() <= 9 &&
               std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      const auto index = std::stoul(seg);
      v = index < v->size() ? &(*v)[index] : nullptr;
    } else {
      v = nullptr;
    }
    if (!v) {
      throw InvalidInput(placeholder.name + " is missing from the job's args; the crawl's template needs it");
    }
  }
  const std::string& name = placeholder.name;
  if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    if (s.empty()) throw InvalidInput(name + " is empty; the crawl's template needs a value");
    if (s.size() > kMaxArgValueBytes) {
      throw InvalidInput(name + " is longer than " + std::to_string(kMaxArgValueBytes) + " bytes");
    }
    return s;
  }
  if (v->is_number_unsigned()) return std::to_string(v->get<std::uint64_t>());
  if (v->is_number_integer()) return std::to_string(v->get<std::int64_t>());
  if (v->is_number_float()) return v->dump();
  throw InvalidInput(name + " must be a string or a number, got " + std::string(v->type_name()));
}

void check_url_template(const std::string& url, const std::string& field) {
  const auto placeholders = arg_placeholders(url, field, {"{page}", "{cursor}"});
  const auto path = path_start(url);
  for (const auto& p : placeholders) {
    if (path == std::string::npos || p.pos < path) {
      throw ConfigError(field + ": {" + p.name +
                        "} may only be in the path or the query: an arg never chooses the scheme, host or port "
                        "(nor where the kind's headers go)");
    }
  }
}

std::string expand_url_args(const std::string& url, const Json& args) {
  const auto placeholders = arg_placeholders(url, "crawl.url", {"{page}", "{cursor}"});
  if (placeholders.empty()) return url;
  const auto path = path_start(url);
  if (path == std::string::npos || placeholders.front().pos < path) {
    throw InvalidInput("crawl.url: {" + placeholders.front().name + "} is before the path");
  }
  // A value has no '/' once encoded, so each path segment of the result is one of the template's:
  // check the segments that hold a placeholder for "." and "..", which servers resolve upwards.
  const auto path_end = std::min(url.find_first_of("?#", path), url.size());
  for (std::size_t from = path; from < path_end;) {
    const auto to = std::min(url.find('/', from + 1), path_end);
    std::string names;
    for (const auto& p : placeholders) {
      if (p.pos > from && p.pos < to) names += (names.empty() ? "" : ", ") + p.name;
    }
    if (!names.empty()) {
      const std::string segment = expand_range(url, from + 1, to, placeholders, args);
      if (segment == "." || segment == "..") {
        throw InvalidInput(names + " would make the path segment \"" + segment +
                           "\" in crawl.url; a value may not move the request up the path");
      }
    }
    from = to;
  }
  return expand_range(url, 0, url.size(), placeholders, args);
}

}  // namespace docket
