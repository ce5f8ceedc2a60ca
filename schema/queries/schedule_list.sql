-- Schedules with their next and last slot and their last job's state, by name.
-- $1 name (NULL: all), $2 limit
SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]')
  FROM (SELECT * FROM docket.schedule_status st
         WHERE $1::text IS NULL OR st.name = $1 ORDER BY st.name LIMIT $2::int) s
