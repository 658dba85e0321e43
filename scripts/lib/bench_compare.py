"""scripts/compare: ratios to a baseline, tests, report.md, compare.csv and plots of one or two
runs.

Statistics (bench/README.md, "Reading report.md"): each cell's ratio is median / baseline median
(inverted for higher-is-better metrics, so < 1 is better everywhere) with a Hodges-Lehmann 95 %
interval; the two-sided Mann-Whitney U p-values of a table are Holm-corrected together, and a
difference is called only if its corrected p < ALPHA and it is at least EFFECT_FLOOR away from 1.
"""

import argparse
import csv
import glob
import json
import os
import sys

import bench_convert
import bench_spec
import bench_stats

ALPHA = 0.05
NOISY_CV = 0.05
DRIFT_WARN = bench_stats.EFFECT_FLOOR


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
        # Per-repetition values for the tests, from the raw JSON (ours and the Go peer's).
        self.reps = {}
        for p in sorted(glob.glob(os.path.join(path, "raw", "*.json"))):
            self.reps.update(bench_convert.per_repetition_values(bench_convert.load_json(p)))
        self.trees = self.machine.get("trees") or sorted({k[1] for k in self.rows})
        self.plot_dir = os.path.join(self.path, "plots")

    def value(self, key):
        r = self.rows.get(key)
        return float(r["value"]) if r else None

    def impls(self):
        present = {k[1] for k in self.rows}
        return [i for i in bench_spec.impl_order(self.trees) if i in present]

    def metrics(self, workload):
        """Metrics of a workload present in the run: WORKLOADS.md's order, each settled metric
        followed by its `_aged` counterpart, then any other."""
        present = {k[3] for k in self.rows if k[0] == workload}
        order = []
        for m in bench_spec.BY_ID[workload].metrics:
            order += [m, m + bench_spec.AGED_SUFFIX]
        return [m for m in order if m in present] + sorted(present - set(order))


def cost_ratio(metric, value, base):
    """value / base, inverted for higher-is-better metrics (so < 1 always means better)."""
    if value is None or base is None or base == 0 or value == 0:
        return None
    r = value / base
    return 1 / r if bench_spec.higher_is_better(metric) else r


def compare(metric, value, base, x, y):
    """One comparison of a row with a reference row: cost ratio of the medians, Hodges-Lehmann
    ratio and interval over the repetitions (oriented as the cost ratio), U-test p."""
    c = {"ratio": cost_ratio(metric, value, base), "hl": None, "lo": None, "hi": None,
         "level": None, "p": bench_stats.mann_whitney_p(x or [], y or [])}
    hl = bench_stats.hodges_lehmann_ratio(x or [], y or [])
    if hl is not None and c["ratio"] is not None:
        est, lo, hi, level = hl
        if bench_spec.higher_is_better(metric):
            est, lo, hi = 1 / est, 1 / hi, 1 / lo
        c.update(hl=est, lo=lo, hi=hi, level=level)
    return c


