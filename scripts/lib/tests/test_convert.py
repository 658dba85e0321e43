"""Merging the rounds of a run: repetitions of every invocation, in order, with their events."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench_convert  # noqa: E402
import bench_spec  # noqa: E402


def entry(name, metrics, run_type="iteration"):
    return dict({"name": name, "run_name": name, "run_type": run_type, "threads": 1}, **metrics)


class MergeTest(unittest.TestCase):
    def test_rounds_merge_into_one_row_with_every_repetition(self):
        name = "fanout_create/impl:mutex/n:100"
        docs = [{"context": {"ctxtree_trees": "mutex"},
                 "benchmarks": [entry(name, {"ns_per_child": v, "ns_per_child_aged": 2 * v}),
                                entry(name + "_median", {"ns_per_child": v}, "aggregate")]}
                for v in (10.0, 30.0, 20.0)]
        merged = bench_convert.merge_docs(docs)
        self.assertEqual([b["repetition_index"] for b in merged["benchmarks"]], [0, 1, 2])
        self.assertTrue(all(b["repetitions"] == 3 for b in merged["benchmarks"]))
        rows = {r[5]: r for r in bench_convert.rows_from_gbench(merged, {})}
        self.assertEqual(rows["ns_per_child"][6], "20")
        self.assertEqual(rows["ns_per_child"][8], "3")
        self.assertEqual(rows["ns_per_child_aged"][6], "40")
        self.assertEqual(rows["ns_per_child_aged"][7], bench_spec.unit("ns_per_child"))

    def test_events_of_every_round_feed_the_percentile(self):
        name = "wake_latency/impl:mutex/waiters:1"
        docs = [{"benchmarks": [entry(name, {"p50_us": p, "p99_us": p})]} for p in (1.0, 100.0)]
        with tempfile.TemporaryDirectory() as d:
            parts = []
            for k, values in enumerate(("1 2 3", "100 200 300")):
                parts.append(os.path.join(d, f"r{k}.events"))
                with open(parts[-1], "w") as f:
                    f.write(f"{name}\tlatency_us\t{values}\n")
            bench_convert.concat_files(parts, os.path.join(d, "all.events"))
            events = bench_convert.load_events(os.path.join(d, "all.events"))
        rows = {r[5]: r for r in bench_convert.rows_from_gbench(bench_convert.merge_docs(docs),
                                                                 events)}
        self.assertEqual(rows["p50_us"][6], "51.5")  # median of all six events

    def test_failed_or_unknown_rows_are_named_and_the_others_kept(self):
        good = "done_poll/impl:mutex/depth:1"
        failed = dict(entry("done_poll/impl:mutex/depth:100", {}), error_occurred=True,
                      error_message="check failed")
        unknown = entry("no_such_workload/impl:mutex/n:1", {"ns_per_op": 1.0})
        doc = {"benchmarks": [entry(good, {"ns_per_op": 2.0}), failed, unknown]}
        problems = []
        rows = bench_convert.rows_from_gbench(doc, {}, problems)
        self.assertEqual([(r[0], r[3]) for r in rows], [("done_poll", "1")])
        self.assertEqual(len(problems), 2)
        self.assertIn("check failed", problems[0])
        self.assertIn("no_such_workload", problems[1])
        with self.assertRaises(bench_convert.ConversionError):
            bench_convert.rows_from_gbench(doc, {})


if __name__ == "__main__":
    unittest.main()
