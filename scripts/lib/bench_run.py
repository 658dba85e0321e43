"""Runs every benchmark binary and the Go peer in rounds, writes results/<run-id>/ (see
scripts/bench).

Called by scripts/bench after it installed the packages and built the release preset.

Rounds: each round runs REPS_PER_ROUND repetitions of every job (one benchmark binary, or the Go
program) in a shuffled order, so slow drift of a shared machine falls on every implementation
alike instead of on whichever binary ran last. The rounds' JSON documents and latency events are
merged per job (bench_convert.merge_docs), so medians, cv and the U tests see every repetition.
Sentinel rows are measured before the first and after the last round; their change is the drift
recorded in machine.json.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import bench_convert
import bench_machine
import bench_spec
import bench_stats

# Budget, measured on the 2-core reference VM with load average ~1.5: the default run took 43 min
# (9 rounds of ~4.6 min: bm_fanout ~80 s and bm_chain ~45 s, mostly building, aging and tearing
# down 1e6-node trees on both heaps; go ~80 s; bm_value ~34 s; the rest < 20 s each), --quick
# 6.5 min (3 rounds of ~2 min), plus the build. Beyond REFERENCE_TREES trees, min_time and the
# node budget shrink in proportion so the default run stays near that; repetitions stay fixed
# (medians, cv and the U test need them).
REFERENCE_TREES = 4
DEFAULT = {"reps": 9, "min_time": 0.2, "oneshot_nodes": 1e6}
QUICK = {"reps": 3, "min_time": 0.02, "oneshot_nodes": 1e5}
REPS_PER_ROUND = 1

# Rows measured before the first and after the last round: (workload, param value, impls), impls
# "all" (every selected impl that has the row) or "first" (the first selected tree). A loop row
# and a one-shot row, cheap enough to run with SENTINEL_REPS repetitions each time, whatever the
# filter selects, and with the default settings even in --quick runs (quick's 10 one-shot
# iterations make a noisy sentinel), so drift figures are comparable between runs.
SENTINELS = (("done_poll", "1", "all"), ("fanout_create", "10000", "first"))
SENTINEL_REPS = 3

# --allocator NAME: Debian package holding the shared library, and the library's file name.
ALLOCATORS = {
    "glibc": None,
    "jemalloc": ("libjemalloc2", r"/libjemalloc\.so\.\d+$"),
    "mimalloc": ("libmimalloc2.0", r"/libmimalloc\.so\.[\d.]+$"),
    "tcmalloc": ("libgoogle-perftools4", r"/libtcmalloc\.so\.\d+$"),
}


def log(msg):
    print(msg, flush=True)


@dataclass
class Job:
    """One process per round: a benchmark binary with a filter, or the Go program."""
    name: str  # file stem under raw/
    exe: str
    gfilter: str  # Google Benchmark filter, or the Go program's workload regex
    count: int = 0  # benchmarks it runs
    go: bool = False


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


def run_logged(cmd, log_path, timeout, env=None):
    """Runs cmd with stdout+stderr into log_path; the exit status, or None after a timeout."""
    with open(log_path, "w") as logf:
        preload = (env or {}).get("LD_PRELOAD")
        logf.write((f"LD_PRELOAD={preload} " if preload else "") + " ".join(cmd) + "\n")
        logf.flush()
        try:
            return subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
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


def allocator_library(name):
    """(package, path of the shared library) of --allocator NAME; exits if it is not installed."""
    pkg, pattern = ALLOCATORS[name]
    listed = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    libs = sorted((p for p in listed.stdout.split() if re.search(pattern, p)), key=len)
    if listed.returncode != 0 or not libs:
        sys.exit(f"--allocator {name}: package {pkg} not installed or holds no {pattern}")
    return pkg, libs[0]


def list_tests(exe, gfilter, env):
    listed = subprocess.run([exe, f"--benchmark_filter={gfilter}", "--benchmark_list_tests=true"],
                            capture_output=True, text=True, env=env)
    return listed.returncode, listed.stdout.split(), listed.stderr.strip()


def gbench_jobs(binaries, trees, impls, workloads):
    """The benchmark processes of one round: one per binary, running the selected workloads of
    the selected impls. (A binary whose rows must not share a process can be split here into
    several jobs with disjoint filters and distinct names.)"""
    jobs = []
    w_re = alternation(workloads)
    for b in binaries:
        name = os.path.basename(b)
        selected = ["tbb"] if name == "bm_tbb" else trees
        selected = [i for i in selected if i in impls]
        if selected:
            jobs.append(Job(name, b, f"^{w_re}/impl:{alternation(selected)}/"))
    return jobs


def gbench_cmd(job, settings, reps, out_json, events):
    return [job.exe, f"--benchmark_filter={job.gfilter}", f"--benchmark_repetitions={reps}",
            "--benchmark_enable_random_interleaving=true",
            "--benchmark_display_aggregates_only=true",
            f"--benchmark_min_time={settings['min_time']:g}",
            f"--benchmark_out={out_json}", "--benchmark_out_format=json",
            f"--ctxtree_events={events}",
            f"--ctxtree_oneshot_nodes={settings['oneshot_nodes']:g}"]


def go_cmd(job, settings, reps, out_json, events, order_seed):
    return [job.exe, f"-filter={job.gfilter}", f"-reps={reps}",
            f"-min-time={settings['min_time']:g}",
            f"-oneshot-nodes={settings['oneshot_nodes']:g}", f"-order-seed={order_seed}",
            f"-csv={os.path.splitext(out_json)[0]}.csv", f"-json={out_json}",
            f"-events={events}"]


class Runner:
    """Runs jobs into a folder and remembers each job's output files and failures."""

    def __init__(self, settings, timeout, env, run_dir):
        self.settings = settings
        self.run_dir = run_dir
        self.timeout = timeout
        self.env = env  # environment of the C++ binaries (LD_PRELOAD of --allocator)
        self.failures = []
        self.failed_jobs = set()
        self.outputs = {}  # job name -> [(json, events)] in run order
        self.seconds = {}

    def run(self, job, folder, reps, order_seed=1):
        os.makedirs(folder, exist_ok=True)
        out_json = os.path.join(folder, f"{job.name}.json")
        events = os.path.join(folder, f"{job.name}.events")
        if job.go:
            cmd = go_cmd(job, self.settings, reps, out_json, events, order_seed)
            env = None
        else:
            cmd = gbench_cmd(job, self.settings, reps, out_json, events)
            env = self.env
        t0 = time.monotonic()
        rc = run_logged(cmd, os.path.join(folder, f"{job.name}.log"), self.timeout, env)
        took = time.monotonic() - t0
        self.seconds[job.name] = round(self.seconds.get(job.name, 0) + took, 1)
        if rc != 0:
            rel = os.path.relpath(os.path.join(folder, f"{job.name}.log"), self.run_dir)
            self.failures.append(f"{job.name}: {describe(rc)} (see {rel})")
            self.failed_jobs.add(job.name)
        self.outputs.setdefault(job.name, []).append((out_json, events))
        return took


