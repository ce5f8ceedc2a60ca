#pragma once
// Each result shape of schema/queries decoded in exactly one place, by column NAME (the SELECT's
// names and aliases), never by position: a query that gains or reorders columns still decodes,
// and a renamed column fails loudly (pqxx: unknown column) instead of reading its neighbour.
#include <pqxx/pqxx>

#include "db/crawl_store.hpp"
#include "db/session.hpp"

namespace docket::db::rows {

/// A claimed job: job_claim, job_claim_open, the claimed rows of job_finish_claim.
ClaimedJob claimed(const pqxx::row& row);
/// A job running under a worker (worker_running_jobs): id, attempt, kind, queue, max_retries; the
/// rest of the ClaimedJob stays empty.
ClaimedJob running(const pqxx::row& row);
/// What one fenced outcome did: job_finish, the finished rows of job_finish_claim (id, state);
/// job_complete returns only id: its rows are completed.
Finished finished(const pqxx::row& row);
/// A job whose `job` column is docket.job_json text: job_get, job_get_many, job_by_key, job_list,
/// job_enqueue_many_jobs.
JobRecord job(const pqxx::row& row);
/// job_enqueue, job_enqueue_many: id, created, and unserved when the query has it.
EnqueueResult enqueued(const pqxx::row& row);
/// job_enqueue_many_jobs: the job, created, unserved.
Submitted submitted(const pqxx::row& row);
/// kind_limits.
KindLimit kind_limit(const pqxx::row& row);
/// queue_summary.
QueueSummary queue_summary(const pqxx::row& row);
/// kind_hot_keys.
KeyLimit key_limit(const pqxx::row& row);
/// kind_seed.
Session::SeedOutcome seed_outcome(const pqxx::row& row);
/// job_claim's row without a job: the seconds until an empty rate-limit bucket has a token.
std::optional<double> rate_wait(const pqxx::row& row);
/// job_promote.
Promoted promoted(const pqxx::row& row);
/// schedule_tick.
ScheduleTick schedule_tick(const pqxx::row& row);
/// schedule_counts.
ScheduleCounts schedule_counts(const pqxx::row& row);
/// crawl_start (a row that names a duplicate crawl carries only duplicate_of and collection).
CrawlState crawl_state(const pqxx::row& row);

}  // namespace docket::db::rows
