"""scripts/compare: ratios to a baseline, U tests, report.md and plots of one or two runs."""

import argparse
import csv
import glob
import json
import math
import os
import sys

import bench_convert
import bench_spec
import bench_stats

ALPHA = 0.05
NOISY_CV = 0.05


class Run:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.id = os.path.basename(self.path.rstrip("/"))
        with open(os.path.join(path, "results.csv"), newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != bench_spec.CSV_HEADER:
                sys.exit(f"{path}/results.csv: header {reader.fieldnames}")
            self.rows = {(r["workload"], r["impl"], r["param_value"], r["metric"]): r
                         for r in reader}
        try:
            with open(os.path.join(path, "machine.json")) as f:
                self.machine = json.load(f)
        except OSError:
            self.machine = {}
        # Per-repetition values for the U test, from the raw JSON (ours and the Go peer's).
        self.reps = {}
        for p in sorted(glob.glob(os.path.join(path, "raw", "*.json"))):
            self.reps.update(bench_convert.per_repetition_values(bench_convert.load_json(p)))
        self.trees = self.machine.get("trees") or sorted({k[1] for k in self.rows})

    def value(self, key):
        r = self.rows.get(key)
        return float(r["value"]) if r else None

    def impls(self):
        present = {k[1] for k in self.rows}
        return [i for i in bench_spec.impl_order(self.trees) if i in present]


def cost_ratio(metric, value, base):
    """value / base, inverted for higher-is-better metrics (so < 1 always means better)."""
    if value is None or base is None or base == 0 or value == 0:
        return None
    r = value / base
    return 1 / r if metric in bench_spec.HIGHER_IS_BETTER else r


def separation(x, y):
    """(p, separable) of two samples of repetitions."""
    p = bench_stats.mann_whitney_p(x or [], y or [])
    return p, p is not None and p < ALPHA


def fmt(v):
    if v is None:
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _load(values):
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def metadata_lines(run):
    m = run.machine
    s = m.get("settings", {})
    libs = m.get("libraries", {})
    lines = [
        f"- run `{run.id}`: {m.get('date_utc')}, host {m.get('host')}, "
        f"git {str(m.get('git_commit'))[:12]}{' (dirty)' if m.get('git_dirty') else ''}",
        f"- CPU {m.get('cpu_model')} × {m.get('cores')}, "
        f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, {m.get('os')}, kernel {m.get('kernel')}, "
        f"governor {m.get('cpu_governor')}",
        f"- compiler {m.get('compiler_version')}; build type "
        f"{m.get('cmake_cache', {}).get('CMAKE_BUILD_TYPE')}, flags "
        f"`{m.get('cmake_cache', {}).get('CMAKE_CXX_FLAGS_RELEASE', '')}`",
        f"- libbenchmark {libs.get('libbenchmark-dev')} (library_build_type "
        f"**{m.get('gbench_library_build_type')}**), libtbb {libs.get('libtbb-dev')}, "
        f"{libs.get('golang') or 'no Go toolchain'}",
        f"- {s.get('reps')} repetitions (random interleaving), min_time {s.get('min_time')} s, "
        f"one-shot node budget {s.get('oneshot_nodes', 0):.3g}"
        f"{', --quick' if s.get('quick') else ''}; load average (1/5/15 min) "
        f"{_load(m.get('load_average_start'))} → {_load(m.get('load_average_end'))}; "
        f"wall {s.get('wall_seconds')} s",
    ]
    return lines


NOTES = """\
Notes on reading these numbers:
- Debian's libbenchmark is built as DEBUG (`library_build_type` above). That slows the harness, not
  the measured code, but absolute times from this machine are not comparable with other machines
  or builds: **only ratios within one run are meaningful**.
- Cells: median over repetitions (latency percentiles: over every event of every repetition);
  `(×r)` is the ratio to the baseline (for ops_per_sec, baseline/impl, so < 1 is better
  everywhere); `≈` marks a difference from the baseline that the repetitions cannot separate
  (two-sided Mann-Whitney U test, p ≥ 0.05, as Google Benchmark's compare.py; with 3 repetitions
  the smallest possible p is 0.1, so a --quick run marks every cell); `†` marks cv > 5 %.
- Peers: `tbb` (oneTBB task_group_context) runs fanout_create, fanout_cancel, tree_cancel,
  chain_cancel (depth ≤ 1e4), churn, done_poll and memory (kind cancel); its children are bound
  by running an empty task in them from a task of the parent (bench/bm_tbb.cc). `go` is Go's own
  context (Go 1.19): fanout_cancel_callbacks with a goroutine per callback blocked on Done() (the
  pre-1.21 idiom), no chain_destroy row (no deterministic destruction), no timer_fire row but
  timer_fire_observed (as the C++ row of that name, fires seen from waiters blocked on done), and
  its memory is live-heap growth (bench/go/main.go).
"""


def workload_tables(run, base, old=None):
    """Markdown lines of the per-workload tables; also prints the text version."""
    impls = run.impls()
    md = []
    for w in bench_spec.WORKLOADS:
        if not any(k[0] == w.id for k in run.rows):
            continue
        md.append(f"### {w.id}\n\n{w.timed}.\n")
        for metric in w.metrics:
            unit = bench_spec.UNITS[metric]
            cols = [i for i in impls if any((w.id, i, v, metric) in run.rows for v in w.values)]
            md.append(f"**{metric}** ({unit}), baseline `{base}`\n")
            md.append("| " + w.param + " | " + " | ".join(cols) + " |")
            md.append("|---" * (len(cols) + 1) + "|")
            print(f"\n{w.id}  {metric} ({unit})  baseline {base}")
            print(f"  {w.param:>9} " + "".join(f"{c:>22}" for c in cols))
            for v in w.values:
                cells, text = [], []
                bkey = (w.id, base, v, metric)
                bval = run.value(bkey)
                for impl in cols:
                    key = (w.id, impl, v, metric)
                    val = run.value(key)
                    if val is None:
                        cells.append("—")
                        text.append("—")
                        continue
                    cell = fmt(val)
                    if float(run.rows[key]["cv"]) > NOISY_CV:
                        cell += " †"
                    if impl != base:
                        r = cost_ratio(metric, val, bval)
                        if r is not None:
                            _, sep = separation(run.reps.get(key), run.reps.get(bkey))
                            cell += f" (×{r:.2f}{'' if sep else ' ≈'})"
                    if old is not None:
                        oval = old.value(key)
                        if oval:
                            _, sep = separation(run.reps.get(key), old.reps.get(key))
                            cell += f" [{val / oval - 1:+.0%}{'' if sep else ' ≈'}]"
                    cells.append(cell)
                    text.append(cell)
                md.append(f"| {v} | " + " | ".join(cells) + " |")
                print(f"  {v:>9} " + "".join(f"{t:>22}" for t in text))
            plot = plot_name(w.id, metric)
            if os.path.exists(os.path.join(run.plot_dir, plot)):
                md.append(f"\n![{w.id} {metric}]({os.path.basename(run.plot_dir)}/{plot})\n")
            else:
                md.append("")
    return md


def summary_table(run, base):
    """Geometric mean over every row of each impl's cost ratio to the baseline, per workload."""
    impls = [i for i in run.impls() if i != base]
    md = ["| workload | " + " | ".join(impls) + " |", "|---" * (len(impls) + 1) + "|"]
    overall = {i: [] for i in impls}
    for w in bench_spec.WORKLOADS:
        cells = []
        for impl in impls:
            ratios = []
            for v in w.values:
                for metric in w.metrics:
                    r = cost_ratio(metric, run.value((w.id, impl, v, metric)),
                                   run.value((w.id, base, v, metric)))
                    if r is not None:
                        ratios.append(r)
            overall[impl] += ratios
            g = bench_stats.geomean(ratios) if ratios else None
            cells.append(f"×{g:.2f}" if g is not None else "—")
        if any(c != "—" for c in cells):
            md.append(f"| {w.id} | " + " | ".join(cells) + " |")
    md.append("| **all rows** | " + " | ".join(
        f"**×{bench_stats.geomean(overall[i]):.2f}**" if overall[i] else "—" for i in impls) + " |")
    return md


def plot_name(workload, metric):
    return f"{workload}__{metric}.png"


def make_plots(run, old=None):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available: no plots", file=sys.stderr)
        return
    os.makedirs(run.plot_dir, exist_ok=True)
    impls = run.impls()
    colors = {impl: f"C{i}" for i, impl in enumerate(impls)}
    for w in bench_spec.WORKLOADS:
        for metric in w.metrics:
            series = {}
            for impl in impls:
                pts = [(v, run.value((w.id, impl, v, metric))) for v in w.values]
                pts = [(v, y) for v, y in pts if y is not None]
                if pts:
                    series[impl] = pts
            if not series:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            if w.numeric:
                xs = [int(v) for v in w.values]
                decades = max(xs) / max(1, min(xs)) >= 100
                for impl, pts in series.items():
                    ax.plot([int(v) for v, _ in pts], [y for _, y in pts], marker="o",
                            color=colors[impl], label=impl)
                    if old is not None:
                        opts = [(int(v), old.value((w.id, impl, v, metric))) for v, _ in pts]
                        opts = [(x, y) for x, y in opts if y is not None]
                        if opts:
                            ax.plot(*zip(*opts), linestyle="--", marker=".", alpha=0.5,
                                    color=colors[impl], label=f"{impl} ({old.id})")
                if decades:
                    ax.set_xscale("log")
                ys = [y for pts in series.values() for _, y in pts if y > 0]
                if decades or (ys and max(ys) / min(ys) >= 100):
                    ax.set_yscale("log")
                ax.set_xticks(xs)
                ax.set_xticklabels([str(x) for x in xs])
                ax.minorticks_off() if decades else None
            else:
                width = 0.8 / len(series)
                for k, (impl, pts) in enumerate(series.items()):
                    pos = [w.values.index(v) + (k - (len(series) - 1) / 2) * width for v, _ in pts]
                    ax.bar(pos, [y for _, y in pts], width=width, color=colors[impl], label=impl)
                ax.set_xticks(range(len(w.values)))
                ax.set_xticklabels(w.values)
                ys = [y for pts in series.values() for _, y in pts if y > 0]
                if ys and max(ys) / min(ys) >= 100:
                    ax.set_yscale("log")
            ax.set_xlabel(w.param)
            ax.set_ylabel(f"{metric} ({bench_spec.UNITS[metric]})")
            ax.set_title(f"{w.id}: {metric}")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize="small")
            fig.tight_layout()
            fig.savefig(os.path.join(run.plot_dir, plot_name(w.id, metric)), dpi=90)
            plt.close(fig)


