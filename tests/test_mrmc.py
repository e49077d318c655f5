"""The MRMC analysis against a published one, against brute force, and on designs that are not
fully crossed."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from histostudy.mrmc import (
    Design,
    Estimate,
    MrmcError,
    analyse,
    covariance_matrix,
    equivalence,
)
from histostudy.statistics import auc_delong

# Van Dyke et al. (1993), cine vs spin-echo MRI for aortic dissection: 5 readers, 2 modalities,
# 69 normal and 45 abnormal cases, ratings 1-5. Converted from RJafroc's dataset02 (file
# tests/testthat/goodValues361/DfSaveDataFile/dataset02.lrc of github.com/dpc10ster/RJafroc).
VANDYKE = Path(__file__).parent / "data" / "vandyke.csv"


def read_rows(path: Path) -> list[tuple[str, str, str, int, float]]:
    with path.open() as f:
        return [(r["reader"], r["modality"], r["case"], int(r["truth"]), float(r["rating"]))
                for r in csv.DictReader(f)]  # fmt: skip


@pytest.fixture(scope="module")
def vandyke() -> Design:
    return Design.from_rows(read_rows(VANDYKE))


def test_van_dyke_jackknife_matches_or_dbm_mrmc_to_the_printed_digits(vandyke):
    """OR-DBM MRMC 2.5 (Schartz, Hillis, Pesce, Berbaum), trapezoidal AUC, jackknife, as printed
    in RJafroc's inst/obumrm2/VanDyke-traparea-jackknife-obuch-anova.txt."""
    result = analyse(vandyke, "auc", "jackknife")
    published_foms = [
        [0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
        [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169],
    ]
    np.testing.assert_allclose(result.foms, published_foms, atol=5e-9)
    one, two = result.modalities
    # single-treatment intervals: AUC, StdErr, DF, 95% CI
    assert (round(one.estimate, 8), round(one.se, 8), round(one.df, 2)) == (
        0.89703704, 0.03317360, 12.74)  # fmt: skip
    assert (round(one.ci_low, 8), round(one.ci_high, 8)) == (0.82522360, 0.96885048)
    assert (round(two.estimate, 8), round(two.se, 8), round(two.df, 2)) == (
        0.94083736, 0.02156637, 12.71)  # fmt: skip
    assert (round(two.ci_low, 8), round(two.ci_high, 8)) == (0.89413783, 0.98753689)
    c = result.components
    assert [round(x, 8) for x in (c.var_r, c.var_tr, c.cov1, c.cov2, c.cov3, c.var_e)] == [
        0.00153500, 0.00020040, 0.00034661, 0.00034407, 0.00023903, 0.00080229]  # fmt: skip
    assert [round(x, 8) for x in (c.ms_t, c.ms_r, c.ms_tr)] == [0.00479617, 0.00383620, 0.00055103]
    # the random-reader random-case test: F(1, 15.26) = 4.46, p = .0517, error term 0.00107626
    assert (round(result.f, 2), result.df1, round(result.df2, 2), round(result.p, 4)) == (
        4.46, 1, 15.26, 0.0517)  # fmt: skip
    assert round(result.differences[0].se ** 2 * 5 / 2, 8) == 0.00107626
    (d,) = result.differences
    assert (round(d.estimate, 8), round(d.se, 5), round(d.t, 2), round(d.p, 4)) == (
        -0.04380032, 0.02075, -2.11, 0.0517)  # fmt: skip
    assert (round(d.ci_low, 5), round(d.ci_high, 5)) == (-0.08796, 0.00036)
    assert d.name == "1 - 2"


# MRMCaov's printed analyses of the same data with its other covariance estimators (Smith,
# Hillis and Pesce, the JSS article's source docs/jss/MRMCaov.tex in brian-j-smith/MRMCaov):
# var_R, var_TR, Var, Cov1, Cov2, Cov3; F, df2, p; the difference's SE and CI; per modality
# SE and df
MRMCAOV = {
    "delong": (
        (0.0015364254, 0.0002045840, 0.0007921325, 0.0003420090, 0.0003395265, 0.0002358497),
        (4.484854, 15.06611, 0.05123303),
        (0.0206825, -0.0878671960, 0.0002665519),
        ((0.03307642, 12.59597), (0.02150464, 12.56530)),
    ),
    "unbiased": (
        (0.0015365290, 0.0002077588, 0.0007883925, 0.0003416706, 0.0003390650, 0.0002356148),
        (4.489614, 15.03418, 0.0511618),
        (0.02067154, -0.0878519409, 0.0002512968),
        ((0.0330712, 12.58802), (0.0214912, 12.53391)),
    ),
}


def same_digits(value: float, printed: float) -> bool:
    """value rounds to `printed` at the number of significant digits printed (7, as R)."""
    digits = len(f"{abs(printed):.10g}".replace(".", "").lstrip("0"))
    return float(f"{value:.{digits}g}") == printed


@pytest.mark.parametrize("method", ["delong", "unbiased"])
def test_van_dyke_delong_and_unbiased_match_mrmcaov_to_the_printed_digits(vandyke, method):
    components, test, difference, modalities = MRMCAOV[method]
    result = analyse(vandyke, "auc", method)
    c = result.components
    ours = (c.var_r, c.var_tr, c.var_e, c.cov1, c.cov2, c.cov3)
    assert all(map(same_digits, ours, components)), (ours, components)
    assert all(map(same_digits, (result.f, result.df2, result.p), test))
    (d,) = result.differences
    assert all(map(same_digits, (d.se, d.ci_low, d.ci_high), difference))
    for m, (se, df) in zip(result.modalities, modalities, strict=True):
        assert same_digits(m.se, se) and same_digits(m.df, df)


def test_delong_covariance_of_one_reader_is_delongs_variance(vandyke):
    cov = covariance_matrix(vandyke, "auc", "delong")
    for j in range(5):
        ratings = vandyke.ratings[0, j]
        expected = auc_delong(ratings[vandyke.truth == 1], ratings[vandyke.truth == 0])
        assert cov[j, j] == pytest.approx(expected.se**2, rel=1e-12)


def brute_unbiased(x: np.ndarray, y: np.ndarray, truth: np.ndarray) -> float:
    """A_x A_y less the mean of s_x(p, q) s_y(p', q') over p != p' and q != q', by loops."""
    pos, neg = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)

    def s(r, p, q):
        return 1.0 if r[p] > r[q] else 0.5 if r[p] == r[q] else 0.0

    auc_x = np.mean([s(x, p, q) for p in pos for q in neg])
    auc_y = np.mean([s(y, p, q) for p in pos for q in neg])
    products = [s(x, p, q) * s(y, p2, q2) for p, p2 in itertools.permutations(pos, 2)
                for q, q2 in itertools.permutations(neg, 2)]  # fmt: skip
    return auc_x * auc_y - float(np.mean(products))


