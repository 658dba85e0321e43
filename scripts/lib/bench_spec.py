"""The workloads of WORKLOADS.md: ids, swept parameter, metrics, which peers run them.

This is the specification the scripts check results against. The trees are never listed here:
they come from the benchmark binaries (`--ctxtree_list_trees`, the `ctxtree_trees` JSON context),
which read them from ctxtree::AllTrees.
"""

from dataclasses import dataclass, field

CSV_HEADER = ["workload", "impl", "param_name", "param_value", "threads", "metric", "value",
              "unit", "repetitions", "cv"]

PEERS = ("tbb", "go")

UNITS = {
    "ns_per_child": "ns", "ns_per_node": "ns", "ns_per_op": "ns", "ops_per_sec": "ops/s",
    "p50_us": "us", "p99_us": "us", "create_ns": "ns", "p50_lateness_us": "us",
    "p99_lateness_us": "us", "max_lateness_us": "us", "bytes_per_node": "bytes",
    "chunk_bytes_per_node": "bytes", "ns_per_child_aged": "ns", "ns_per_node_aged": "ns",
}

# Metrics where more is better (every other metric is a cost).
HIGHER_IS_BETTER = {"ops_per_sec"}

# Metrics taken over every event of every repetition: metric -> (events name, quantile).
EVENT_METRICS = {
    "p50_us": ("latency_us", 0.50), "p99_us": ("latency_us", 0.99),
    "p50_lateness_us": ("lateness_us", 0.50), "p99_lateness_us": ("lateness_us", 0.99),
    "max_lateness_us": ("lateness_us", 1.0),
}


@dataclass(frozen=True)
class Workload:
    id: str
    param: str
    values: tuple  # param values as written in the CSV
    metrics: tuple
    timed: str  # what is timed, for the report
    peers: frozenset = field(default_factory=frozenset)
    # (peer, values) for a peer that runs only some of the parameter values
    peer_values: tuple = ()

    def values_for(self, impl):
        """The parameter values `impl` runs (a tree: all of them)."""
        return dict(self.peer_values).get(impl, self.values)

    def threads(self, value):
        """The threads column of a row of this workload at parameter `value`."""
        if self.param == "threads":
            return int(value)
        if self.id == "wake_latency":
            return int(value) + 1
        return 1

    @property
    def numeric(self):
        return all(v.isdigit() for v in self.values)


def _ints(*values):
    return tuple(str(v) for v in values)


_FANOUT = _ints(100, 1000, 10000, 100000, 1000000)
_CHAIN = _ints(10, 100, 1000, 10000, 100000, 1000000)
_VALUE = _ints(1, 10, 100, 1000, 10000)
_TBB = frozenset({"tbb"})
_GO = frozenset({"go"})
_BOTH = _TBB | _GO

# One-shot workloads: every row on the settled and on the aged heap (metric suffix _aged).
_CHILD = ("ns_per_child", "ns_per_child_aged")
_NODE = ("ns_per_node", "ns_per_node_aged")

