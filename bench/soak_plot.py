#!/usr/bin/env python3
"""Draws bench/soak.csv (make soak) as an SVG of four panels over the run's minutes: throughput,
the no-op jobs' wait p99, the jobs table and index sizes, and the oldest transaction's xmin age.
The held REPEATABLE READ transaction is shaded. Standard library only."""
import csv
import sys

W, H, PAD, GAP = 900, 190, 60, 30
PANELS = [
    ("jobs per second", [("enqueued_per_s", "#888"), ("completed_per_s", "#1f77b4"), ("failed_per_s", "#d62728")]),
    ("wait p99, ms (no-op jobs)", [("wait_p99_ms", "#9467bd"), ("wait_p50_ms", "#bbb")]),
    ("jobs table and indexes, MB", [("table_mb", "#2ca02c"), ("index_mb", "#ff7f0e")]),
    ("oldest xmin age (transactions)", [("xmin_age", "#8c564b")]),
]


def main(src, dst):
    rows = list(csv.DictReader(open(src)))
    if not rows:
        sys.exit("no samples in " + src)
    xs = [float(r["minute"]) for r in rows]
    x0, x1 = 0.0, max(xs) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{len(PANELS) * (H + GAP) + GAP}" '
           'font-family="sans-serif" font-size="12">', '<rect width="100%" height="100%" fill="white"/>']
    for i, (title, series) in enumerate(PANELS):
        top = GAP + i * (H + GAP)
        left, width, height = PAD, W - PAD - 20, H - 20
        ymax = max([float(r[k] or 0) for r in rows for k, _ in series] + [1e-9]) * 1.1

        def px(x):
            return left + (x - x0) / (x1 - x0) * width

        def py(y):
            return top + height - y / ymax * height

        held = [xs[j] for j, r in enumerate(rows) if r["held"] == "1"]
        if held:
            out.append(f'<rect x="{px(min(held)):.1f}" y="{top}" width="{max(px(max(held)) - px(min(held)), 2):.1f}" '
                       f'height="{height}" fill="#f3e3b0"/>')
        out.append(f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#444"/>')
        out.append(f'<text x="{left}" y="{top - 6}">{title}</text>')
        out.append(f'<text x="{left - 5}" y="{top + 10}" text-anchor="end">{ymax / 1.1:.3g}</text>')
        out.append(f'<text x="{left - 5}" y="{top + height}" text-anchor="end">0</text>')
        for k, colour in series:
            pts = " ".join(f"{px(x):.1f},{py(float(r[k] or 0)):.1f}" for x, r in zip(xs, rows))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        legend = "  ".join(k for k, _ in series)
        out.append(f'<text x="{left + width}" y="{top - 6}" text-anchor="end" fill="#444">{legend}</text>')
        out.append(f'<text x="{left + width}" y="{top + height + 14}" text-anchor="end">{x1:.0f} min</text>')
    out.append(f'<text x="{PAD}" y="{len(PANELS) * (H + GAP) + GAP - 4}" fill="#886">'
               'shaded: a REPEATABLE READ transaction held open</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