def test_unbiased_covariance_is_the_u_statistic_by_its_definition():
    rng = np.random.default_rng(3)
    truth = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0])
    ratings = rng.integers(1, 5, (2, 2, 9)).astype(float) + truth * 1.0
    design = Design(ratings, truth, ("a", "b"), ("r1", "r2"), tuple(map(str, range(9))))
    cov = covariance_matrix(design, "auc", "unbiased")
    flat = ratings.reshape(4, 9)
    for a, b in itertools.product(range(4), repeat=2):
        assert cov[a, b] == pytest.approx(brute_unbiased(flat[a], flat[b], truth), abs=1e-12)


def brute_jackknife(design: Design) -> np.ndarray:
    """Leave each case out, recompute every figure of merit on what is left, then the
    jackknife covariance (c - 1) / c * sum of products of deviations."""
    t, r, c = design.ratings.shape
    pseudo = np.empty((t * r, c))
    for k in range(c):
        keep = np.arange(c) != k
        for a, (i, j) in enumerate(itertools.product(range(t), range(r))):
            ratings, truth = design.ratings[i, j, keep], design.truth[keep]
            read = ~np.isnan(ratings)
            pseudo[a, k] = auc_delong(ratings[read & (truth == 1)],
                                      ratings[read & (truth == 0)]).value  # fmt: skip
    centred = pseudo - pseudo.mean(1, keepdims=True)
    return (c - 1) / c * centred @ centred.T


def split_plot(seed: int = 0) -> Design:
    """Two modalities, four readers; readers 1-2 read cases 0-13, readers 3-4 cases 8-21."""
    rng = np.random.default_rng(seed)
    truth = np.tile([0, 1], 11)
    ratings = rng.normal(size=(2, 4, 22)) + truth * 1.2
    ratings[:, :2, 14:] = np.nan
    ratings[:, 2:, :8] = np.nan
    return Design(ratings, truth, ("m1", "m2"), ("r1", "r2", "r3", "r4"),
                  tuple(f"c{k}" for k in range(22)))  # fmt: skip


