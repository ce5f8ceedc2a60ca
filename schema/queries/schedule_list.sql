-- Schedules with their next and last slot and their last job's state, by name.
-- $1 name (NULL: all), $2 limit, $3 after: only names sorting after it (keyset page; NULL: from the start)
SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]')
  FROM (SELECT * FROM docket.schedule_status st
         WHERE ($1::text IS NULL OR st.name = $1) AND ($3::text IS NULL OR st.name > $3)
         ORDER BY st.name LIMIT $2::int) s