def main():
    ap = argparse.ArgumentParser(prog="scripts/compare", description=__doc__)
    ap.add_argument("run", help="run folder (results/<run-id>)")
    ap.add_argument("run2", nargs="?", help="a later run folder: show the change per row")
    ap.add_argument("--baseline", default="mutex", help="implementation ratios are taken to")
    args = ap.parse_args()

    old = Run(args.run) if args.run2 else None
    run = Run(args.run2 or args.run)
    if args.baseline not in run.impls():
        sys.exit(f"--baseline {args.baseline}: not in {run.id} (has {run.impls()})")
    suffix = f"-vs-{old.id}" if old else ""
    run.plot_dir = os.path.join(run.path, "plots" + suffix)
    make_plots(run, old)

    md = [f"# ctxtree benchmarks: {run.id}" + (f" vs {old.id}" if old else ""), ""]
    md += metadata_lines(run)
    if old:
        differ = [k for k in ("host", "cpu_model", "cores", "compiler_version",
                              "gbench_library_build_type")
                  if old.machine.get(k) != run.machine.get(k)]
        if differ:
            warning = (f"**Warning: the runs differ in {', '.join(differ)}: the change per row "
                       "mixes machine and code; compare ratios to the baseline instead.**")
            print(warning.replace("**", ""), file=sys.stderr)
            md += ["", warning]
        md += ["", f"Compared with run `{old.id}`:"] + metadata_lines(old)
        md += ["", "`[±x%]` is the change of the row from the earlier run (`≈`: the repetitions "
               "cannot separate the two runs)."]
    md += ["", NOTES, "## Summary", "",
           f"Geometric mean of each implementation's cost ratio to `{args.baseline}` (< 1 is "
           "better) over the rows of each workload.", ""]
    md += summary_table(run, args.baseline)
    md += ["", "## Workloads", ""]
    md += workload_tables(run, args.baseline, old)
    out = os.path.join(run.path, f"report{suffix}.md")
    with open(out, "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"\nwrote {out} and {run.plot_dir}/")


if __name__ == "__main__":
    main()
