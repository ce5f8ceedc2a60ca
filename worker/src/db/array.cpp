#include "db/array.hpp"

#include <cstdio>

namespace docket::db {

std::string int_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(values[i]);
  }
  out += '}';
  return out;
}

namespace {
void append_quoted(std::string& out, const std::string& value) {
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}
}  // namespace

std::string text_array(const std::vector<std::optional<std::string>>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    if (values[i]) {
      append_quoted(out, *values[i]);
    } else {
      out += "NULL";
    }
  }
  out += '}';
  return out;
}

std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    append_quoted(out, values[i]);
  }
  out += '}';
  return out;
}

std::string float_array(const std::vector<double>& values) {
  std::string out = "{";
  char buf[64];
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    std::snprintf(buf, sizeof buf, "%.6f", values[i]);
    out += buf;
  }
  out += '}';
  return out;
}

std::vector<std::string> parse_text_array(const std::string& literal) {
  std::vector<std::string> out;
  if (literal.size() < 2 || literal.front() != '{' || literal.back() != '}') return out;
  std::size_t i = 1;
  const std::size_t end = literal.size() - 1;
  while (i < end) {
    std::string item;
    if (literal[i] == '"') {
      ++i;
      while (i < end && literal[i] != '"') {
        if (literal[i] == '\\' && i + 1 < end) ++i;
        item += literal[i++];
      }
      ++i;  // closing quote
    } else {
      while (i < end && literal[i] != ',') item += literal[i++];
    }
    out.push_back(item);
    if (i < end && literal[i] == ',') ++i;
  }
  return out;
}

}  // namespace docket::db
