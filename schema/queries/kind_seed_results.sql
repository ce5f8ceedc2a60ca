-- A worker's config seeds a kind's result settings (docket.seed_kind_results): with $2 the unique
-- settings become exactly $3-$5 (the kind's derived unique key); a NULL $6 leaves the stored TTL.
-- $1 text kind, $2 boolean set unique, $3 text[] unique_by (args paths), $4 interval unique_for,
-- $5 text[] unique_states, $6 interval result_ttl
SELECT docket.seed_kind_results($1, $2::boolean, $3::text[], $4::interval, $5::text[], $6::interval)
