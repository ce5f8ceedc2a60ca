#!/usr/bin/env node
// Summarises a bench results file (JSON lines from `docket bench` and the peers harness): the
// median of every figure over the repetitions, and the performance targets as ratios between
// figures measured in the same run.
//   node bench/compare.mjs RESULTS.jsonl [--markdown]   (--markdown: the whole bench/RESULTS.md)
import fs from "node:fs";

const [file, ...flags] = process.argv.slice(2);
if (!file) {
  console.error("usage: node bench/compare.mjs RESULTS.jsonl [--markdown]");
  process.exit(2);
}
const records = fs
  .readFileSync(file, "utf8")
  .split("\n")
  .filter((l) => l.trim().startsWith("{"))
  .map((l) => JSON.parse(l));
const env = records.find((r) => r.system === "env");

const get = (rec, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), rec);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Values of one field over the repetitions of (system, metric). */
const values = (system, metric, field) =>
  records
    .filter((r) => r.system === system && r.metric === metric)
    .map((r) => get(r, field))
    .filter((v) => typeof v === "number" && Number.isFinite(v));
const med = (system, metric, field) => {
  const v = values(system, metric, field);
  return v.length ? median(v) : undefined;
};

const fmt = (v, digits) => {
  if (v === undefined) return "–";
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return v.toFixed(digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2));
};

// --- the targets of the performance issue ------------------------------------------------------
const docket = (metric, field) => ({ system: "docket", metric, field });
const gw = (metric, field = "per_sec") => ({ system: "graphile-worker", metric, field });
const pgb = (metric, field = "per_sec") => ({ system: "pgbench", metric, field });
const raw = (field) => ({ system: "raw SQL (node-postgres)", metric: "latency_listen_notify", field });
const ideal = (value, label) => ({ constant: value, label });

const targets = [
  ["Drain 50k no-op jobs, 1 process vs graphile-worker perfTest config (fetch 500)",
    docket("drain", "process_per_s"), gw("process_batched_c24_q500"), ">=", 2.0],
  ["Drain vs graphile-worker fetch 2000", docket("drain", "process_per_s"), gw("process_batched_c24_q2000"), ">=", 1.3],
  ["Drain vs raw claim+complete, batch 500, 2 connections",
    docket("drain", "process_per_s"), pgb("drain_b500_c2"), ">=", 0.75],
  ["Bulk enqueue 50k in one call vs graphile-worker add_jobs",
    docket("enqueue", "enqueue_per_s"), gw("enqueue_bulk_sql"), ">=", 2.0],
  ["Bulk enqueue vs raw COPY of 50k rows", docket("enqueue", "enqueue_per_s"), pgb("raw_copy_50000"), ">=", 0.7],
  ["Latency p50 vs the raw SQL floor", docket("latency", "latency_p50_ms"), raw("enqueue_to_handler_ms.p50"), "<=", 1.25],
  ["Latency p99 vs the raw SQL floor", docket("latency", "latency_p99_ms"), raw("enqueue_to_handler_ms.p99"), "<=", 1.5],
  ["Latency p50 vs graphile-worker", docket("latency", "latency_p50_ms"),
    gw("latency_batched", "enqueue_to_handler_ms.p50"), "<", 1.0],
  ["Latency p99 vs graphile-worker", docket("latency", "latency_p99_ms"),
    gw("latency_batched", "enqueue_to_handler_ms.p99"), "<", 1.0],
  ["Steady state vs raw steady state (batch 100, 4 connections)",
    docket("steady", "process_per_s"), pgb("steady_b100_c4"), ">=", 0.8],
  ["Steady state vs raw steady state (batch 100, 2 connections)",
    docket("steady", "process_per_s"), pgb("steady_b100_c2"), ">=", 0.8],
  ["Quota (limit 50, 20 ms jobs) vs the ideal 2,500 jobs/s", docket("quota", "process_per_s"), ideal(2500, "ideal"), ">=", 0.9],
  ["Bloat (1M finished + 100k scheduled rows) vs the empty-table drain of the same run",
    docket("bloat", "process_per_s"), docket("bloat", "empty_table_process_per_s"), ">=", 0.9],
  ["Scale: drain with 2 processes vs 1", docket("drain_w2", "process_per_s"), docket("drain", "process_per_s"), ">=", 0.9],
  ["Single-row SQL enqueue (docket.enqueue, 4 connections) vs the same call without NOTIFY (no triggers)",
    docket("enqueue_sql", "c4_enqueue_tps"), docket("enqueue_sql", "c4_enqueue_no_notify_tps"), ">=", 0.9],
  ["Single-row SQL enqueue (docket.enqueue, 64 connections) vs the same call without NOTIFY (no triggers)",
    docket("enqueue_sql", "c64_enqueue_tps"), docket("enqueue_sql", "c64_enqueue_no_notify_tps"), ">=", 0.9],
  ["Single-row SQL enqueue (4 connections) vs a bare INSERT into docket.jobs without triggers",
    docket("enqueue_sql", "c4_enqueue_tps"), docket("enqueue_sql", "c4_insert_no_notify_tps"), ">=", 0.9],
  ["Single-row SQL enqueue (64 connections) vs a bare INSERT into docket.jobs without triggers",
    docket("enqueue_sql", "c64_enqueue_tps"), docket("enqueue_sql", "c64_insert_no_notify_tps"), ">=", 0.9],
  ["Scale: drain with 4 processes vs 1", docket("drain_w4", "process_per_s"), docket("drain", "process_per_s"), ">=", 0.9],
  ["Keyed limits (1,000 keys, max_running_per_key 1) vs the unlimited drain of the same run",
    docket("keyed", "process_per_s"), docket("keyed", "unlimited_process_per_s"), ">=", 0.8],
  ["Rate limit above the achievable throughput vs no limit, same run",
    docket("rate", "process_per_s"), docket("rate", "unlimited_process_per_s"), ">=", 0.9],
  ["Rate 50/s, 3 worker processes, 60 s: observed vs 50/s",
    docket("rate", "rate_observed_per_s"), ideal(50, "the rate"), ">=", 0.95],
];
// Absolute limits rather than ratios: checked on the worst repetition.
const limits = [
  ["Quota: most jobs of the limited kind seen running at once (limit 50)", "quota", "max_running_seen", Math.max, "<=", 50],
  ["Rate 50/s: observed vs 50/s (at most +5%)", "rate", "rate_ratio", Math.max, "<=", 1.05],
  ["Rate 50/s: most jobs started in any 1 s window (rate + burst 100)", "rate", "rate_most_in_1s_window", Math.max, "<=", 100],
  ["Connections per worker process (concurrency 500)", ["drain", "drain_w2", "drain_w4", "drain_1m"],
    "connections_per_worker", Math.max, "<=", 4],
];

