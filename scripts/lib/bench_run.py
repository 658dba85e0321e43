"""Runs every benchmark binary and the Go peer, writes results/<run-id>/ (see scripts/bench).

Called by scripts/bench after it installed the packages and built the release preset.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

import bench_convert
import bench_machine
import bench_spec

# Budget, measured on the 2-core reference VM (CPU seconds ~ wall seconds when it is idle; the
# runs below had load averages of 8, i.e. 3-4x longer wall times):
#   default: ~3 min per tree (loop rows: 33 x 9 repetitions x min_time; one-shot rows: ~28 x 9 x
#     node budget x ~0.3 us; latency and memory rows ~0.3 min), tbb ~1 min, go ~4-5 min (its
#     1e6-node rows and memory children dominate): ~17 min for 4 trees + peers, plus the build;
#   --quick: ~25 s per tree, tbb ~10 s, go ~40 s: ~2.5 min for 4 trees + peers, plus the build.
# Beyond REFERENCE_TREES trees, min_time and the node budget shrink in proportion so the default
# run stays under 30 minutes; repetitions stay fixed (medians, cv and the U test need them).
REFERENCE_TREES = 4
DEFAULT = {"reps": 9, "min_time": 0.2, "oneshot_nodes": 1e6}
QUICK = {"reps": 3, "min_time": 0.02, "oneshot_nodes": 1e5}


def log(msg):
    print(msg, flush=True)


def find_go():
    for cand in (shutil.which("go"), "/usr/lib/go-1.19/bin/go"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def build_go(go, repo, build_dir):
    out_dir = os.path.join(build_dir, "bench", "go")
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, GOCACHE=os.path.join(out_dir, "cache"),
               GOPATH=os.path.join(out_dir, "gopath"), GOPROXY="off", GOFLAGS="",
               GOTOOLCHAIN="local", CGO_ENABLED="0")
    exe = os.path.join(out_dir, "ctxtree-go-bench")
    subprocess.run([go, "build", "-o", exe, "."], cwd=os.path.join(repo, "bench", "go"), env=env,
                   check=True)
    return exe


def run_logged(cmd, log_path, timeout):
    """Runs cmd with stdout+stderr into log_path; the exit status, or None after a timeout."""
    with open(log_path, "w") as logf:
        logf.write(" ".join(cmd) + "\n")
        logf.flush()
        try:
            return subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return None


def describe(rc):
    if rc is None:
        return "killed after the time limit (hung?)"
    if rc < 0:
        return f"killed by signal {-rc}"
    return f"exit status {rc}"


def alternation(names):
    return "(" + "|".join(re.escape(n) for n in names) + ")"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True, help="parent folder of the run folder")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filter", default="", help="regex searched in workload ids")
    ap.add_argument("--impl", default="", help="comma-separated implementations (default: all)")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    args.out = os.path.abspath(args.out)
    started = time.monotonic()
    load_start = list(os.getloadavg())

    binaries = sorted(p for p in glob.glob(os.path.join(args.build_dir, "bench", "bm_*"))
                      if os.access(p, os.X_OK))
    if not binaries:
        sys.exit(f"no benchmark binaries in {args.build_dir}/bench")
    trees = subprocess.run([binaries[0], "--ctxtree_list_trees"], capture_output=True, text=True,
                           check=True).stdout.split()
    known = trees + list(bench_spec.PEERS)
    impls = [i for i in args.impl.split(",") if i] or known
    unknown = [i for i in impls if i not in known]
    if unknown:
        sys.exit(f"--impl: unknown {unknown}; known: {known}")
    workloads = [w.id for w in bench_spec.WORKLOADS if re.search(args.filter, w.id)]
    if not workloads:
        sys.exit(f"--filter {args.filter!r} matches no workload id")

    settings = dict(QUICK if args.quick else DEFAULT)
    scale = min(1.0, REFERENCE_TREES / max(1, len(trees)))
    if not args.quick:
        settings["min_time"] *= scale
        settings["oneshot_nodes"] *= scale

    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_id += "-quick" if args.quick else ""
    run_dir = os.path.join(args.out, run_id)
    raw = os.path.join(run_dir, "raw")
    os.makedirs(raw)
    log(f"run {run_dir}: trees {','.join(trees)}; impls {','.join(impls)}; "
        f"{len(workloads)} workloads; reps {settings['reps']}, min_time {settings['min_time']:g} s, "
        f"one-shot node budget {settings['oneshot_nodes']:g}")

    # A binary that hangs (a deadlock in a tree) must not hang CI.
    timeout = 600 if args.quick else 3600
    go = find_go() if "go" in impls else None
    if "go" in impls and go is None:
        log("go: no Go toolchain found, no go rows")
    jobs = []
    w_re = alternation(workloads)
    for b in binaries:
        name = os.path.basename(b)
        selected = ["tbb"] if name == "bm_tbb" else trees
        selected = [i for i in selected if i in impls]
        if selected:
            jobs.append((name, b, f"^{w_re}/impl:{alternation(selected)}/"))

    failures = []
    rows = []
    gbench_context = {}
    timings = {}
    todo = []
    for name, exe, gfilter in jobs:
        listed = subprocess.run([exe, f"--benchmark_filter={gfilter}", "--benchmark_list_tests=true"],
                                capture_output=True, text=True)
        if listed.returncode != 0:
            failures.append(f"{name}: --benchmark_list_tests failed: {listed.stderr.strip()}")
        elif listed.stdout.split():
            todo.append((name, exe, gfilter, len(listed.stdout.split())))
    go_workloads = [w for w in workloads if "go" in bench_spec.BY_ID[w].peers] if go else []
    total = len(todo) + (1 if go_workloads else 0)
    for k, (name, exe, gfilter, count) in enumerate(todo, 1):
        out_json = os.path.join(raw, f"{name}.json")
        events = os.path.join(raw, f"{name}.events")
        cmd = [exe, f"--benchmark_filter={gfilter}",
               f"--benchmark_repetitions={settings['reps']}",
               "--benchmark_enable_random_interleaving=true",
               "--benchmark_display_aggregates_only=true",
               f"--benchmark_min_time={settings['min_time']:g}",
               f"--benchmark_out={out_json}", "--benchmark_out_format=json",
               f"--ctxtree_events={events}",
               f"--ctxtree_oneshot_nodes={settings['oneshot_nodes']:g}"]
        t0 = time.monotonic()
        rc = run_logged(cmd, os.path.join(raw, f"{name}.log"), timeout)
        took = time.monotonic() - t0
        timings[name] = round(took, 1)
        log(f"[{k}/{total}] {name}: {count} benchmarks, {took:.1f} s "
            f"(elapsed {time.monotonic() - started:.0f} s)")
        if rc != 0:
            failures.append(f"{name}: {describe(rc)} (see raw/{name}.log)")
        try:
            doc = bench_convert.load_json(out_json)
        except (OSError, ValueError) as e:
            failures.append(f"{name}: no usable JSON: {e}")
            continue
        gbench_context = gbench_context or doc.get("context", {})
        ctx_trees = doc.get("context", {}).get("ctxtree_trees", "").split(",")
        if ctx_trees != trees:
            failures.append(f"{name}: built with trees {ctx_trees}, expected {trees} (stale build?)")
        try:
            rows += bench_convert.rows_from_gbench(doc, bench_convert.load_events(events))
        except bench_convert.ConversionError as e:
            failures.append(f"{name}: {e}")
        bench_convert.compress_events(events)

    go_version = None
    if go:
        if go_workloads:
            t0 = time.monotonic()
            try:
                exe = build_go(go, args.repo, args.build_dir)
                go_version = subprocess.run([go, "version"], capture_output=True,
                                            text=True).stdout.strip()
                go_csv = os.path.join(raw, "go.csv")
                cmd = [exe, f"-filter=^{alternation(go_workloads)}$", f"-reps={settings['reps']}",
                       f"-min-time={settings['min_time']:g}",
                       f"-oneshot-nodes={settings['oneshot_nodes']:g}",
                       f"-csv={go_csv}", f"-json={os.path.join(raw, 'go.json')}"]
                if args.quick:
                    cmd.append("-quick")
                rc = run_logged(cmd, os.path.join(raw, "go.log"), timeout)
                if rc != 0:
                    failures.append(f"go: {describe(rc)} (see raw/go.log)")
                else:
                    with open(go_csv) as f:
                        reader = csv.reader(f)
                        header = next(reader)
                        if header != bench_spec.CSV_HEADER:
                            failures.append(f"go: CSV header {header}")
                        rows += [r for r in reader]
            except subprocess.CalledProcessError as e:
                failures.append(f"go: build failed: {e}")
            took = time.monotonic() - t0
            timings["go"] = round(took, 1)
            log(f"[{total}/{total}] go: {len(go_workloads)} workloads, {took:.1f} s "
                f"(elapsed {time.monotonic() - started:.0f} s)")

    with open(os.path.join(run_dir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(bench_spec.CSV_HEADER)
        w.writerows(bench_convert.sort_rows(rows, trees))

    settings.update({"quick": args.quick, "filter": args.filter, "impls": impls,
                     "workloads": workloads, "go_available": go is not None,
                     "binary_seconds": timings, "load_average_start": load_start,
                     "wall_seconds": round(time.monotonic() - started, 1)})
    machine = bench_machine.collect(args.repo, args.build_dir, go, gbench_context, trees, settings)
    machine["libraries"]["golang"] = go_version or machine["libraries"]["golang"]
    with open(os.path.join(run_dir, "machine.json"), "w") as f:
        json.dump(machine, f, indent=2)
        f.write("\n")

    log(f"wrote {run_dir}/results.csv ({len(rows)} rows), machine.json, raw/ "
        f"in {time.monotonic() - started:.0f} s")
    if failures:
        log("\nFAILED:\n  " + "\n  ".join(failures))
        log(f"run folder: {run_dir}")
        sys.exit(1)
    log(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