def load_doc(path):
    try:
        return bench_convert.load_json(path)
    except (OSError, ValueError):
        return None


def sentinel_jobs(binaries, go_job, trees, impls, env):
    """Jobs running only the SENTINELS rows: every binary that has one, and the Go program."""
    sel_trees = [t for t in trees if t in impls]
    parts = []
    for workload, value, which in SENTINELS:
        if workload not in bench_spec.BY_ID:
            continue
        who = [i for i in impls if i != "go"] if which == "all" else sel_trees[:1]
        if who:
            param = bench_spec.BY_ID[workload].param
            parts.append(f"{re.escape(workload)}/impl:{alternation(who)}/"
                         f"{re.escape(param)}:{re.escape(value)}")
    out = []
    for exe in binaries if parts else []:
        gfilter = f"^({'|'.join(parts)})(/|$)"
        rc, names, _ = list_tests(exe, gfilter, env)
        if rc == 0 and names:
            out.append(Job(os.path.basename(exe), exe, gfilter, len(names)))
    wanted = [w for w, _, which in SENTINELS if which == "all" and w in bench_spec.BY_ID
              and "go" in bench_spec.BY_ID[w].peers]
    if go_job is not None and wanted:
        out.append(Job(go_job.name, go_job.exe, f"^{alternation(wanted)}$", go=True))
    return out


def sentinel_values(runner):
    """(workload, impl, param value, metric) -> per-repetition values of the sentinel rows."""
    out = {}
    wanted = {(w, v) for w, v, _ in SENTINELS}
    for files in runner.outputs.values():
        for path, _ in files:
            doc = load_doc(path)
            if doc is None:
                continue
            for key, vals in bench_convert.per_repetition_values(doc).items():
                if (key[0], key[2]) in wanted:
                    out[key] = vals
    return out