const side = (s) => (s.constant !== undefined ? s.constant : med(s.system, s.metric, s.field));
/** The ratio of each repetition: the k-th figure of one side over the k-th of the other (records
 * are appended in the order the repetitions ran; a constant divides every repetition). */
const ratios = (a, b) => {
  const va = values(a.system, a.metric, a.field);
  const vb = b.constant !== undefined ? va.map(() => b.constant) : values(b.system, b.metric, b.field);
  const n = Math.min(va.length, vb.length);
  return Array.from({ length: n }, (_, i) => va[i] / vb[i]).filter((r) => Number.isFinite(r));
};
const spread = (rs) => (rs.length ? `${fmt(Math.min(...rs), 2)} – ${fmt(Math.max(...rs), 2)}` : "–");
const label = (s) => (s.constant !== undefined ? s.label : `${s.system} ${s.metric}`);
const ok = (v, op, t) => (v === undefined ? "–" : (op === ">=" ? v >= t : op === "<=" ? v <= t : v < t) ? "yes" : "**no**");

const out = [];
const md = flags.includes("--markdown");
if (md) {
  out.push("# Docket benchmark results", "");
  out.push("Regenerated by `make bench-peers` (bench/peers.sh): graphile-worker, the raw SQL limits of the peers");
  out.push("harness and `docket bench` on one PostgreSQL cluster, repetitions interleaved. Figures are medians");
  out.push("over the repetitions; ratios divide medians measured in the same run. Absolute figures drift with the");
  out.push("machine's load: compare ratios.", "");
  if (env) {
    out.push(`- date: ${env.ts}`);
    out.push(`- command: \`${env.command}\``);
    out.push(`- machine: ${env.cpus} × ${env.cpu}, ${env.memory_gib} GiB, Linux ${env.kernel}`);
    out.push(`- ${env.postgres}; ${env.settings}`);
    out.push(`- graphile-worker ${env.graphile_worker} on node ${env.node}`);
    out.push("");
  }
}
out.push("## Targets", "");
out.push("Ratio: of the medians; min – max: the ratio of each repetition (its k-th figures).", "");
out.push("| target | Docket | reference | ratio | min – max | goal | met |", "|---|---|---|---|---|---|---|");
for (const [what, a, b, op, goal] of targets) {
  const va = side(a);
  const vb = side(b);
  const ratio = va !== undefined && vb ? va / vb : undefined;
  out.push(`| ${what} | ${fmt(va)} | ${fmt(vb)} (${label(b)}) | ${fmt(ratio, 2)} | ${spread(ratios(a, b))} | ` +
    `${op} ${goal} | ${ok(ratio, op, goal)} |`);
}
for (const [what, metrics, field, pick, op, goal] of limits) {
  const v = [].concat(metrics).flatMap((m) => values("docket", m, field));
  const worst = v.length ? pick(...v) : undefined;
  out.push(`| ${what} | ${fmt(worst)} | – | – | – | ${op} ${goal} | ${ok(worst, op, goal)} |`);
}
{
  const first = med("docket", "drain_1m", "worker_rss_kb_quarter");
  const most = med("docket", "drain_1m", "worker_rss_kb_max_after_quarter");
  const growth = first && most ? most / first : undefined;
  out.push(`| Worker memory over a 1M drain: most RSS after a quarter of it vs RSS at a quarter | ${fmt(most)} kB | ` +
    `${fmt(first)} kB | ${fmt(growth, 2)} | – | <= 1.1 | ${ok(growth, "<=", 1.1)} |`);
}

