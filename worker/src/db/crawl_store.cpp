// db::CrawlStore: the crawl statements on a Session's connection.
#include "db/crawl_store.hpp"

#include "db/rows.hpp"
#include "db/session_impl.hpp"

namespace docket::db {

namespace {
std::optional<std::string> num(std::int64_t v) {
  return std::to_string(v);
}
}  // namespace

std::optional<CrawlState> CrawlStore::start(const JobFence& f, const std::string& kind,
                                            const std::string& collection_template, const std::string& first_url) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) -> std::optional<CrawlState> {
    auto res = DOCKET_RUN(q::crawl_start, num(f.job), f.worker, num(f.attempt), kind, collection_template, first_url);
    if (res.empty()) return std::nullopt;
    return rows::crawl_state(res[0]);
  });
}

std::optional<std::pair<int, int>> CrawlStore::page(std::int64_t crawl, const JobFence& f, const std::string& items,
                                                    const std::optional<std::string>& next_url,
                                                    const std::optional<std::string>& cursor) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) -> std::optional<std::pair<int, int>> {
    auto res = DOCKET_RUN(q::crawl_page, num(crawl), num(f.job), f.worker, num(f.attempt), items, next_url, cursor);
    if (res.empty()) return std::nullopt;
    return std::make_pair(res[0]["pages"].as<int>(), res[0]["items"].as<int>());
  });
}

bool CrawlStore::error(std::int64_t crawl, const JobFence& f, const std::string& error, bool final) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) {
    return DOCKET_RUN(q::crawl_error, num(crawl), num(f.job), f.worker, num(f.attempt), error,
                      std::string(final ? "true" : "false"))[0][0]
        .as<bool>();
  });
}

bool CrawlStore::finalizing(std::int64_t crawl, const JobFence& f) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) {
    return DOCKET_RUN(q::crawl_finalizing, num(crawl), num(f.job), f.worker, num(f.attempt))[0][0].as<bool>();
  });
}

bool CrawlStore::activate(std::int64_t crawl, const JobFence& f) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) {
    return DOCKET_RUN(q::crawl_activate, num(crawl), num(f.job), f.worker, num(f.attempt))[0][0].as<bool>();
  });
}

std::pair<std::int64_t, std::int64_t> CrawlStore::shrink(std::int64_t crawl) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) {
    const auto row = DOCKET_RUN(q::crawl_shrink, num(crawl))[0];
    return std::make_pair(row["removed"].as<std::int64_t>(), row["live"].as<std::int64_t>());
  });
}

bool CrawlStore::activate_custom(std::int64_t crawl, const JobFence& f, const std::vector<std::string>& statements,
                                 const std::string& collection) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) {
    // One transaction: the fence (locks the job row), the kind's own SQL, the cache clean-up.
    pqxx::work tx(c);
    if (!exec_query(tx, *impl_, q::crawl_owns, f.job, f.worker, f.attempt)[0][0].as<bool>()) return false;
    for (const auto& sql : statements) {
      // Pass only the parameters the statement uses: an unused one has no type PostgreSQL can infer.
      if (sql.find("$2") != std::string::npos) {
        tx.exec_params(sql, crawl, collection);
      } else if (sql.find("$1") != std::string::npos) {
        tx.exec_params(sql, crawl);
      } else {
        tx.exec(sql);
      }
    }
    exec_query(tx, *impl_, q::crawl_done, crawl, f.job);
    tx.commit();
    return true;
  });
}

std::optional<double> CrawlStore::host_acquire(const std::string& host, const std::string& holder,
                                               const std::string& worker, double lease_s) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) -> std::optional<double> {
    auto res = DOCKET_RUN(q::crawl_host_acquire, host, holder, worker, std::to_string(lease_s));
    if (res.empty() || res[0][0].is_null()) return std::nullopt;
    return res[0][0].as<double>();
  });
}

void CrawlStore::host_release(const std::string& host, const std::string& holder, double gap_s) {
  guarded(session_, impl_->conn,
          [&](pqxx::connection& c) { DOCKET_RUN(q::crawl_host_release, host, holder, std::to_string(gap_s)); });
}

int CrawlStore::sweep() {
  return guarded(session_, impl_->conn,
                 [&](pqxx::connection& c) { return DOCKET_RUN(q::crawl_sweep)[0][0].as<int>(); });
}

std::vector<CrawlRecord> CrawlStore::list(const CrawlFilter& f) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) {
    auto res = DOCKET_RUN(q::crawl_list, f.collection, f.status, f.after ? num(*f.after) : std::nullopt,
                          std::to_string(f.limit));
    std::vector<CrawlRecord> out;
    for (const auto& row : res) {
      out.push_back(parse_json(std::string_view(row[0].c_str(), row[0].size()), "crawl row").get<CrawlRecord>());
    }
    return out;
  });
}

std::optional<CrawlRecord> CrawlStore::get(std::int64_t id) {
  return guarded(session_, impl_->conn, [&](pqxx::connection& c) -> std::optional<CrawlRecord> {
    auto res = DOCKET_RUN(q::crawl_get, num(id));
    if (res.empty()) return std::nullopt;
    return parse_json(std::string_view(res[0][0].c_str(), res[0][0].size()), "crawl row").get<CrawlRecord>();
  });
}

}  // namespace docket::db
