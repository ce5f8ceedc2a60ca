-- Per queue: available, running and waiting counts, oldest available age, paused flag.
SELECT queue, available, running, waiting, oldest_available_age_s, paused
  FROM docket.queue_summary ORDER BY queue
