"""Small statistics helpers shared by the insight assets (vectorised numpy/scipy)."""

import numpy as np
import polars as pl

Z95 = 1.959963984540054
SPARSE_BELOW = 0.05  # share of held cells under which co-occurrence counts are a sparse product


def wilson(successes: pl.Expr, trials: pl.Expr, side: int) -> pl.Expr:
    """Lower (side=-1) or upper (side=+1) bound of the 95 % Wilson score interval of a proportion
    (Wilson 1927). NaN when `trials` is 0."""
    n = trials.cast(pl.Float64)
    p = successes.cast(pl.Float64) / n
    centre = p + Z95**2 / (2 * n)
    spread = Z95 * (p * (1 - p) / n + Z95**2 / (4 * n**2)).sqrt()
    bound = ((centre + side * spread) / (1 + Z95**2 / n)).clip(0.0, 1.0)
    # the bounds hold the estimate up to float rounding (4e-19 above a rate of 0 otherwise)
    return pl.min_horizontal(bound, p) if side < 0 else pl.max_horizontal(bound, p)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values (false discovery rate)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.clip(q, 0, 1)
    return out


def two_proportion_p(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value of a two-proportion z-test (arrays allowed)."""
    from scipy.stats import norm

    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):  # empty groups give no evidence (p = 1)
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (x1 / n1 - x2 / n2) / se
    return np.where(np.isfinite(z), 2 * norm.sf(np.abs(z)), 1.0)


def curveball_step(columns: np.ndarray, rng: np.random.Generator) -> None:
    """One global curveball step, in place, on a dense boolean matrix stored columns × rows
    (the transpose of customers × categories: every step works on whole category rows, contiguous).

    Every customer is paired with another (Carstens et al. 2016, "global curveball"); each pair pools
    the categories that only one of the two holds and deals them back at random, each customer
    receiving as many as it gave. Every customer's and every category's total stays exactly the same
    (Strona et al. 2014, "A fast and unbiased procedure to randomize ecological binary matrices with
    fixed row and column totals", Nature Communications 5:4114). The deal is selection sampling
    (Knuth's Algorithm S) run over the categories for all pairs at once: a uniform random subset, no sort.
    """
    n = columns.shape[1]
    half = n // 2
    if half == 0:
        return
    # pairs without gathering customers: the matrix rotated by a random shift, customer k of the first
    # half with customer k + r of the second (rotations are memory copies; a random pairing was 3x slower)
    shift, r = int(rng.integers(n)), int(rng.integers(half))
    work = np.roll(columns, -shift, axis=1)
    a, b = work[:, :half], np.roll(work[:, half:2 * half], -r, axis=1)
    pooled = a ^ b
    need = (a & pooled).sum(axis=0, dtype=np.int32).astype(np.float32)  # cells customer a gets back
    left = pooled.sum(axis=0, dtype=np.int32).astype(np.float32)  # pooled cells not dealt yet
    draws = rng.random(pooled.shape, dtype=np.float32)
    to_a = np.empty_like(pooled)
    for j in range(pooled.shape[0]):
        np.logical_and(pooled[j], draws[j] * left < need, out=to_a[j])
        need -= to_a[j]
        left -= pooled[j]
    a &= ~pooled
    a |= to_a
    b &= ~pooled
    b |= pooled & ~to_a
    work[:, half:2 * half] = np.roll(b, r, axis=1)
    columns[:] = np.roll(work, shift, axis=1)


def cooccurrence_null(matrix: np.ndarray, samples: int = 500, burn_in: int = 10, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, standard deviation, skewness), each columns × columns, of every column pair's co-occurrence count
    over `samples` curveball randomisations of the boolean `matrix` (rows × columns): the null that
    keeps every row's number of distinct columns and every column's number of rows exactly.
    `burn_in` global steps first, then one sample per global step. Deterministic given `seed`."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    work = np.ascontiguousarray(matrix.T, dtype=bool)  # a copy: the caller's matrix is left alone
    for _ in range(burn_in):
        curveball_step(work, rng)
    k = work.shape[0]
    total, squares, cubes = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    # one BLAS thread: the products are small, and spinning BLAS threads on a busy 2-core machine made
    # each 10x slower (112 ms instead of 3 ms for 4,627 × 122)
    with threadpool_limits(1):
        for _ in range(samples):
            curveball_step(work, rng)
            counts = cooccurrence(work.T)
            total += counts
            squares += counts**2
            cubes += counts**3
    mean = total / samples
    var = np.maximum(squares / samples - mean**2, 0.0)
    third = cubes / samples - 3 * mean * squares / samples + 2 * mean**3  # central third moment
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(var > 0, third / var**1.5, 0.0)
    return mean, np.sqrt(var * samples / max(samples - 1, 1)), skew


def count_tail(observed: np.ndarray, mean: np.ndarray, sd: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """One-sided p-value P(X >= observed) of counts from the null's first three moments: the Pearson type III
    (shifted gamma) curve with the null's mean, sd and skewness, continuity-corrected (observed - 1/2) —
    the usual approximation of a permutation distribution (Kazi-Aoual et al. 1995; Josse, Pagès & Husson
    2008, "Testing the significance of the RV coefficient"); the normal where the null is not skewed right.
    Sparse baskets make small, right-skewed counts whose upper tail the normal far understates: on
    curveball-random baskets (100k baskets x 300 products, 6,666 tested; two seeds) the normal tail of z
    flagged 0 and 4 of 2,874 pairs, this tail none; a Poisson tail flagged none either but lost every
    planted category pair, whose big counts vary far less than a Poisson's. Big, nearly symmetric counts
    keep the normal's power.
    1 where the margins fix the count (sd 0)."""
    from scipy.stats import gamma, norm

    observed, mean, sd, skew = (np.asarray(v, dtype=float) for v in (observed, mean, sd, skew))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (observed - 0.5 - mean) / sd
        skewed = (skew > 0.01) & (sd > 0)
        shape = np.where(skewed, 4 / np.square(skew), 1.0)
        p = np.where(skewed, gamma.sf(shape + z * np.sqrt(shape), shape), norm.sf(z))
    return np.where(sd > 0, p, 1.0)


def cooccurrence(matrix: np.ndarray) -> np.ndarray:
    """Columns × columns counts of rows holding both columns of a boolean rows × columns matrix."""
    from scipy import sparse

    by_column = matrix.T  # the curveball's own layout (columns × rows): contiguous there
    if np.count_nonzero(by_column) < SPARSE_BELOW * by_column.size:
        # baskets hold a few of hundreds of items: the sparse product of the held cells is ~5x faster
        # (300 items × 6,666 baskets at 1 % held: 9 ms instead of 43 ms per null sample)
        col, row = np.nonzero(by_column)
        held = sparse.csr_array((np.ones(col.size, dtype=np.float32), (col, row)), shape=by_column.shape)
        return (held @ held.T).toarray().astype(np.float64)
    dense = np.ascontiguousarray(by_column, dtype=np.float32)
    return (dense @ dense.T).astype(np.float64)  # float32 BLAS: exact for counts < 2**24


# --- pairs that occur together more often than chance ------------------------------------------
MAX_ITEMS = 300  # most frequent items tested (a product-level export can have thousands)
# rows × items cells the null is randomised on; beyond that a hash-sample of rows is tested
# (2M cells: 300 items × 6,667 rows; one global curveball step ~15-30 ms there)
TESTED_CELLS = 2_000_000
# randomisations: 500, fewer on big matrices (cells × samples <= 6e8). The null's sd
# from 200 samples flagged a chance pair in 3 of 12 association-free basket sets, from 500 in 2, from 1000 in 1
NULL_SAMPLES, NULL_CELL_SAMPLES = 500, 600_000_000
MIN_TESTED_TOGETHER = 20  # pairs held together by fewer rows are not tested (too little evidence to act on)
PAIR_TEST_SCHEMA = {"item_a": pl.String, "item_b": pl.String, "together": pl.Int64, "rows_a": pl.Int64,
                    "rows_b": pl.Int64, "rows": pl.Int64, "lift": pl.Float64, "adjusted_lift": pl.Float64,
                    "z": pl.Float64, "p_value": pl.Float64, "q_value": pl.Float64, "significant": pl.Boolean}


def cooccurrence_test(incidence: pl.DataFrame, row: str, item: str, unit: str, min_together: int = MIN_TESTED_TOGETHER,
                      max_items: int = MAX_ITEMS, tested_cells: int = TESTED_CELLS, seed: int = 0,
                      alpha: float = 0.05) -> tuple[pl.DataFrame, dict]:
    """(every pair of items held by the same rows — customers' categories, an order's products —, how it was tested).

    `incidence`: one row per (row, item) holding (repeats are ignored, nulls dropped). Output: one row per
    unordered pair `item_a < item_b` of the `max_items` most frequent items with `together` (rows holding
    both), `rows_a`, `rows_b`, `rows` (all rows holding a tested item), lift = together × rows / (rows_a ×
    rows_b), and the test:

    The binary rows × items matrix is compared with up to NULL_SAMPLES curveball randomisations of itself
    (Strona et al. 2014; global steps, Carstens et al. 2016): the null keeps every row's number of distinct
    items and every item's number of rows exactly, so big baskets / heavy buyers and popular items explain
    nothing. Only rows holding >= 2 tested items enter the null: the others can hold no pair whatever the
    randomisation, and conditioning on them keeps the test exact while shrinking the matrix (most sessions
    and many orders hold one item). Each pair's count gets z = (observed - 1/2 - null mean) / null sd
    (continuity-corrected; 0 where the margins fix the count), a one-sided p-value (`count_tail`) and a
    Benjamini-Hochberg q-value over the pairs held together by >= `min_together` rows (the others: q null,
    never significant); `significant` = q < `alpha` and z > 0; `adjusted_lift` = observed / null mean.

    Scale: with more multi-item rows × items than `tested_cells`, observed and null are computed on a
    deterministic hash-sample of those rows (the smallest salted hashes of the row ids); together, lift and
    the margins always use every row. Cost ~ cells × samples (<= NULL_CELL_SAMPLES). Deterministic given `seed`.
    `how` names the counts with `unit` (e.g. `customers`, `tested_customers`)."""
    from scipy import sparse

    held = incidence.select(pl.col(row).alias("_row"), pl.col(item).cast(pl.String).alias("_item")).drop_nulls().unique()
    popularity = held["_item"].value_counts(sort=True)
    items = sorted(popularity["_item"].head(max_items).to_list())
    if len(items) < 2:
        return pl.DataFrame(schema=PAIR_TEST_SCHEMA), {"state": f"fewer than two items held by {unit}"}
    held = held.filter(pl.col("_item").is_in(items)).with_columns(
        _r=pl.col("_row").rank("dense").cast(pl.Int64) - 1,
        _c=pl.col("_item").replace_strict({c: i for i, c in enumerate(items)}, return_dtype=pl.Int64))
    n = int(held["_r"].max()) + 1
    # sparse: 500k baskets x 300 items would be 600 MB as the dense float32 the product needs
    matrix = sparse.csr_array((np.ones(held.height, dtype=np.float32), (held["_r"].to_numpy(), held["_c"].to_numpy())),
                              shape=(n, len(items)))
    full = (matrix.T @ matrix).toarray().astype(np.float64)
    multi = np.flatnonzero(np.diff(matrix.indptr) >= 2)
    eligible, tested_rows = multi.size, max(tested_cells // len(items), 1000)
    if eligible > tested_rows:  # the smallest salted hashes: the same rows on every run
        ids = held.unique("_r").sort("_r")["_row"].gather(multi)
        multi = np.sort(multi[np.argsort(ids.hash(seed=seed).to_numpy(), kind="stable")[:tested_rows]])
    tested = matrix[multi].toarray().astype(bool)
    i, j = np.triu_indices(len(items), k=1)
    both, counts = full[i, j], np.diag(full)
    samples = 0
    if tested.shape[0] >= 2:
        observed = cooccurrence(tested)
        samples = int(min(NULL_SAMPLES, max(100, NULL_CELL_SAMPLES // tested.size)))
        mean, sd, skew = cooccurrence_null(tested, samples=samples, seed=seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd[i, j] > 0, (observed[i, j] - 0.5 - mean[i, j]) / sd[i, j], 0.0)
            adjusted = observed[i, j] / mean[i, j]
        p = count_tail(observed[i, j], mean[i, j], sd[i, j], skew[i, j])
    else:  # no row holds two tested items: nothing co-occurs, nothing to test
        z, adjusted, p = np.zeros(i.size), np.full(i.size, np.nan), np.ones(i.size)
    pairs = pl.DataFrame({
        "item_a": np.array(items)[i], "item_b": np.array(items)[j], "together": both.astype(np.int64),
        "rows_a": counts[i].astype(np.int64), "rows_b": counts[j].astype(np.int64),
        "rows": np.full(i.size, n, dtype=np.int64), "lift": both * n / (counts[i] * counts[j]),
        "adjusted_lift": adjusted, "z": z, "p_value": p,
    }).with_columns(pl.col("adjusted_lift").fill_nan(None))
    in_test = both >= min_together
    q = np.full(pairs.height, np.nan)
    q[in_test] = benjamini_hochberg(pairs["p_value"].to_numpy()[in_test])
    pairs = pairs.with_columns(q_value=pl.Series(q).fill_nan(None)).with_columns(
        significant=(pl.col("q_value") < alpha).fill_null(False) & (pl.col("z") > 0))
    how = {"method": f"curveball null, {samples} randomisations, one-sided Pearson III tail of the null's "
                     f"mean, sd and skewness, BH q < {alpha}",
           unit: n, f"tested_{unit}": int(tested.shape[0]), "items": len(items),
           "pairs_tested": int(in_test.sum()), "significant_pairs": int(pairs["significant"].sum())}
    if tested.shape[0] < eligible:
        how["sample"] = (f"tested on a hash-sample of {tested.shape[0]:,} of the {eligible:,} {unit} holding two or "
                         "more items")
    if popularity.height > len(items):
        how["items_left_out"] = f"{popularity.height - len(items)} least frequent items not tested"
    return pairs, how
