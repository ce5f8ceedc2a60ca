// Bounded JSON parsing: nlohmann's SAX parser is iterative; the DOM builder below stops at the
// depth limit before building anything deeper, so no later recursion can overflow the stack.
#include "docket/json.hpp"

#include <cmath>
#include <vector>

#include "docket/errors.hpp"

namespace docket {

namespace {

class BoundedDom : public nlohmann::detail::json_sax_dom_parser<Json> {
  using Base = nlohmann::detail::json_sax_dom_parser<Json>;

 public:
  BoundedDom(Json& root, int max_depth) : Base(root, false), max_depth_(max_depth) {}

  bool start_object(std::size_t n) {
    value_starts();
    if (!enter(false)) return false;
    return Base::start_object(n);
  }
  bool end_object() {
    leave();
    return Base::end_object();
  }
  bool start_array(std::size_t n) {
    value_starts();
    if (!enter(true)) return false;
    return Base::start_array(n);
  }
  bool end_array() {
    leave();
    return Base::end_array();
  }
  bool key(Json::string_t& k) {
    if (!frames_.empty()) frames_.back().key = k;
    return Base::key(k);
  }
  bool null() {
    value_starts();
    return Base::null();
  }
  bool boolean(bool b) {
    value_starts();
    return Base::boolean(b);
  }
  bool number_integer(Json::number_integer_t v) {
    value_starts();
    return Base::number_integer(v);
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    value_starts();
    return Base::number_unsigned(v);
  }
  bool string(Json::string_t& s) {
    value_starts();
    return Base::string(s);
  }
  bool number_float(Json::number_float_t value, const std::string& lexeme) {
    value_starts();
    // The lexer falls back to a double for integers beyond 64 bits: refuse the silent rounding.
    if (lexeme.find_first_of(".eE") == std::string::npos) {
      error = at() + "integer " + shorten(lexeme) + " does not fit in 64 bits (send it as a string)";
      return false;
    }
    if (!std::isfinite(value)) {
      error = at() + "number " + shorten(lexeme) + " is out of range";
      return false;
    }
    return Base::number_float(value, lexeme);
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string&, const Exception& ex) {
    if (error.empty()) {
      std::string what = ex.what();
      // The lexer reports number overflow (1e400) here: name the field it belongs to.
      if (what.find("number overflow") != std::string::npos) value_starts();
      // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> the readable part
      if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      error = what.empty() ? "malformed JSON at byte " + std::to_string(position) : at() + what;
    }
    return false;
  }

  std::string error;

 private:
  /// One open array or object: the key being read (objects) or how many values it has so far.
  struct Frame {
    bool array;
    std::string key;
    std::size_t values = 0;
  };
  bool enter(bool array) {
    if (++depth_ > max_depth_) {
      error = "nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    frames_.push_back({array, {}, 0});
    return true;
  }
  void leave() {
    --depth_;
    if (!frames_.empty()) frames_.pop_back();
  }
  void value_starts() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().values;
  }
  /// "at args.items[3]: " for the value being read (numbers, malformed input); "" at the top level.
  std::string at() const {
    std::string path;
    for (const auto& f : frames_) {
      if (f.array) {
        path += "[" + std::to_string(f.values == 0 ? 0 : f.values - 1) + "]";
      } else {
        path += (path.empty() ? "" : ".") + shorten(f.key);
      }
    }
    return path.empty() ? "" : "at " + path + ": ";
  }
  static std::string shorten(const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; }

  int depth_ = 0;
  int max_depth_;
  std::vector<Frame> frames_;
};

}  // namespace

std::optional<Json> try_parse_json(std::string_view text, std::string_view what, std::string* error, int max_depth) {
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
