// Bounded JSON parsing: nlohmann's SAX parser is iterative; the DOM builder below stops at the
// depth limit before building anything deeper, so no later recursion can overflow the stack.
#include "docket/json.hpp"

#include <cmath>

#include "docket/errors.hpp"

namespace docket {

namespace {

class BoundedDom : public nlohmann::detail::json_sax_dom_parser<Json> {
  using Base = nlohmann::detail::json_sax_dom_parser<Json>;

 public:
  BoundedDom(Json& root, int max_depth) : Base(root, false), max_depth_(max_depth) {}

  bool start_object(std::size_t n) {
    if (!enter()) return false;
    return Base::start_object(n);
  }
  bool end_object() {
    --depth_;
    return Base::end_object();
  }
  bool start_array(std::size_t n) {
    if (!enter()) return false;
    return Base::start_array(n);
  }
  bool end_array() {
    --depth_;
    return Base::end_array();
  }
  bool number_float(Json::number_float_t value, const std::string& lexeme) {
    // The lexer falls back to a double for integers beyond 64 bits: refuse the silent rounding.
    if (lexeme.find_first_of(".eE") == std::string::npos) {
      error = "integer " + shorten(lexeme) + " does not fit in 64 bits (send it as a string)";
      return false;
    }
    if (!std::isfinite(value)) {
      error = "number " + shorten(lexeme) + " is out of range";
      return false;
    }
    return Base::number_float(value, lexeme);
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string&, const Exception& ex) {
    if (error.empty()) {
      std::string what = ex.what();
      // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> the readable part
      if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      error = what.empty() ? "malformed JSON at byte " + std::to_string(position) : what;
    }
    return false;
  }

  std::string error;

 private:
  bool enter() {
    if (++depth_ > max_depth_) {
      error = "nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    return true;
  }
  static std::string shorten(const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; }

  int depth_ = 0;
  int max_depth_;
};

}  // namespace

std::optional<Json> try_parse_json(std::string_view text, std::string_view what, std::string* error,
                                   int max_depth) {
  Json root;
  BoundedDom dom(root, max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &dom, nlohmann::detail::input_format_t::json, true);
  } catch (const Json::exception& e) {
    // The lexer reports number overflow (1e400) as an exception, not through parse_error.
    if (dom.error.empty()) dom.error = e.what();
    ok = false;
  }
  if (ok && dom.error.empty()) return root;
  if (error) *error = std::string(what) + ": " + (dom.error.empty() ? "malformed JSON" : dom.error);
  return std::nullopt;
}

Json parse_json(std::string_view text, std::string_view what, int max_depth) {
  std::string error;
  auto parsed = try_parse_json(text, what, &error, max_depth);
  if (!parsed) throw InvalidInput(error);
  return std::move(*parsed);
}

}  // namespace docket
