-- A job of the schedule now; the next slot does not move. NULL when the kind's unique job is
-- already unfinished (a running crawl). $1 name
SELECT docket.run_schedule_now($1)
