"""Statistics shared by the scripts; definitions match bench/bench_common.hpp and bench/go."""

import math


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks (numpy's default); input sorted."""
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median(values):
    return percentile(sorted(values), 0.5)


def cv(values):
    """Sample standard deviation over the mean (Google Benchmark's cv aggregate)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    if mean == 0:
        return 0.0
    var = sum((x - mean) ** 2 for x in values) / (n - 1)
    return math.sqrt(var) / abs(mean)


def geomean(values):
    values = [v for v in values if v > 0]
    if not values:
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _exact_u_pvalue(x, y):
    """Two-sided exact p-value of the Mann-Whitney U statistic (no ties)."""
    n1, n2 = len(x), len(y)
    u = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    # counts[k] = number of arrangements with U = k, built by the usual recurrence.
    table = {}

    def count(k, m, n):
        if k < 0:
            return 0
        if m == 0 or n == 0:
            return 1 if k == 0 else 0
        key = (k, m, n)
        if key not in table:
            table[key] = count(k - n, m - 1, n) + count(k, m, n - 1)
        return table[key]

    total = math.comb(n1 + n2, n1)
    u_small = min(u, n1 * n2 - u)
    cdf = sum(count(k, n1, n2) for k in range(int(math.floor(u_small)) + 1)) / total
    return min(1.0, 2.0 * cdf)


def _normal_u_pvalue(x, y):
    """Two-sided p-value, normal approximation with tie and continuity corrections."""
    n1, n2 = len(x), len(y)
    ranked = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(ranked)
    ties = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2.0 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, ranked) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0)))


def mann_whitney_p(x, y):
    """Two-sided Mann-Whitney U test p-value of two samples, as Google Benchmark's compare.py.

    scipy when available (/usr/bin/python3 has it), else an exact test for small samples without
    ties and the normal approximation otherwise. None when a sample is empty.
    """
    if not x or not y:
        return None
    try:
        from scipy.stats import mannwhitneyu
        return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)
    except ImportError:
        pass
    if len(set(x) | set(y)) == len(x) + len(y) and len(x) + len(y) <= 40:
        return _exact_u_pvalue(x, y)
    return _normal_u_pvalue(x, y)


def min_p_possible(n1, n2):
    """The smallest two-sided p a U test can reach with these sample sizes."""
    if n1 == 0 or n2 == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values, in input order; None entries stay None and do not
    count towards the family size."""
    idx = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(idx)
    out = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _u_null_cdf(n1, n2):
    """cdf[k] = P(U <= k) under the null, for U in 0..n1*n2 (no ties)."""
    # prev[m][u]: arrangements of m x-values and n - 1 y-values with U = u; with no y-value
    # only U = 0 is possible.
    prev = [[1] + [0] * (n1 * n2) for _ in range(n1 + 1)]
    for n in range(1, n2 + 1):
        cur = [[0] * (n1 * n2 + 1) for _ in range(n1 + 1)]
        cur[0][0] = 1
        for m in range(1, n1 + 1):
            for u in range(n1 * n2 + 1):
                # The largest of the m + n values is from x (adds n to U) or from y (adds 0).
                cur[m][u] = (cur[m - 1][u - n] if u >= n else 0) + prev[m][u]
        prev = cur
    counts = prev[n1]
    total = math.comb(n1 + n2, n1)
    cdf, acc = [], 0
    for c in counts:
        acc += c
        cdf.append(acc / total)
    return cdf


def hodges_lehmann_ratio(x, y, confidence=0.95):
    """Hodges-Lehmann estimate of x / y (median of the pairwise log ratios) with the
    distribution-free interval from the Mann-Whitney null distribution (Bauer 1972).

    Returns (estimate, low, high, achieved_confidence), or None if a sample is empty or holds a
    value <= 0. Small samples cannot reach every level: with 3 against 3 repetitions the widest
    interval, from the smallest to the largest pairwise ratio, has 90 %; the achieved level is
    returned so the report can say so.
    """
    if not x or not y or min(x) <= 0 or min(y) <= 0:
        return None
    d = sorted(math.log(a) - math.log(b) for a in x for b in y)
    n1, n2 = len(x), len(y)
    mn = n1 * n2
    est = percentile(d, 0.5)
    alpha = 1.0 - confidence
    if n1 * n2 <= 400:
        cdf = _u_null_cdf(n1, n2)
        # Largest k with P(U <= k - 1) <= alpha / 2; interval d[k-1] .. d[mn-k] (0-based).
        k = 0
        while k < mn and cdf[k] <= alpha / 2:
            k += 1
        k = max(k, 1)
        achieved = 1.0 - 2.0 * cdf[k - 1]
    else:
        z = _normal_quantile(1.0 - alpha / 2)
        k = max(1, int(math.floor(mn / 2.0 - z * math.sqrt(mn * (n1 + n2 + 1) / 12.0))))
        achieved = confidence
    lo, hi = d[k - 1], d[mn - k]
    return math.exp(est), math.exp(lo), math.exp(hi), achieved


def _normal_quantile(p):
    """Inverse of the standard normal cdf (bisection on erfc; only used for large samples)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# A difference below this is reported as "≈" whatever its p-value: at these sample sizes and on a
# shared machine, smaller differences are layout and scheduling noise, not a property of the code.
EFFECT_FLOOR = 0.03


def verdict(ratio, p_adjusted, alpha=0.05, floor=EFFECT_FLOOR):
    """'better' / 'worse' for a cost ratio (< 1 is better) that is both significant (Holm-adjusted
    p < alpha) and at least `floor` away from 1; '≈' otherwise (also without a p-value)."""
    if ratio is None or p_adjusted is None or p_adjusted >= alpha:
        return "≈"
    if abs(ratio - 1.0) < floor:
        return "≈"
    return "better" if ratio < 1.0 else "worse"
