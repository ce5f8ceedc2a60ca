#include "http_server.hpp"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <iterator>
#include <thread>

namespace docket::api::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using Parser = bhttp::request_parser<bhttp::string_body>;

namespace {

/// After an early answer, an unread body is drained (discarded, never parsed) for at most this many
/// bytes and kDrainTime before closing, so a client still sending reads our answer, not a reset.
constexpr std::size_t kDrainBytes = 32 << 20;
constexpr std::chrono::milliseconds kDrainTime{1000};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return true;
}

/// Sets the limits on a fresh parser: the same for sockets and for parse_request_bytes.
void configure(Parser& parser, const Limits& limits) {
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(static_cast<std::uint64_t>(limits.max_body));
}

/// The answer to a parse error, or 0 for "not an answerable error" (the peer went away).
std::pair<int, std::string> classify(const beast::error_code& ec) {
  if (ec == bhttp::error::header_limit) return {431, "the request head is larger than api.max_header_bytes"};
  if (ec == bhttp::error::body_limit) return {413, "the request body is larger than the server accepts (api.max_body)"};
  if (ec == beast::error::timeout) return {408, "the request was not received in time"};
  if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
      ec == net::error::operation_aborted)
    return {0, ""};
  return {400, "malformed HTTP request: " + ec.message()};
}

/// A head with more fields than the cap is refused whatever its byte size.
bool too_many_fields(const Message& m, const Limits& limits) {
  return static_cast<std::size_t>(std::distance(m.begin(), m.end())) > limits.max_header_count;
}

}  // namespace

std::string Request::header(std::string_view name) const {
  const auto it = message.find(beast::string_view(name.data(), name.size()));
  return it == message.end() ? std::string() : std::string(it->value());
}

std::string Request::method() const {
  return std::string(message.method_string());
}

bool split_target(std::string_view target, std::string& path, std::multimap<std::string, std::string>& params) {
  const auto q = target.find('?');
  if (!percent_decode(target.substr(0, q), false, path)) return false;
  if (q == std::string_view::npos) return true;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    std::string name, value;
    if (!percent_decode(pair.substr(0, eq), true, name)) return false;
    if (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), true, value)) return false;
    params.emplace(std::move(name), std::move(value));
  }
  return true;
}

