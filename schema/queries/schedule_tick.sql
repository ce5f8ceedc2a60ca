-- Due schedules' jobs, enqueued once per slot across the fleet (see docket.schedule_tick).
-- Returns the jobs enqueued, each one's lateness in seconds, and seconds until the next is due.
SELECT enqueued, lateness_s, next_due_in FROM docket.schedule_tick()
