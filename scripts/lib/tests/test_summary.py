"""The summary rule of scripts/compare: geometric means only over rows every column shares, one
metric per measurement, shared-code workloads not ranked, settled and aged apart."""

import csv
import json
import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench_compare  # noqa: E402
import bench_spec  # noqa: E402

TREES = ["mutex", "a", "b"]


def make_run(rows):
    """A run folder with results.csv holding rows (workload, impl, value, metric, number)."""
    path = tempfile.mkdtemp(prefix="bench-summary-test-")
    with open(os.path.join(path, "results.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(bench_spec.CSV_HEADER)
        for workload, impl, value, metric, number in rows:
            spec = bench_spec.BY_ID[workload]
            w.writerow([workload, impl, spec.param, value, spec.threads(value), metric, number,
                        bench_spec.unit(metric), 9, 0.01])
    with open(os.path.join(path, "machine.json"), "w") as f:
        json.dump({"trees": TREES}, f)
    return path


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.paths = []

    def tearDown(self):
        for p in self.paths:
            shutil.rmtree(p)

    def summary(self, rows, cols, rank_shared_code=False):
        path = make_run(rows)
        self.paths.append(path)
        run = bench_compare.Run(path)
        lines, overall = bench_compare.summary_geomeans(run, "mutex", cols,
                                                        bench_spec.report_order(),
                                                        rank_shared_code)
        return {label: (n, means, ranked) for label, n, means, ranked in lines}, overall

    def test_geomean_counts_only_rows_every_column_has(self):
        rows = [("fanout_create", "mutex", "100", "ns_per_child", 10),
                ("fanout_create", "mutex", "1000", "ns_per_child", 10),
                ("fanout_create", "a", "100", "ns_per_child", 20),
                ("fanout_create", "a", "1000", "ns_per_child", 80),
                ("fanout_create", "b", "100", "ns_per_child", 5)]  # b lacks n=1000
        lines, (n, overall) = self.summary(rows, ["a", "b"])
        rows_counted, means, _ = lines["fanout_create"]
        self.assertEqual(rows_counted, 1)
        self.assertAlmostEqual(means["a"], 2.0)  # n=1000 (×8) left out for a too
        self.assertAlmostEqual(means["b"], 0.5)
        self.assertEqual(n, 1)
        self.assertAlmostEqual(overall["a"], 2.0)

    def test_ops_per_sec_is_not_counted_beside_ns_per_op(self):
        rows = []
        for impl, ns in (("mutex", 100), ("a", 50)):
            rows += [("churn", impl, "1", "ns_per_op", ns),
                     ("churn", impl, "1", "ops_per_sec", 1e9 / ns)]
        lines, _ = self.summary(rows, ["a"])
        n, means, _ = lines["churn"]
        self.assertEqual(n, 1)
        self.assertAlmostEqual(means["a"], 0.5)

    def test_shared_code_workload_is_shown_but_not_ranked(self):
        rows = [("value_lookup_far", "mutex", "10", "ns_per_op", 10),
                ("value_lookup_far", "a", "10", "ns_per_op", 5),
                ("done_poll", "mutex", "1", "ns_per_op", 2),
                ("done_poll", "a", "1", "ns_per_op", 4)]
        lines, (n, overall) = self.summary(rows, ["a"])
        self.assertFalse(lines["value_lookup_far"][2])
        self.assertAlmostEqual(lines["value_lookup_far"][1]["a"], 0.5)
        self.assertEqual(n, 1)
        self.assertAlmostEqual(overall["a"], 2.0)
        _, (n, overall) = self.summary(rows, ["a"], rank_shared_code=True)
        self.assertEqual(n, 2)
        self.assertAlmostEqual(overall["a"], 1.0)

    def test_settled_and_aged_rows_are_separate_lines(self):
        rows = [("chain_cancel", "mutex", "10", "ns_per_node", 10),
                ("chain_cancel", "mutex", "10", "ns_per_node_aged", 20),
                ("chain_cancel", "a", "10", "ns_per_node", 10),
                ("chain_cancel", "a", "10", "ns_per_node_aged", 60)]
        lines, (n, overall) = self.summary(rows, ["a"])
        self.assertAlmostEqual(lines["chain_cancel"][1]["a"], 1.0)
        self.assertAlmostEqual(lines["chain_cancel (aged)"][1]["a"], 3.0)
        self.assertEqual(n, 2)

    def test_peer_table_covers_only_the_peers_rows(self):
        rows = [("done_poll", impl, v, "ns_per_op", x)
                for impl, v, x in (("mutex", "1", 1), ("mutex", "100", 1), ("a", "1", 2),
                                   ("a", "100", 8), ("tbb", "1", 4))]
        lines, (n, overall) = self.summary(rows, ["a", "tbb"])
        self.assertEqual(n, 1)
        self.assertAlmostEqual(overall["a"], 2.0)
        self.assertAlmostEqual(overall["tbb"], 4.0)


class ReportOrderTest(unittest.TestCase):
    def test_request_comes_first(self):
        workloads = bench_spec.WORKLOADS
        self.assertIn("request", bench_spec.BY_ID)
        # request is registered last of all, so first place is the order's doing.
        moved = tuple(w for w in workloads if w.id != "request") + (bench_spec.BY_ID["request"],)
        with mock.patch.object(bench_spec, "WORKLOADS", moved):
            order = [w.id for w in bench_spec.report_order()]
        self.assertEqual(order[0], "request")
        self.assertEqual(sorted(order), sorted(w.id for w in workloads))


if __name__ == "__main__":
    unittest.main()