def drift(start, end):
    """Per sentinel row: medians at the start and at the end, their change and U-test p."""
    out = []
    for key in sorted(set(start) & set(end)):
        a, b = start[key], end[key]
        m0, m1 = bench_stats.median(a), bench_stats.median(b)
        out.append({"row": f"{key[0]}/impl:{key[1]}/{bench_spec.BY_ID[key[0]].param}:{key[2]}",
                    "metric": key[3], "start": round(m0, 4), "end": round(m1, 4),
                    "change": round(m1 / m0 - 1, 4) if m0 else None,
                    "p": bench_stats.mann_whitney_p(a, b)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo")
    ap.add_argument("--build-dir")
    ap.add_argument("--out", help="parent folder of the run folder")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filter", default="", help="regex searched in workload ids")
    ap.add_argument("--impl", default="", help="comma-separated implementations (default: all)")
    ap.add_argument("--allocator", default="glibc", choices=sorted(ALLOCATORS))
    ap.add_argument("--allocator-package", metavar="NAME", choices=sorted(ALLOCATORS),
                    help="print the Debian package of allocator NAME and exit")
    args = ap.parse_args()
    if args.allocator_package:
        entry = ALLOCATORS[args.allocator_package]
        print(entry[0] if entry else "")
        return
    if not (args.repo and args.build_dir and args.out):
        ap.error("--repo, --build-dir and --out are required")
    args.build_dir = os.path.abspath(args.build_dir)
    args.out = os.path.abspath(args.out)
    started = time.monotonic()
    load_start = list(os.getloadavg())
    start_sample = bench_machine.sample_load()

    env = dict(os.environ)
    allocator = {"name": "glibc", "version": bench_machine.glibc_version()}
    if args.allocator != "glibc":
        pkg, lib = allocator_library(args.allocator)
        env["LD_PRELOAD"] = lib
        allocator = {"name": args.allocator, "package": pkg, "library": lib,
                     "version": bench_machine._dpkg_version(pkg)}

    binaries = sorted(p for p in glob.glob(os.path.join(args.build_dir, "bench", "bm_*"))
                      if os.access(p, os.X_OK))
    if not binaries:
        sys.exit(f"no benchmark binaries in {args.build_dir}/bench")
    listed = subprocess.run([binaries[0], "--ctxtree_list_trees"], capture_output=True, text=True,
                            check=True, env=env)
    if "LD_PRELOAD" in env and "preloaded" in listed.stderr:
        sys.exit(f"--allocator {args.allocator}: {listed.stderr.strip()}")
    trees = listed.stdout.split()
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
    rounds = settings["reps"] // REPS_PER_ROUND
    shuffle_seed = random.SystemRandom().randrange(1, 2**31)
    settings.update({"rounds": rounds, "reps_per_round": REPS_PER_ROUND,
                     "shuffle_seed": shuffle_seed})

    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_id += "-quick" if args.quick else ""
    run_id += "" if allocator["name"] == "glibc" else f"-{allocator['name']}"
    run_dir = os.path.join(args.out, run_id)
    raw = os.path.join(run_dir, "raw")
    os.makedirs(raw)
    log(f"run {run_dir}: trees {','.join(trees)}; impls {','.join(impls)}; "
        f"{len(workloads)} workloads; {rounds} rounds x {REPS_PER_ROUND} repetition(s), "
        f"min_time {settings['min_time']:g} s, one-shot node budget "
        f"{settings['oneshot_nodes']:g}; allocator {allocator['name']}")

    # A process that hangs (a deadlock in a tree) must not hang CI.
    timeout = 600 if args.quick else 3600
    runner = Runner(settings, timeout, env, run_dir)
    absent = []  # optional peers that could not run: named loudly, not a failure
    go = find_go() if "go" in impls else None
    go_explicit = "go" in [i for i in args.impl.split(",") if i]
    go_version = None

    jobs = []
    for job in gbench_jobs(binaries, trees, impls, workloads):
        rc, names, err = list_tests(job.exe, job.gfilter, env)
        if rc != 0:
            runner.failures.append(f"{job.name}: --benchmark_list_tests failed: {err}")
        elif names:
            job.count = len(names)
            jobs.append(job)
    go_workloads = [w for w in workloads if "go" in bench_spec.BY_ID[w].peers]
    if "go" in impls and go_workloads:
        if go is None:
            msg = "go: no Go toolchain found (golang-1.19-go), no go rows"
            (runner.failures if go_explicit else absent).append(msg)
        else:
            try:
                exe = build_go(go, args.repo, args.build_dir)
                go_version = subprocess.run([go, "version"], capture_output=True,
                                            text=True).stdout.strip()
                jobs.append(Job("go", exe, f"^{alternation(go_workloads)}$", len(go_workloads),
                                go=True))
            except subprocess.CalledProcessError as e:
                runner.failures.append(f"go: build failed: {e}")

    sentinels = sentinel_jobs(binaries, next((j for j in jobs if j.go), None), trees, impls, env)

    def run_sentinels(phase):
        r = Runner(DEFAULT, timeout, env, run_dir)
        t0 = time.monotonic()
        for job in sentinels:
            r.run(job, os.path.join(raw, "sentinel", phase), SENTINEL_REPS)
        runner.failures.extend(f"sentinel {phase}: {f}" for f in r.failures)
        log(f"sentinels ({phase}): {len(sentinels)} processes, {time.monotonic() - t0:.1f} s")
        return sentinel_values(r)

    sentinel_start = run_sentinels("start")
    rng = random.Random(shuffle_seed)
    for k in range(1, rounds + 1):
        order = [j for j in jobs if j.name not in runner.failed_jobs]
        rng.shuffle(order)
        took = []
        for job in order:
            s = runner.run(job, os.path.join(raw, "rounds", f"r{k:02d}"), REPS_PER_ROUND,
                           order_seed=shuffle_seed + k)
            took.append(f"{job.name} {s:.1f}s")
        log(f"[round {k}/{rounds}] {', '.join(took)} "
            f"(elapsed {time.monotonic() - started:.0f} s)")
    sentinel_end = run_sentinels("end")

    # Merge every job's rounds and convert.
    rows = []
    gbench_context = {}
    for job in jobs:
        files = runner.outputs.get(job.name, [])
        docs = [load_doc(p) for p, _ in files]
        if not any(docs):
            runner.failures.append(f"{job.name}: no usable JSON")
            continue
        doc = bench_convert.merge_docs(docs)
        merged_json = os.path.join(raw, f"{job.name}.json")
        with open(merged_json, "w") as f:
            json.dump(doc, f, indent=1)
        events = os.path.join(raw, f"{job.name}.events")
        # Events of a round whose JSON is unusable would misalign the merged lines.
        bench_convert.concat_files([e for (_, e), d in zip(files, docs) if d], events)
        for _, e in files:
            if os.path.exists(e):
                os.remove(e)
        if not job.go:
            gbench_context = gbench_context or doc.get("context", {})
            ctx_trees = doc.get("context", {}).get("ctxtree_trees", "").split(",")
            if ctx_trees != trees:
                runner.failures.append(
                    f"{job.name}: built with trees {ctx_trees}, expected {trees} (stale build?)")
        problems = []
        rows += bench_convert.rows_from_gbench(doc, bench_convert.load_events(events), problems)
        runner.failures += [f"{job.name}: {p}" for p in problems]
        bench_convert.compress_events(events)

    with open(os.path.join(run_dir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(bench_spec.CSV_HEADER)
        w.writerows(bench_convert.sort_rows(rows, trees))

    end_sample = bench_machine.sample_load()
    settings.update({"quick": args.quick, "filter": args.filter, "impls": impls,
                     "workloads": workloads, "go_available": go is not None,
                     "binary_seconds": runner.seconds, "load_average_start": load_start,
                     "wall_seconds": round(time.monotonic() - started, 1)})
    machine = bench_machine.collect(args.repo, args.build_dir, go, gbench_context, trees, settings)
    machine["libraries"]["golang"] = go_version or machine["libraries"]["golang"]
    machine["allocator"] = allocator
    machine["go_runtime"] = bench_machine.go_runtime_env() if go else None
    machine["start"] = {k: v for k, v in start_sample.items() if k != "cpu_times"}
    machine["end"] = {k: v for k, v in end_sample.items() if k != "cpu_times"}
    machine["steal_percent_during_run"] = bench_machine.steal_percent(
        start_sample["cpu_times"], end_sample["cpu_times"])
    machine["drift"] = drift(sentinel_start, sentinel_end)
    machine["status"] = {"complete": not runner.failures, "failures": runner.failures,
                         "absent_optional": absent}
    with open(os.path.join(run_dir, "machine.json"), "w") as f:
        json.dump(machine, f, indent=2)
        f.write("\n")

    log(f"wrote {run_dir}/results.csv ({len(rows)} rows), machine.json, raw/ "
        f"in {time.monotonic() - started:.0f} s")
    for d in machine["drift"]:
        log(f"drift {d['row']} {d['metric']}: {d['start']:g} -> {d['end']:g} "
            f"({d['change']:+.1%})" if d["change"] is not None else f"drift {d['row']}: -")
    for a in absent:
        log(f"\n*** OPTIONAL PEER ABSENT: {a} ***")
    if runner.failures:
        log("\nFAILED (partial run):\n  " + "\n  ".join(runner.failures))
        log(f"run folder: {run_dir}")
        sys.exit(1)
    log(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