def test_readers_reading_different_cases_use_the_cases_they_read():
    design = split_plot()
    np.testing.assert_allclose(covariance_matrix(design, "auc", "jackknife"),
                               brute_jackknife(design), atol=1e-14)  # fmt: skip
    cov = covariance_matrix(design, "auc", "delong")
    assert cov[0, 2] != 0  # readers 1 and 3 share cases 8-13
    blocks = split_plot()
    blocks.ratings[:, :2, 8:] = np.nan  # now no case in common
    blocks.ratings[:, 2:, :14] = np.nan
    for method in ("jackknife", "delong", "unbiased"):
        cov = covariance_matrix(blocks, "auc", method)
        assert cov[0, 2] == pytest.approx(0.0, abs=1e-15) and cov[0, 0] > 0, method
    result = analyse(design, "auc", "jackknife")
    assert np.isfinite([result.f, result.df2, result.p]).all()
    own = result.foms[0, 0]
    read = ~np.isnan(design.ratings[0, 0])
    truth = design.truth[read]
    assert own == auc_delong(design.ratings[0, 0, read][truth == 1],
                             design.ratings[0, 0, read][truth == 0]).value  # fmt: skip


def test_sensitivity_and_specificity_of_binary_calls(vandyke):
    calls = (vandyke.ratings >= 3).astype(float)
    binary = Design(calls, vandyke.truth, vandyke.modalities, vandyke.readers, vandyke.cases)
    sens = analyse(binary, "sensitivity")
    spec = analyse(binary, "specificity")
    positive, negative = vandyke.truth == 1, vandyke.truth == 0
    np.testing.assert_allclose(sens.foms, calls[:, :, positive].mean(2))
    np.testing.assert_allclose(spec.foms, 1 - calls[:, :, negative].mean(2))
    # leaving positive k out moves a sensitivity by (mean - x_k) / (m - 1) and a negative
    # case not at all, so its jackknife variance is (c - 1) / c * s^2 / (m - 1)
    cov = covariance_matrix(binary, "sensitivity", "jackknife")
    x = calls[0, 0, positive]
    m, c = len(x), len(vandyke.cases)
    assert cov[0, 0] == pytest.approx((c - 1) / c * x.var(ddof=1) / (m - 1))
    delong = covariance_matrix(binary, "sensitivity", "delong")
    assert delong[0, 0] == pytest.approx(x.var(ddof=1) / m)
    with pytest.raises(MrmcError, match="needs calls of 0 or 1"):
        analyse(vandyke, "sensitivity")
    with pytest.raises(MrmcError, match="AUC only"):
        analyse(binary, "sensitivity", "unbiased")


def test_bad_designs_are_refused_with_what_is_wrong(vandyke):
    rows = read_rows(VANDYKE)
    with pytest.raises(MrmcError, match="case '3' has truth 0 and 1"):
        Design.from_rows([*rows, ("9", "1", "3", 1, 2.0)])
    with pytest.raises(MrmcError, match="reader '1' rated case '3' twice in '1'"):
        Design.from_rows([*rows, ("1", "1", "3", 0, 2.0)])
    one = [r for r in rows if r[0] == "1"]
    with pytest.raises(MrmcError, match="at least two readers, got 1"):
        analyse(Design.from_rows(one))
    healthy = [r for r in rows if r[3] == 0]
    needs = "reader '1' in modality '1': the AUC needs two positive and two negative cases read"
    with pytest.raises(MrmcError, match=f"{needs}, got 0"):
        analyse(Design.from_rows(healthy))
    with pytest.raises(MrmcError, match="unknown metric 'kappa'"):
        analyse(vandyke, "kappa")
    with pytest.raises(MrmcError, match="unknown covariance method 'bootstrap'"):
        analyse(vandyke, "auc", "bootstrap")


def test_degenerate_designs_claim_no_certainty(vandyke):
    """Identical modalities: nothing to test, not p = 0. Every reader perfect, or scoring every
    tile alike: no variance, so no interval and no equivalence verdict. One positive case: no
    leave-one-out variance, so refused."""
    twins = Design(np.stack([vandyke.ratings[0]] * 2), vandyke.truth, ("a", "b"),
                   vandyke.readers, vandyke.cases)  # fmt: skip
    same = analyse(twins)
    assert np.isnan(same.f) and np.isnan(same.p) and np.isnan(same.differences[0].p)
    perfect = np.where(vandyke.truth == 1, 5.0, 1.0)
    flat = Design(np.broadcast_to(perfect, (1, 5, 114)).copy(), vandyke.truth, ("m",),
                  vandyke.readers, vandyke.cases)  # fmt: skip
    (auc,) = analyse(flat).modalities
    assert auc.estimate == 1.0 and np.isnan(auc.se) and np.isnan(auc.ci_low)
    with pytest.raises(MrmcError, match="no variance across readers and cases"):
        equivalence(auc)
    alike = Design(np.full((1, 5, 114), 3.0), vandyke.truth, ("m",), vandyke.readers,
                   vandyke.cases)  # fmt: skip
    assert analyse(alike).modalities[0].estimate == 0.5
    with pytest.raises(MrmcError, match="no variance"):
        equivalence(analyse(alike).modalities[0])
    one = vandyke.ratings.copy()
    one[:, 0, np.flatnonzero(vandyke.truth == 1)[1:]] = np.nan  # reader 1 read one positive
    lonely = Design(one, vandyke.truth, vandyke.modalities, vandyke.readers, vandyke.cases)
    with pytest.raises(MrmcError, match=r"reader '1' in modality '1'.*got 1 and 69"):
        analyse(lonely)


