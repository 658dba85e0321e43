"""Google Benchmark JSON (+ latency event side files) -> rows of results.csv.

Benchmark names are `workload/impl:<name>/<param>:<value>` followed by the suffixes Google
Benchmark appends (`/manual_time`, `/iterations:N`, `/threads:N`, ...). Every per-repetition run
(`run_type` "iteration") carries the metrics of WORKLOADS.md as user counters; the row's value is
their median and cv their stddev/mean over repetitions, except for the latency metrics
(bench_spec.EVENT_METRICS), whose value is the percentile over every event of every repetition
read from the `--ctxtree_events` side file (the cv stays over the per-repetition percentiles).
"""

import gzip
import json
import math
import os
import re
import shutil
from collections import OrderedDict

import bench_spec
import bench_stats

_SUFFIX = re.compile(r"^(manual_time|real_time|process_time|iterations:\d+|repeats:\d+|"
                     r"threads:\d+|min_time:.*|min_warmup_time:.*)$")


class ConversionError(Exception):
    pass


def parse_name(name):
    """(workload, impl, param_name, param_value) of a benchmark name."""
    parts = name.split("/")
    # Our names have exactly three segments; the third may itself look like a suffix (threads:2).
    while len(parts) > 3 and _SUFFIX.match(parts[-1]):
        parts.pop()
    if len(parts) != 3 or not parts[1].startswith("impl:") or ":" not in parts[2]:
        raise ConversionError(f"benchmark name not of the form workload/impl:X/param:value: {name}")
    param, value = parts[2].split(":", 1)
    return parts[0], parts[1][len("impl:"):], param, value


def base_name(name):
    w, i, p, v = parse_name(name)
    return f"{w}/impl:{i}/{p}:{v}"


def load_json(path):
    with open(path) as f:
        return json.load(f)


def repetitions(doc, problems=None):
    """OrderedDict base name -> list of per-repetition entries. A benchmark that reported an
    error raises ConversionError, or with a `problems` list is named there and left out."""
    runs = OrderedDict()
    errors = []
    failed = set()
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            errors.append(f"{b['name']}: {b.get('error_message', '(no message)')}")
            failed.add(base_name(b.get("run_name", b["name"])))
            continue
        if b.get("run_type", "iteration") != "iteration":
            continue
        runs.setdefault(base_name(b.get("run_name", b["name"])), []).append(b)
    if errors and problems is None:
        raise ConversionError("benchmarks failed:\n  " + "\n  ".join(errors))
    if problems is not None:
        problems += [f"benchmark failed: {e}" for e in errors]
    for name in failed:
        runs.pop(name, None)  # a failed repetition makes the row meaningless
    return runs


def open_events(path):
    """The events file at `path`, or its gzip-compressed form `path`.gz."""
    if os.path.exists(path):
        return open(path)
    return gzip.open(path + ".gz", "rt")


def compress_events(path):
    """Replaces the events file by `path`.gz (timer_fire writes ~1e6 values per tree); drops it
    when empty (binaries without latency rows)."""
    if os.path.exists(path) and os.path.getsize(path) == 0:
        os.remove(path)
    elif os.path.exists(path):
        with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.remove(path)


def merge_docs(docs):
    """One JSON document of several invocations of the same binary (the rounds of a run): their
    repetitions concatenated in order and renumbered, the first document's context."""
    docs = [d for d in docs if d is not None]
    merged = {"context": dict(docs[0].get("context", {})) if docs else {}, "benchmarks": []}
    count = {}
    for d in docs:
        for b in d.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue  # aggregates of one invocation mean nothing for the merged run
            b = dict(b)
            key = b.get("run_name", b["name"])
            b["repetition_index"] = count.get(key, 0)
            count[key] = count.get(key, 0) + 1
            merged["benchmarks"].append(b)
    for b in merged["benchmarks"]:
        b["repetitions"] = count[b.get("run_name", b["name"])]
    merged["context"]["ctxtree_invocations"] = len(docs)
    return merged


def concat_files(paths, out_path):
    """Concatenates the existing files of `paths` (events of each round, in round order, so the
    n-th events line of a row stays the n-th repetition of the merged JSON) into out_path."""
    with open(out_path, "w") as out:
        for p in paths:
            if os.path.exists(p):
                with open(p) as f:
                    shutil.copyfileobj(f, out)


# Fields of a Google Benchmark JSON entry that are not user counters (the Go peer writes a subset).
# `threads` is also a counter of ours (it overrides the library's thread count), not a metric.
GBENCH_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "error_occurred", "error_message", "label", "big_o", "rms",
    "complexity_n",
}