// --- cost growth (docket bench growth, once per harness run) ----------------------------------
{
  const growth = records.filter((r) => r.system === "docket" && r.scenario === "growth" && Array.isArray(r.sizes));
  if (growth.length) {
    out.push("", "## Cost growth", "");
    out.push("Per-job cost by table size (`docket bench growth`): drains of N queued jobs, and single-row SQL",
      "enqueues (4 connections) into a table already holding N finished rows. Goal: flat within 15%.", "");
    out.push("| what | size | jobs/s | µs per job | vs the smallest size |", "|---|---|---|---|---|");
    for (const r of growth) {
      const first = {};
      for (const row of r.sizes) {
        first[row.what] ??= row.us_per_job;
        out.push(`| ${row.what} | ${row.size.toLocaleString("en")} | ${fmt(row.per_s)} | ${fmt(row.us_per_job)} | ` +
          `${fmt(row.us_per_job / first[row.what], 2)} |`);
      }
    }
  }
}

// --- every figure ------------------------------------------------------------------------------
const fieldsOf = (r) => {
  if (r.system === "docket") {
    switch (r.scenario) {
      case "enqueue": return ["enqueue_per_s"];
      case "latency": return ["latency_p50_ms", "latency_p99_ms", "latency_max_ms"];
      case "steady": return ["process_per_s", "enqueue_per_s"];
      case "quota": return ["process_per_s", "max_running_seen"];
      case "bloat": return ["process_per_s", "empty_table_process_per_s"];
      case "keyed": return ["process_per_s", "unlimited_process_per_s", "ratio"];
      case "rate": return ["process_per_s", "unlimited_process_per_s", "high_rate_ratio", "rate_observed_per_s",
        "rate_ratio", "rate_most_in_1s_window"];
      case "growth": return ["drain_cost_growth", "enqueue_sql_c4_cost_growth"];
      case "enqueue_sql":
        return ["c4_enqueue_tps", "c4_enqueue_no_notify_tps", "c4_insert_no_notify_tps", "c64_enqueue_tps",
          "c64_enqueue_no_notify_tps", "c64_insert_no_notify_tps"];
      default:
        return ["process_per_s", "claim_batch_avg", "finish_batch_avg", "connections_per_worker",
          "worker_rss_kb_quarter", "worker_rss_kb_max"];
    }
  }
  if (r.enqueue_to_handler_ms) return ["enqueue_to_handler_ms.p50", "enqueue_to_handler_ms.p99"];
  return ["per_sec"];
};
out.push("", "## Every figure", "");
out.push("| system | measurement | field | median | min – max | runs |", "|---|---|---|---|---|---|");
const seen = new Set();
for (const r of records) {
  const key = `${r.system}|${r.metric}`;
  if (r.system === "env" || seen.has(key)) continue;
  seen.add(key);
  for (const f of fieldsOf(r)) {
    const v = values(r.system, r.metric, f);
    if (!v.length) continue;
    out.push(`| ${r.system} | ${r.metric} | ${f} | ${fmt(median(v))} | ${fmt(Math.min(...v))} – ${fmt(Math.max(...v))} | ${v.length} |`);
  }
}
console.log(out.join("\n"));