def finish_family(comparisons):
    """Holm correction over one table's comparisons, then each verdict."""
    adjusted = bench_stats.holm([c["p"] for c in comparisons])
    for c, p in zip(comparisons, adjusted):
        c["p_holm"] = p
        c["verdict"] = bench_stats.verdict(c["ratio"], p, ALPHA)


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
    alloc = m.get("allocator") or {"name": "glibc"}
    go_rt = m.get("go_runtime") or {}
    start, end = m.get("start") or {}, m.get("end") or {}
    rounds = (f"{s.get('rounds')} rounds × {s.get('reps_per_round')} repetition(s), every "
              "binary and Go once per round, shuffled" if s.get("rounds")
              else "repetitions in one block per binary")
    dirty = m.get("git_dirty")
    lines = [
        f"- run `{run.id}`: {m.get('date_utc')}, host {m.get('host')}, "
        f"git {str(m.get('git_commit'))[:12]} "
        f"({'dirty: ' + ', '.join(m.get('git_dirty_files') or []) if dirty else 'clean'})",
        f"- CPU {m.get('cpu_model')} × {m.get('cores')}, "
        f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, {m.get('os')}, kernel {m.get('kernel')}, "
        f"governor {m.get('cpu_governor')}",
        f"- compiler {m.get('compiler_version')}; build type "
        f"{m.get('cmake_cache', {}).get('CMAKE_BUILD_TYPE')}, flags "
        f"`{m.get('cmake_cache', {}).get('CMAKE_CXX_FLAGS_RELEASE', '')}`",
        f"- glibc {m.get('glibc')}; allocator **{alloc.get('name')}** {alloc.get('version') or ''}"
        f"{' (LD_PRELOAD ' + alloc['library'] + ')' if alloc.get('library') else ''}",
        f"- libbenchmark {libs.get('libbenchmark-dev')} (library_build_type "
        f"**{m.get('gbench_library_build_type')}**), libtbb {libs.get('libtbb-dev')}, "
        f"{libs.get('golang') or 'no Go toolchain'}"
        + (f" (GOMAXPROCS {go_rt.get('GOMAXPROCS')}, GOGC {go_rt.get('GOGC')})" if go_rt else ""),
        f"- {s.get('reps')} repetitions: {rounds}; min_time {s.get('min_time')} s, one-shot node "
        f"budget {s.get('oneshot_nodes', 0):.3g}{', --quick' if s.get('quick') else ''}; wall "
        f"{s.get('wall_seconds')} s",
        f"- load average (1/5/15 min) "
        f"{_load(start.get('load_average') or m.get('load_average_start'))} → "
        f"{_load(end.get('load_average') or m.get('load_average_end'))}; steal "
        f"{start.get('steal_percent', '?')} % → {end.get('steal_percent', '?')} % "
        f"(whole run {m.get('steal_percent_during_run', '?')} %)",
    ]
    return lines


def status_lines(run):
    """The loud lines at the top of a report: a partial run, an absent optional peer."""
    st = run.machine.get("status")
    if st is None:
        return []
    md = []
    if not st.get("complete", True):
        md += ["**PARTIAL RUN: some rows are missing or failed; the tables below cover what ran.**",
               ""] + [f"- FAILED: {f}" for f in st.get("failures", [])] + [""]
    for a in st.get("absent_optional", []):
        md += [f"**OPTIONAL PEER ABSENT: {a}.**", ""]
    return md


def drift_lines(run):
    drift = run.machine.get("drift")
    if not drift:
        return []
    worst = max((abs(d["change"]) for d in drift if d.get("change") is not None), default=0)
    md = ["## Drift", "",
          "Sentinel rows measured before the first round and after the last one (3 repetitions "
          "each); a change here happened to every implementation alike, since each round runs "
          "all of them.", "",
          "| row | metric | start | end | change | p |", "|---|---|---|---|---|---|"]
    for d in drift:
        ch = f"{d['change']:+.1%}" if d.get("change") is not None else "—"
        p = f"{d['p']:.2g}" if d.get("p") is not None else "—"
        md.append(f"| {d['row']} | {d['metric']} | {fmt(d['start'])} | {fmt(d['end'])} | {ch} | "
                  f"{p} |")
    md.append("")
    if worst >= DRIFT_WARN:
        md += [f"**The machine drifted by up to {worst:.0%} during this run: differences of that "
               "size between implementations are not trustworthy.**", ""]
    return md


