-- Jobs per queue and state.
SELECT queue, state::text, jobs FROM docket.queue_states ORDER BY queue, state