WORKLOADS = (
    Workload("fanout_create", "n", _FANOUT, _CHILD,
             "creating n direct with_cancel children of one cancellable root", _BOTH),
    Workload("fanout_cancel", "n", _FANOUT, _CHILD,
             "the root's cancel call with n direct children", _BOTH),
    Workload("fanout_cancel_callbacks", "n", _FANOUT, _CHILD,
             "as fanout_cancel, each child with one after_func bumping a counter (go: a "
             "goroutine per child blocked on Done(), the pre-1.21 idiom)", _GO),
    Workload("tree_cancel", "shape", ("b10d5", "b2d16", "b1000d2"), _NODE,
             "cancel of the root of a full tree (branching b, depth d)", _BOTH),
    Workload("merge_create", "n", _ints(1000, 100000), _CHILD,
             "creating n with_merged(a, b) children of two cancellable roots"),
    Workload("merge_cancel", "via", ("first", "second"), _CHILD,
             "cancel of root a (first) or b (second) with 1e5 with_merged(a, b) children"),
    Workload("chain_cancel", "depth", _CHAIN, _NODE,
             "cancel of the root of a chain of nested with_cancel", _BOTH,
             (("tbb", _ints(10, 100, 1000, 10000)),)),
    Workload("chain_destroy", "depth", _CHAIN, _NODE,
             "dropping every handle of a (cancelled) chain, root first, + one reclaim()"),
    Workload("value_lookup_far", "depth", _VALUE, ("ns_per_op",),
             "value(k) from the leaf, k bound at the layer nearest the root", _GO),
    Workload("value_lookup_miss", "depth", _VALUE, ("ns_per_op",),
             "value(k) of a key bound nowhere", _GO),
    Workload("value_lookup_near", "depth", _VALUE, ("ns_per_op",),
             "value(k), k bound at the leaf", _GO),
    Workload("value_lookup_mixed", "depth", _VALUE, ("ns_per_op",),
             "value(k) through alternating value (8 cycling keys) and cancel layers", _GO),
    Workload("value_create", "depth", _VALUE, ("ns_per_op",),
             "one with_value of a new key on a chain of depth layers, handle dropped", _GO),
    Workload("churn", "threads", _ints(1, 2, 4), ("ns_per_op", "ops_per_sec"),
             "with_cancel of a shared parent then cancel, all threads on one parent", _BOTH),
    Workload("churn_timeout", "threads", _ints(1, 2), ("ns_per_op",),
             "as churn with with_timeout(parent, 1h)", _GO),
    Workload("done_poll", "depth", _ints(1, 100), ("ns_per_op",),
             "is_done() on a live node", _BOTH),
    Workload("wake_latency", "waiters", _ints(1, 16, 256), ("p50_us", "p99_us"),
             "from the cancel call to the last waiter blocked in done().wait() running", _GO),
    Workload("timer_fire", "n", _ints(1000, 10000, 100000),
             ("create_ns", "p50_lateness_us", "p99_lateness_us", "max_lateness_us"),
             "n deadlines uniform in [1, 100] ms: creation, and lateness of each fire"),
    Workload("timer_fire_observed", "n", _ints(1000, 10000, 100000),
             ("create_ns", "p50_lateness_us", "p99_lateness_us", "max_lateness_us"),
             "as timer_fire, each fire seen by 16 threads (go: goroutines) blocked on done", _GO),
    Workload("memory", "kind", ("cancel", "value", "deadline", "value_chain"),
             ("bytes_per_node", "chunk_bytes_per_node"),
             "heap bytes per node (1e6 nodes; value_chain: per layer of a 1e4 chain), requested "
             "and held by the allocator, each repetition in a fresh process", _BOTH,
             (("tbb", ("cancel",)),)),
    Workload("lookup_under_churn", "threads", _ints(2), ("ns_per_op",),
             "value lookups at depth 100 while another thread churns children of the leaf", _GO),
    Workload("request", "threads", _ints(1, 2, 4), ("ns_per_op", "ops_per_sec"),
             "one RPC's context work: timeout, value, 3 timeout sub-calls with a lookup and a "
             "poll, every cancel; one shared server context", _GO),
)

BY_ID = {w.id: w for w in WORKLOADS}

# A one-shot row measured on an aged heap is named after its settled metric with this suffix.
AGED_SUFFIX = "_aged"

# Metrics that describe the same measurement as another metric of the row (its reciprocal; the
# allocator's view of the same bytes; the allocations behind them): summaries count only the
# first, so one measurement is never counted twice.
SAME_MEASUREMENT = {"ops_per_sec": "ns_per_op", "chunk_bytes_per_node": "bytes_per_node",
                    "allocs_per_node": "bytes_per_node"}

# Reported first: the workload closest to what a service does.
REPORT_FIRST = ("request",)


def settled_metric(metric):
    """The settled metric of an `_aged` metric; the metric itself otherwise."""
    return metric[:-len(AGED_SUFFIX)] if metric.endswith(AGED_SUFFIX) else metric


def is_aged(metric):
    return metric.endswith(AGED_SUFFIX)


def unit(metric):
    """Unit of any metric: `_aged` metrics share their settled metric's unit; others are read off
    the name (ns, us, bytes, ops/s, allocs); "" for a name that says nothing."""
    base = settled_metric(metric)
    if base in UNITS:
        return UNITS[base]
    for key, u in (("_ns", "ns"), ("ns_", "ns"), ("_us", "us"), ("bytes", "bytes"),
                   ("per_sec", "ops/s"), ("allocs", "allocs")):
        if key in base:
            return u
    return ""


def higher_is_better(metric):
    return settled_metric(metric) in HIGHER_IS_BETTER


def shared_code(workload):
    """Workloads whose timed code is the same in every tree (the value index is shared), so
    differences between trees there are layout noise, not design: left out of rankings."""
    return workload.startswith("value_")


def report_order():
    """Workloads in report order: REPORT_FIRST, then WORKLOADS.md's order."""
    first = [BY_ID[w] for w in REPORT_FIRST if w in BY_ID]
    return first + [w for w in WORKLOADS if w.id not in REPORT_FIRST]


def impl_order(trees):
    """Display order of implementations: the registry's trees, then the peers."""
    return list(trees) + list(PEERS)
