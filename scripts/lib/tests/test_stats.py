"""Statistics of scripts/compare: Holm correction, Hodges-Lehmann interval, effect floor."""

import itertools
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench_stats  # noqa: E402


def brute_force_u_cdf(n1, n2):
    """P(U <= k) by enumerating every placement of the x ranks among n1 + n2."""
    counts = [0] * (n1 * n2 + 1)
    for xs in itertools.combinations(range(n1 + n2), n1):
        # U counts the (x, y) pairs with x above y.
        ys = [r for r in range(n1 + n2) if r not in xs]
        counts[sum(1 for a in xs for b in ys if a > b)] += 1
    total = sum(counts)
    return [sum(counts[:k + 1]) / total for k in range(len(counts))]


class HolmTest(unittest.TestCase):
    def test_adjusts_by_rank_and_keeps_input_order(self):
        adjusted = bench_stats.holm([0.01, 0.04, 0.03])
        for got, want in zip(adjusted, [0.03, 0.06, 0.06]):
            self.assertAlmostEqual(got, want)

    def test_adjusted_values_never_decrease_with_the_raw_order(self):
        # Raw 0.011 * 2 = 0.022 would fall below the first step's 0.03: Holm carries the maximum.
        adjusted = bench_stats.holm([0.01, 0.011, 0.5])
        self.assertAlmostEqual(adjusted[0], 0.03)
        self.assertAlmostEqual(adjusted[1], 0.03)
        self.assertAlmostEqual(adjusted[2], 0.5)

    def test_missing_p_values_stay_missing_and_do_not_enlarge_the_family(self):
        self.assertEqual(bench_stats.holm([None, 0.02, None]), [None, 0.02, None])

    def test_adjusted_values_are_capped_at_one(self):
        self.assertEqual(bench_stats.holm([0.6, 0.7]), [1.0, 1.0])


class HodgesLehmannTest(unittest.TestCase):
    def test_null_distribution_matches_enumeration(self):
        for n1, n2 in ((3, 3), (3, 4), (5, 2), (4, 4)):
            for got, want in zip(bench_stats._u_null_cdf(n1, n2), brute_force_u_cdf(n1, n2)):
                self.assertAlmostEqual(got, want)

    def test_scaled_sample_gives_the_scale_and_an_interval_around_it(self):
        y = [10.0, 10.5, 11.0, 9.5, 10.2, 9.8, 10.7, 10.1, 9.9]
        x = [2 * v for v in y]
        est, lo, hi, level = bench_stats.hodges_lehmann_ratio(x, y)
        self.assertAlmostEqual(est, 2.0)
        self.assertLess(lo, 2.0)
        self.assertGreater(hi, 2.0)
        self.assertGreaterEqual(level, 0.95)

    def test_nine_against_nine_uses_the_tabulated_critical_value(self):
        # Two-sided 5 % critical U for 9 against 9 is 17: the interval runs from the 18th
        # smallest to the 18th largest of the 81 pairwise log ratios, confidence 96 %.
        x = [1.0 + 0.1 * i for i in range(9)]
        y = [1.05 + 0.13 * i for i in range(9)]
        d = sorted(math.log(a) - math.log(b) for a in x for b in y)
        _, lo, hi, level = bench_stats.hodges_lehmann_ratio(x, y)
        self.assertAlmostEqual(math.log(lo), d[17])
        self.assertAlmostEqual(math.log(hi), d[63])
        self.assertAlmostEqual(level, 0.96, places=2)

    def test_three_against_three_reports_the_attainable_90_percent(self):
        x, y = [1.0, 1.1, 1.2], [2.0, 2.1, 2.2]
        _, lo, hi, level = bench_stats.hodges_lehmann_ratio(x, y)
        self.assertAlmostEqual(level, 0.90)
        self.assertAlmostEqual(lo, 1.0 / 2.2)
        self.assertAlmostEqual(hi, 1.2 / 2.0)

    def test_no_interval_without_positive_samples(self):
        self.assertIsNone(bench_stats.hodges_lehmann_ratio([], [1.0]))
        self.assertIsNone(bench_stats.hodges_lehmann_ratio([0.0, 1.0], [1.0]))


class VerdictTest(unittest.TestCase):
    def test_significant_difference_below_the_floor_is_no_difference(self):
        self.assertEqual(bench_stats.verdict(0.98, 1e-6), "≈")
        self.assertEqual(bench_stats.verdict(1.029, 1e-6), "≈")

    def test_significant_difference_beyond_the_floor_is_called(self):
        self.assertEqual(bench_stats.verdict(0.96, 0.01), "better")
        self.assertEqual(bench_stats.verdict(1.5, 0.01), "worse")

    def test_large_difference_without_significance_is_no_difference(self):
        self.assertEqual(bench_stats.verdict(2.0, 0.1), "≈")
        self.assertEqual(bench_stats.verdict(2.0, None), "≈")


if __name__ == "__main__":
    unittest.main()