ParseResult parse_request_bytes(std::string_view bytes, const Limits& limits) {
  ParseResult out;
  Parser parser;
  configure(parser, limits);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = 0;
  while (used < bytes.size() && !parser.is_done()) {
    const std::size_t n = parser.put(net::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (ec == bhttp::error::need_more) break;
    if (ec) break;
    if (n == 0) break;
    used += n;
    if (parser.is_header_done() && too_many_fields(parser.get(), limits)) {
      return {std::nullopt, 431, "more than api.max_header_count header fields"};
    }
  }
  if (ec && ec != bhttp::error::need_more) {
    auto [status, reason] = classify(ec);
    return {std::nullopt, status == 0 ? 400 : status, reason};
  }
  if (!parser.is_done()) return out;
  out.request = parser.release();
  return out;
}

// ------------------------------------------------------------------------------------------------

struct HttpServer::Impl {
  Impl(Limits l, Handlers h, int threads)
      : limits(l), handlers(std::move(h)), io_threads(std::max(1, threads)), acceptor(ioc) {}

  void accept();

  // Declared before ioc: destroying ioc destroys the connections still queued in it, which use these.
  Limits limits;
  Handlers handlers;
  int io_threads;
  std::atomic<int> open{0};
  net::io_context ioc;
  tcp::acceptor acceptor;
};

namespace {

/// One client connection: reads a request, answers it, and either reads the next or closes.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, HttpServer::Impl* server) : stream_(std::move(socket)), server_(server) {
    ++server_->open;
    beast::error_code ec;
    const auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec) peer_ = remote.address().to_string();
  }
  ~Connection() { --server_->open; }

  /// Serves requests until the client leaves, a deadline passes or an answer ends the connection.
  void start(bool over_capacity) {
    if (over_capacity) {
      started_ = SteadyClock::now();
      method_ = "-";
      return send(server_->handlers.error(503, "unavailable",
                                          "the API has too many open connections (api.max_connections); retry shortly"),
                  false);
    }
    read_head(server_->limits.header_timeout);
  }

 private:
  const Limits& limits() const { return server_->limits; }

  void read_head(std::chrono::milliseconds deadline) {
    parser_.emplace();
    configure(*parser_, limits());
    stream_.expires_after(deadline);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_head(ec); });
  }

  void on_head(beast::error_code ec) {
    started_ = SteadyClock::now();
    if (ec) return fail(ec);
    const Message& head = parser_->get();
    method_ = std::string(head.method_string());
    if (too_many_fields(head, limits())) {
      return send(
          server_->handlers.error(431, "header_fields_too_large", "more than api.max_header_count header fields"),
          false);
    }
    if (auto early = server_->handlers.check_head(head, peer_)) {
      // The body was not read: keep the connection only if there is none.
      return send(std::move(*early), parser_->is_done() && head.keep_alive());
    }
    if (parser_->is_done()) return dispatch();
    if (bhttp::token_list(head[bhttp::field::expect]).exists("100-continue")) {
      continue_ = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, head.version());
      return bhttp::async_write(stream_, *continue_, [self = shared_from_this()](beast::error_code e, std::size_t) {
        if (e) return self->fail(e);
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(limits().body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail(ec);
      self->dispatch();
    });
  }

  void dispatch() {
    stream_.expires_never();  // a handler may wait on the database; the write has its own deadline
    Request req;
    req.message = parser_->release();
    req.peer = peer_;
    const std::string target(req.message.target());
    if (!split_target(target, req.path, req.params)) {
      return send(server_->handlers.error(400, "bad_request", "the request target has broken percent-encoding"), false);
    }
    const bool keep = req.message.keep_alive();
    auto self = shared_from_this();
    server_->handlers.handle(std::move(req), [self, keep](Response res) {
      net::post(self->stream_.get_executor(),
                [self, keep, res = std::move(res)]() mutable { self->send(std::move(res), keep); });
    });
  }

  /// A read failed: answer what can be answered, then close.
  void fail(beast::error_code ec) {
    auto [status, reason] = classify(ec);
    if (status == 0 || (status == 408 && !parser_->got_some())) return close();
    const char* code = status == 413   ? "payload_too_large"
                       : status == 431 ? "header_fields_too_large"
                       : status == 408 ? "request_timeout"
                                       : "bad_request";
    if (method_.empty()) method_ = "-";
    send(server_->handlers.error(status, code, reason), false);
  }

  void send(Response res, bool keep_alive) {
    keep_alive_ = keep_alive;
    response_ = std::move(res);
    auto msg = std::make_shared<bhttp::response<bhttp::string_body>>();
    msg->version(11);
    msg->result(static_cast<unsigned>(response_.status));
    msg->set(bhttp::field::server, "docket");
    msg->set(bhttp::field::content_type, response_.content_type);
    for (const auto& [name, value] : response_.headers) msg->set(name, value);
    msg->keep_alive(keep_alive);
    msg->body() = std::move(response_.body);
    msg->prepare_payload();
    stream_.expires_after(limits().body_timeout);
    bhttp::async_write(stream_, *msg,
                       [self = shared_from_this(), msg](beast::error_code ec, std::size_t) { self->on_sent(ec); });
  }

  void on_sent(beast::error_code ec) {
    const double secs = std::chrono::duration<double>(SteadyClock::now() - started_).count();
    if (server_->handlers.observe) server_->handlers.observe(method_, response_, secs);
    if (ec) return close();
    if (!keep_alive_) return drain_and_close();
    method_.clear();
    read_head(limits().idle_timeout);
  }

  /// Half-closes, then reads (and discards) a bounded amount of what the client still sends, so
  /// the answer is not destroyed by a reset; the unread rest of a request is never parsed.
  void drain_and_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kDrainTime);
    drain_buffer_.resize(8192);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ >= kDrainBytes) return self->close();
                              self->drain();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  std::shared_ptr<bhttp::response<bhttp::empty_body>> continue_;
  SteadyClock::time_point started_ = SteadyClock::now();
  std::string method_;
  Response response_;
  bool keep_alive_ = false;
  std::vector<char> drain_buffer_;
  std::size_t drained_ = 0;
  std::string peer_;  ///< the client's IP address ("" if the socket could not tell)
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [self = this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !self->acceptor.is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      // Headers and body go out in one write, but without TCP_NODELAY a small answer can still
      // wait for the client's delayed ACK.
      socket.set_option(tcp::no_delay(true), ignored);
      const bool over = self->open.load() >= self->limits.max_connections;
      std::make_shared<Connection>(std::move(socket), self)->start(over);
    }
    self->accept();
  });
}

HttpServer::HttpServer(Limits limits, Handlers handlers, int io_threads)
    : impl_(std::make_unique<Impl>(limits, std::move(handlers), io_threads)) {}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind(const std::string& host, int port) {
  const auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host);
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  auto& a = impl_->acceptor;
  try {
    a.open(endpoint.protocol());
    a.set_option(net::socket_base::reuse_address(true));
    a.bind(endpoint);
    // A burst of clients connecting at once must not see SYNs dropped.
    a.listen(1024);
    return a.local_endpoint().port();
  } catch (...) {
    beast::error_code ignored;
    a.close(ignored);  // so the caller may try another address
    throw;
  }
}

bool HttpServer::run() {
  if (!impl_->acceptor.is_open()) return false;
  impl_->accept();
  std::vector<std::thread> extra;
  for (int i = 1; i < impl_->io_threads; ++i) extra.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (auto& t : extra) t.join();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  return true;
}

void HttpServer::stop() {
  impl_->ioc.stop();
}

int HttpServer::connections() const {
  return impl_->open.load();
}

}  // namespace docket::api::http