def notes(run):
    alloc = (run.machine.get("allocator") or {}).get("name", "glibc")
    settle = (
        "- The one-shot rows `settle` the heap after each teardown: with glibc a 64 KiB request "
        "consolidates the fastbins so every build starts from the heap the first one saw. "
        + ("Under " + alloc + " (LD_PRELOAD) that request is an ordinary allocation, and main()'s "
           "mallopt(M_TRIM_THRESHOLD) reaches only glibc's unused arenas (or the allocator's "
           "no-op stand-in): settled means only that deferred frees were drained; the "
           "allocator's own free lists decide where the next build lands."
           if alloc != "glibc" else ""))
    return f"""\
Notes on reading these numbers:
- Debian's libbenchmark is built as DEBUG (`library_build_type` above). That slows the harness, not
  the measured code, but absolute times from this machine are not comparable with other machines
  or builds: **only ratios within one run are meaningful**.
- Cells: median over repetitions (latency percentiles: over every event of every repetition),
  `†` when cv > 5 %; `(×r [lo–hi])` is the ratio to the baseline's median (for ops_per_sec,
  baseline/impl, so < 1 is better everywhere) and the Hodges–Lehmann 95 % interval of the ratio
  over the repetitions (with 3 repetitions only 90 % is attainable: `[lo–hi]@90%`).
- `≈`: not a difference. A cell is called different only if the two-sided Mann–Whitney U test
  over the repetitions, Holm-corrected over every cell of its table, gives p < 0.05 **and** the
  ratio is at least 3 % away from 1 (smaller differences are layout and scheduling noise at
  these sample sizes). With 3 repetitions no p can reach 0.05: a --quick run marks every cell.
  The interval is per cell, not corrected for the table's many comparisons, so a cell can show
  an interval that excludes 1 and still `≈` (its Holm-corrected p is 0.05 or more): the `≈`,
  not the interval alone, says whether a difference is established.
  The p-values (raw and corrected) are in `compare.csv` beside this report.
- Settled and aged: one-shot workloads with `_aged` rows show the settled heap (nodes created
  together lie together) and the aged heap (a fixed aging pattern scatters free holes first)
  side by side, each compared with the baseline's row of the same kind.
{settle}
- Peers: `tbb` (oneTBB task_group_context) runs fanout_create, fanout_cancel, tree_cancel,
  chain_cancel (depth ≤ 1e4), churn, done_poll and memory (kind cancel); its children are bound
  by running an empty task in them from a task of the parent (bench/bm_tbb.cpp). `go` is Go's own
  context (Go 1.19): fanout_cancel_callbacks with a goroutine per callback blocked on Done() (the
  pre-1.21 idiom), no chain_destroy row (no deterministic destruction), no timer_fire row but
  timer_fire_observed (as the C++ row of that name, fires seen from waiters blocked on done), and
  its memory is live-heap growth (bench/go/main.go); LD_PRELOAD does not reach it (no cgo).
"""


def ci_text(c):
    if c.get("lo") is None:
        return ""
    level = "" if c["level"] >= 0.945 else f"@{c['level']:.0%}"
    return f" [{c['lo']:.2f}–{c['hi']:.2f}]{level}"


def cell_text(run, key, c):
    cell = fmt(run.value(key))
    if float(run.rows[key]["cv"]) > NOISY_CV:
        cell += " †"
    if c is not None and c["ratio"] is not None:
        cell += f" (×{c['ratio']:.2f}{ci_text(c)}{' ≈' if c['verdict'] == '≈' else ''})"
    return cell


def table_columns(run, workload, metrics):
    """Columns of one table: (impl, metric) pairs with at least one row; settled and aged of an
    impl next to each other."""
    cols = []
    for impl in run.impls():
        for m in metrics:
            if any((workload, impl, v, m) in run.rows for v in bench_spec.BY_ID[workload].values):
                cols.append((impl, m))
    return cols