def test_intervals_stay_inside_what_the_figure_can_be(vandyke):
    near = vandyke.ratings.copy()
    near[:, 1:] = np.where(vandyke.truth == 1, 5.0, 1.0)  # four perfect readers, one not
    result = analyse(Design(near, vandyke.truth, vandyke.modalities, vandyke.readers,
                            vandyke.cases))  # fmt: skip
    assert all(m.ci_high <= 1.0 for m in result.modalities)
    assert result.modalities[0].ci_high == 1.0  # estimate + t SE would pass 1


def test_one_modality_gives_the_reader_average_and_no_test(vandyke):
    only = Design(vandyke.ratings[:1], vandyke.truth, ("1",), vandyke.readers, vandyke.cases)
    result = analyse(only)
    both = analyse(vandyke)
    assert result.modalities[0] == both.modalities[0]
    assert result.f is None and result.differences == [] and result.components.var_tr is None
    data = result.as_dict()
    assert "difference" not in data and data["modalities"][0]["ci_low"] == pytest.approx(
        0.82522360, abs=5e-9)  # fmt: skip
    two = both.as_dict()["difference"]
    assert (round(two["f"], 2), round(two["df2"], 2), round(two["p"], 4)) == (4.46, 15.26, 0.0517)


def test_equivalence_is_two_one_sided_tests():
    inside = Estimate("auc", 0.52, 0.03, 20.0, 0.0, 0.0)
    result = equivalence(inside, null=0.5, margin=0.10, alpha=0.05)
    q = stats.t.ppf(0.95, 20)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.52 - q * 0.03, 0.52 + q * 0.03))
    upper = stats.t.cdf((0.52 - 0.60) / 0.03, 20)
    lower = stats.t.sf((0.52 - 0.40) / 0.03, 20)
    assert result.p == pytest.approx(max(upper, lower)) and result.equivalent
    wide = equivalence(Estimate("auc", 0.52, 0.06, 20.0, 0.0, 0.0))
    assert not wide.equivalent and wide.ci_high > 0.6  # the 90% interval leaves the margin
    assert wide.equivalent == (wide.p < 0.05)
    with pytest.raises(MrmcError, match="margin must be positive"):
        equivalence(inside, margin=0)


# --- manage.py mrmc ---------------------------------------------------------------------------