def metrics_of(spec, entry):
    """The metrics of a workload's row: WORKLOADS.md's (required), then every other counter the
    benchmark reports (`_aged` twins of one-shot rows, extra metrics), each `_aged` twin right
    after its settled metric."""
    extra = sorted(k for k, v in entry.items()
                   if k not in GBENCH_FIELDS and k not in spec.metrics
                   and isinstance(v, (int, float)) and not isinstance(v, bool))
    out = []
    for m in list(spec.metrics) + [e for e in extra if not bench_spec.is_aged(e)]:
        out.append(m)
        aged = m + bench_spec.AGED_SUFFIX
        if aged in extra:
            out.append(aged)
    return out + [e for e in extra if e not in out]


def load_events(path):
    """base name -> events name -> list of per-repetition lists of events."""
    events = {}
    try:
        with open_events(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                name, metric, values = line.split("\t")
                vals = [float(v) for v in values.split()] if values else []
                events.setdefault(base_name(name), {}).setdefault(metric, []).append(vals)
    except FileNotFoundError:
        pass
    return events


def fmt(value, digits=6):
    return f"{value:.{digits}g}"


def rows_from_gbench(doc, events, problems=None):
    """CSV rows (lists of strings) of one binary's JSON document. The first problem (a failed
    benchmark, an unknown workload, a missing counter) raises ConversionError; with a `problems`
    list, each is named there and only the rows concerned are left out."""
    rows = []
    for name, reps in repetitions(doc, problems).items():
        try:
            rows += _rows_of(name, reps, events)
        except ConversionError as e:
            if problems is None:
                raise
            problems.append(str(e))
    return rows


def _rows_of(name, reps, events):
    workload, impl, param, value = parse_name(name)
    spec = bench_spec.BY_ID.get(workload)
    if spec is None:
        raise ConversionError(f"{name}: unknown workload {workload} (not in bench_spec.py)")
    if param != spec.param:
        raise ConversionError(f"{name}: parameter {param}, WORKLOADS.md says {spec.param}")
    threads = reps[0].get("threads", 1)
    if "threads" in reps[0]:  # our counter overrides Google Benchmark's thread count
        threads = int(round(reps[0]["threads"]))
    rows = []
    for metric in metrics_of(spec, reps[0]):
        per_rep = []
        for r in reps:
            if metric not in r:
                raise ConversionError(f"{name}: repetition without counter {metric}")
            per_rep.append(float(r[metric]))
        if metric in bench_spec.EVENT_METRICS:
            ev_name, q = bench_spec.EVENT_METRICS[metric]
            per_rep_events = events.get(name, {}).get(ev_name, [])
            if len(per_rep_events) != len(reps):
                raise ConversionError(
                    f"{name}: {len(per_rep_events)} event lines for {len(reps)} repetitions "
                    f"(was --ctxtree_events given?)")
            v = bench_stats.percentile(sorted(x for e in per_rep_events for x in e), q)
        else:
            v = bench_stats.median(per_rep)
        c = bench_stats.cv(per_rep)
        if not (math.isfinite(v) and math.isfinite(c)):
            raise ConversionError(f"{name}: {metric} is not finite ({v}, cv {c})")
        rows.append([workload, impl, param, value, str(threads), metric, fmt(v),
                     bench_spec.unit(metric), str(len(reps)), fmt(c, 4)])
    return rows


def per_repetition_values(doc):
    """(workload, impl, param_value, metric) -> list of per-repetition values (no error check)."""
    out = {}
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred") or b.get("run_type", "iteration") != "iteration":
            continue
        try:
            workload, impl, _, value = parse_name(b.get("run_name", b["name"]))
        except ConversionError:
            continue
        spec = bench_spec.BY_ID.get(workload)
        if spec is None:
            continue
        for metric in metrics_of(spec, b):
            if metric in b:
                out.setdefault((workload, impl, value, metric), []).append(float(b[metric]))
    return out


def sort_rows(rows, trees):
    """Rows in WORKLOADS.md order, then implementation (registry, peers), parameter, metric."""
    impls = bench_spec.impl_order(trees)
    w_order = {w.id: i for i, w in enumerate(bench_spec.WORKLOADS)}

    def key(r):
        spec = bench_spec.BY_ID[r[0]]
        return (w_order[r[0]], spec.values.index(r[3]) if r[3] in spec.values else 99,
                impls.index(r[1]) if r[1] in impls else 99,
                spec.metrics.index(bench_spec.settled_metric(r[5]))
                if bench_spec.settled_metric(r[5]) in spec.metrics else 99, r[5])
    return sorted(rows, key=key)