def workload_tables(run, base, old=None, records=None):
    """Markdown lines of the per-workload tables; appends every comparison to `records`."""
    records = [] if records is None else records
    md = []
    for w in bench_spec.report_order():
        metrics = run.metrics(w.id)
        if not metrics:
            continue
        shared = " **Shared code**: the value index is the same in every tree; differences " \
                 "between trees here are layout noise." if bench_spec.shared_code(w.id) else ""
        md.append(f"### {w.id}\n\n{w.timed}.{shared}\n")
        for metric in [m for m in metrics if not bench_spec.is_aged(m)] + \
                [m for m in metrics if bench_spec.is_aged(m)
                 and bench_spec.settled_metric(m) not in metrics]:
            group = [metric] + [m for m in metrics if m == metric + bench_spec.AGED_SUFFIX]
            cols = table_columns(run, w.id, group)
            aged = len(group) > 1
            unit = bench_spec.unit(metric)
            title = f"{metric} ({unit})" + (f" settled and `{group[1]}` aged" if aged else "")
            md.append(f"**{title}**, baseline `{base}`\n")
            heads = [f"{i} aged" if bench_spec.is_aged(m) else i for i, m in cols]
            md.append("| " + w.param + " | " + " | ".join(heads) + " |")
            md.append("|---" * (len(cols) + 1) + "|")
            # Every comparison of this table first: they form one Holm family.
            fam_base, fam_old = {}, {}
            for v in w.values:
                for impl, m in cols:
                    key, bkey = (w.id, impl, v, m), (w.id, base, v, m)
                    if key not in run.rows:
                        continue
                    if impl != base and bkey in run.rows:
                        fam_base[key] = compare(m, run.value(key), run.value(bkey),
                                                run.reps.get(key), run.reps.get(bkey))
                    if old is not None and key in old.rows:
                        fam_old[key] = compare(m, run.value(key), old.value(key),
                                               run.reps.get(key), old.reps.get(key))
            for fam, kind in ((fam_base, "vs_baseline"), (fam_old, "vs_earlier_run")):
                finish_family(list(fam.values()))
                for key, c in fam.items():
                    records.append(dict(c, kind=kind, workload=key[0], impl=key[1],
                                        param_value=key[2], metric=key[3],
                                        reference=base if kind == "vs_baseline" else old.id,
                                        shared_code=bench_spec.shared_code(key[0])))
            for v in w.values:
                cells = []
                for impl, m in cols:
                    key = (w.id, impl, v, m)
                    if key not in run.rows:
                        cells.append("—")
                        continue
                    cell = cell_text(run, key, fam_base.get(key))
                    c = fam_old.get(key)
                    if c is not None and c["ratio"] is not None:
                        change = run.value(key) / old.value(key) - 1
                        cell += f" [{change:+.0%}{' ≈' if c['verdict'] == '≈' else ''}]"
                    cells.append(cell)
                if any(c != "—" for c in cells):
                    md.append(f"| {v} | " + " | ".join(cells) + " |")
            if aged:
                md.append("\nAged / settled, geometric mean over the rows: " + ", ".join(
                    f"`{i}` ×{g:.2f}" for i, g in aging_factors(run, w, metric) if g) + ".")
            plot = plot_name(w.id, metric)
            if os.path.exists(os.path.join(run.plot_dir, plot)):
                md.append(f"\n![{w.id} {metric}]({os.path.basename(run.plot_dir)}/{plot})\n")
            else:
                md.append("")
    return md


def aging_factors(run, w, metric):
    """Per impl: geometric mean over the parameter values of aged row / settled row."""
    aged = metric + bench_spec.AGED_SUFFIX
    out = []
    for impl in run.impls():
        ratios = [run.value((w.id, impl, v, aged)) / run.value((w.id, impl, v, metric))
                  for v in w.values if run.value((w.id, impl, v, aged))
                  and run.value((w.id, impl, v, metric))]
        if ratios:
            out.append((impl, bench_stats.geomean(ratios)))
    return out


def summary_keys(run, workload, impl, aged):
    """(param value, metric) rows of one impl that a summary may count: settled or aged, and
    never a metric derived from another metric of the same measurement."""
    keys = set()
    for (w, i, v, m) in run.rows:
        if w != workload or i != impl or bench_spec.is_aged(m) != aged:
            continue
        src = bench_spec.SAME_MEASUREMENT.get(bench_spec.settled_metric(m))
        if src is not None and (w, i, v, src + (bench_spec.AGED_SUFFIX if aged else "")) \
                in run.rows:
            continue
        keys.add((v, m))
    return keys


def summary_geomeans(run, base, cols, workloads, rank_shared_code):
    """One summary table as data: (lines, overall). Each line is (label, rows, {col: geomean},
    ranked): the geometric mean of each column's cost ratios to `base` over the rows (param
    value, metric) that the baseline and every column share, settled and aged apart. `overall`
    is (rows, {col: geomean}) over all those rows of the ranked workloads (shared-code workloads
    are not ranked unless rank_shared_code)."""
    lines = []
    overall = {c: [] for c in cols}
    n_overall = 0
    for w in workloads:
        for aged in (False, True):
            shared = summary_keys(run, w.id, base, aged)
            for c in cols:
                shared &= summary_keys(run, w.id, c, aged)
            if not shared:
                continue
            ranked = rank_shared_code or not bench_spec.shared_code(w.id)
            label = w.id + (" (aged)" if aged else "")
            means = {}
            for c in cols:
                ratios = [cost_ratio(m, run.value((w.id, c, v, m)), run.value((w.id, base, v, m)))
                          for v, m in sorted(shared)]
                ratios = [r for r in ratios if r is not None]
                means[c] = bench_stats.geomean(ratios) if ratios else None
                if ranked:
                    overall[c] += ratios
            if ranked:
                n_overall += len(shared)
            lines.append((label, len(shared), means, ranked))
    return lines, (n_overall, {c: bench_stats.geomean(overall[c]) if overall[c] else None
                               for c in cols})