def run_mrmc(*args: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("mrmc", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_analysis_and_its_json():
    import json

    text = run_mrmc("--csv", str(VANDYKE))
    assert "F(1, 15.26) = 4.46, p = 0.0517" in text
    assert "1 - 2: -0.0438 (SE 0.0207, 95% CI -0.0880 to +0.0004" in text
    data = json.loads(run_mrmc("--csv", str(VANDYKE), "--json", "--cov", "delong"))
    assert [round(m["auc"], 8) for m in data["modalities"]] == [0.89703704, 0.94083736]
    assert set(data["modalities"][0]) >= {"auc", "se", "df", "ci_low", "ci_high"}
    assert set(data["difference"]) >= {"estimate", "se", "ci_low", "ci_high", "f", "df2", "p"}
    assert set(data["components"]) >= {"var_r", "var_tr", "cov1", "cov2", "cov3", "var_e"}
    assert data["covariance"] == "delong"


HEADER = "reader,modality,case,truth,rating\n"
BAD_FILES = [
    ("reader,case,truth,rating\n1,1,0,3\n", r"row 1: missing column\(s\) modality"),
    (HEADER + "1,A,1,2,3\n", r"row 2, column truth: expected 0 or 1, got '2'"),
    (HEADER + "1,A,1,0,3\n1,A,2,1,high\n", r"row 3, column rating: expected a number, got 'high'"),
    (HEADER + "1,A,1,0,3\n2,A,1,1,4\n", r"row 3, column truth: case '1' has truth 1 here but 0"),
    (HEADER + "1,A,1,0,3\n2,A,1,0,\n", r"reader\(s\) '2' read nothing"),
    (HEADER + "1,A,1,0,3\n,A,2,1,4\n", r"row 3, column reader: empty"),
    (HEADER + "1,A,1,0,3\n1,A,1,0,4\n", r"row 3: reader '1' read case '1'"),
    (HEADER + "1,A,1,0,nan\n", r"row 2, column rating: expected a finite"),
    ("reader,modality,case,truth,rating,rating\n1,A,1,0,3,\n", r"row 1: column\(s\) rating appear"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_is_refused_naming_the_row_and_column(tmp_path, text, message):
    from django.core.management import CommandError

    path = tmp_path / "study.csv"
    path.write_text(text)
    with pytest.raises(CommandError, match=message) as caught:
        run_mrmc("--csv", str(path))
    assert str(path) in str(caught.value)


def test_a_bad_file_exits_with_status_1(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "study.csv"
    path.write_text("reader,modality,case,truth,rating\n1,A,1,yes,3\n")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "manage.py", "mrmc", "--csv", str(path)], cwd=root,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1
    assert "row 2, column truth: expected 0 or 1, got 'yes'" in done.stderr


# --- planning ---------------------------------------------------------------------------------


def test_hanley_mcneil_variance_at_chance_and_at_a_published_point():
    from histostudy.mrmc.planning import hanley_mcneil_variance

    # at AUC 0.5: (1/4 + (m - 1)/12 + (n - 1)/12) / (m n)
    assert hanley_mcneil_variance(0.5, 50, 50) == pytest.approx((0.25 + 98 / 12) / 2500)
    # Hanley & McNeil (1982), Table I data: AUC 0.893 with 51 abnormal, 58 normal; the paper
    # prints SE 0.032 from the ratings themselves, the exponential approximation gives 0.0325
    assert math.sqrt(hanley_mcneil_variance(0.893, 51, 58)) == pytest.approx(0.032, abs=1e-3)


def test_the_planned_standard_error_is_what_the_analysis_finds_on_average():
    from bench.mrmc_coverage import simulate
    from histostudy.mrmc.planning import Planning, equivalence_power

    rng = np.random.default_rng(8)
    readers, cases = 6, 80
    names = tuple(f"r{j}" for j in range(readers)), tuple(f"c{k}" for k in range(cases))
    truth = np.arange(cases) % 2
    results = []
    for _ in range(60):
        ratings = simulate(rng, readers, cases, 0.0, 0.02, 0.5, 0.5)[0]
        results.append(analyse(Design(ratings[None], truth, ("m",), *names)))
    c = [r.components for r in results]
    planning = Planning(np.mean([x.var_r for x in c]), np.mean([x.var_e for x in c]),
                        np.mean([x.cov2 for x in c]), cases, "simulated")  # fmt: skip
    mean_se = float(np.mean([r.modalities[0].se for r in results]))
    assert equivalence_power(planning, readers, cases).se == pytest.approx(mean_se, rel=0.05)
    # the same components planned at twice the cases: Var and Cov2 halve
    twice = planning.at(2 * cases)
    assert twice == pytest.approx((planning.var_e / 2, planning.cov2 / 2))


def test_power_grows_with_readers_and_cases_and_the_smallest_study_reaches_it():
    from histostudy.mrmc.planning import DEFAULT, equivalence_power, smallest_study

    small, more_cases, more_readers = (equivalence_power(DEFAULT, j, k).power
                                       for j, k in ((5, 100), (5, 300), (10, 100)))  # fmt: skip
    assert small < more_cases and small < more_readers
    wider = equivalence_power(DEFAULT, 5, 100, margin=0.2).power
    assert wider > 0.99 and equivalence_power(DEFAULT, 5, 100, true=0.58).power < small
    for study in smallest_study(DEFAULT, power=0.8):
        assert study.power >= 0.8
        assert equivalence_power(DEFAULT, study.readers, study.cases - 10).power < 0.8
    with pytest.raises(MrmcError, match="at least two readers"):
        equivalence_power(DEFAULT, 1, 100)


def test_header_names_may_carry_spaces(tmp_path):
    text = VANDYKE.read_text().replace("reader,modality,case,truth,rating",
                                       "reader, modality, case , truth,rating")  # fmt: skip
    path = tmp_path / "spaced.csv"
    path.write_text(text)
    assert "F(1, 15.26) = 4.46, p = 0.0517" in run_mrmc("--csv", str(path))