def geomean_table(run, base, cols, workloads, rank_shared_code):
    """Markdown of one summary table (summary_geomeans) with its overall line."""
    lines, (n_overall, overall) = summary_geomeans(run, base, cols, workloads, rank_shared_code)
    md = ["| workload | rows | " + " | ".join(f"`{c}`" for c in cols) + " |",
          "|---" * (len(cols) + 2) + "|"]
    for label, n, means, ranked in lines:
        label += "" if ranked else " (shared code, not ranked)"
        md.append(f"| {label} | {n} | " + " | ".join(
            f"×{means[c]:.2f}" if means[c] is not None else "—" for c in cols) + " |")
    md.append(f"| **all ranked rows** | {n_overall} | " + " | ".join(
        f"**×{overall[c]:.2f}**" if overall[c] is not None else "—" for c in cols) + " |")
    return md


def summary_tables(run, base):
    trees = [t for t in run.impls() if t in run.trees and t != base]
    peers = [p for p in run.impls() if p not in run.trees and p != base]
    order = bench_spec.report_order()
    md = [f"Geometric mean of each implementation's cost ratio to `{base}` (< 1 is better). A "
          "table counts only rows that the baseline and **every** column of that table have "
          "(`rows`), one metric per measurement (`ops_per_sec` restates `ns_per_op` and is not "
          "counted), settled and aged heaps as separate lines.", "",
          "### Trees", ""]
    if trees:
        md += ["Shared-code workloads (`value_*`: the value index is the same code in every tree) "
               "are shown but left out of the ranking.", ""]
        md += geomean_table(run, base, trees, order, rank_shared_code=False)
    else:
        md.append(f"(no tree besides `{base}`)")
    for p in peers:
        md += ["", f"### Peer `{p}`", "",
               f"Over `{p}`'s own rows only, with the trees on those same rows; `value_*` rows "
               f"count here, since `{p}`'s code differs from the trees'.", ""]
        md += geomean_table(run, base, trees + [p], order, rank_shared_code=True)
    return md


def plot_name(workload, metric):
    return f"{workload}__{metric}.png"


def _log_axis(axis, ticker):
    """1-2-5 ticks with plain labels on a log axis (a bare decade locator labels one tick when
    the data span less than a decade)."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _spread(run, key):
    """(low, high) error bar around the row's value: min and max over its repetitions."""
    reps = run.reps.get(key)
    y = run.value(key)
    if not reps or y is None:
        return 0.0, 0.0
    return max(0.0, y - min(reps)), max(0.0, max(reps) - y)


def make_plots(run, old=None):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker as ticker
    except ImportError:
        print("matplotlib not available: no plots", file=sys.stderr)
        return
    os.makedirs(run.plot_dir, exist_ok=True)
    impls = run.impls()
    colors = {impl: f"C{i}" for i, impl in enumerate(impls)}
    for w in bench_spec.report_order():
        metrics = run.metrics(w.id)
        for metric in [m for m in metrics if not bench_spec.is_aged(m)]:
            group = [metric] + [m for m in metrics if m == metric + bench_spec.AGED_SUFFIX]
            series = {}  # (impl, metric) -> [(param value, y, (err low, err high))]
            for impl in impls:
                for m in group:
                    pts = [(v, run.value((w.id, impl, v, m)), _spread(run, (w.id, impl, v, m)))
                           for v in w.values]
                    pts = [p for p in pts if p[1] is not None]
                    if pts:
                        series[(impl, m)] = pts
            if not series:
                continue
            fig, ax = plt.subplots(figsize=(8.0, 4.4))
            ys = [y for pts in series.values() for _, y, _ in pts if y > 0]
            log_y = bool(ys) and max(ys) / min(ys) >= 20
            if w.numeric:
                xs = [int(v) for v in w.values]
                decades = max(xs) / max(1, min(xs)) >= 100
                for (impl, m), pts in series.items():
                    aged = bench_spec.is_aged(m)
                    ax.errorbar([int(v) for v, _, _ in pts], [y for _, y, _ in pts],
                                yerr=list(zip(*[e for _, _, e in pts])), marker="o",
                                markersize=4, capsize=3, color=colors[impl],
                                linestyle="--" if aged else "-",
                                label=f"{impl} aged" if aged else impl)
                    if old is not None:
                        opts = [(int(v), old.value((w.id, impl, v, m))) for v, _, _ in pts]
                        opts = [(x, y) for x, y in opts if y is not None]
                        if opts:
                            ax.plot(*zip(*opts), linestyle=":", marker=".", alpha=0.5,
                                    color=colors[impl], label=f"{impl}{' aged' if aged else ''} "
                                    f"({old.id})")
                if decades:
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_locator(ticker.NullLocator())
                ax.set_xticks(xs)
                ax.set_xticklabels([str(x) for x in xs])
            else:
                width = 0.8 / len(series)
                for k, ((impl, m), pts) in enumerate(series.items()):
                    aged = bench_spec.is_aged(m)
                    pos = [w.values.index(v) + (k - (len(series) - 1) / 2) * width
                           for v, _, _ in pts]
                    ax.bar(pos, [y for _, y, _ in pts], width=width, color=colors[impl],
                           hatch="//" if aged else None, alpha=0.6 if aged else 1.0,
                           yerr=list(zip(*[e for _, _, e in pts])), capsize=2,
                           label=f"{impl} aged" if aged else impl)
                ax.set_xticks(range(len(w.values)))
                ax.set_xticklabels(w.values)
            if log_y:
                ax.set_yscale("log")
                _log_axis(ax.yaxis, ticker)
            ax.set_xlabel(w.param)
            ax.set_ylabel(f"{metric} ({bench_spec.unit(metric)})")
            title = f"{w.id}: {metric}" + (" (solid settled, dashed aged)" if len(group) > 1
                                           else "")
            ax.set_title(title + "\nerror bars: min–max over repetitions", fontsize="medium")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
            fig.tight_layout()
            fig.savefig(os.path.join(run.plot_dir, plot_name(w.id, metric)), dpi=90)
            plt.close(fig)


COMPARE_FIELDS = ["kind", "workload", "metric", "param_value", "impl", "reference", "ratio",
                  "hl", "lo", "hi", "level", "p", "p_holm", "verdict", "shared_code"]


def write_records(path, records):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COMPARE_FIELDS, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else
                            "" if v is None else v) for k, v in r.items()})


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
    md += status_lines(run)
    md += metadata_lines(run)
    if old:
        md += [""] + [line.replace("**", "") for line in status_lines(old)]
        differ = [k for k in ("host", "cpu_model", "cores", "compiler_version",
                              "gbench_library_build_type", "allocator")
                  if old.machine.get(k) != run.machine.get(k)]
        if differ:
            warning = (f"**Warning: the runs differ in {', '.join(differ)}: the change per row "
                       "mixes machine and code; compare ratios to the baseline instead.**")
            print(warning.replace("**", ""), file=sys.stderr)
            md += ["", warning]
        md += ["", f"Compared with run `{old.id}`:"] + metadata_lines(old)
        md += ["", "`[±x%]` is the change of the row from the earlier run (`≈`: not a "
               "difference by the rule below: Holm-corrected U test and the 3 % floor)."]
    md += [""] + drift_lines(run)
    md += [notes(run), "## Summary", ""]
    md += summary_tables(run, args.baseline)
    records = []
    md += ["", "## Workloads", ""]
    md += workload_tables(run, args.baseline, old, records)
    out = os.path.join(run.path, f"report{suffix}.md")
    with open(out, "w") as f:
        f.write("\n".join(md) + "\n")
    cmp_csv = os.path.join(run.path, f"compare{suffix}.csv")
    write_records(cmp_csv, records)
    for line in status_lines(run):
        if line:
            print(line.replace("**", ""))
    print("\n".join(summary_tables(run, args.baseline)))
    print(f"\nwrote {out}, {cmp_csv} and {run.plot_dir}/")


if __name__ == "__main__":
    main()
