"""Paired statistics of the mislabel study: the analysis of the paired design (``mislabel.design: paired``).

In the paired design replicate r of every pair, and of the baseline, starts from the same
initial weights and sees the training images in the same order; only its labels differ
(:func:`nnprobe.studies.mislabel.design.member_seeds`). Target class T's accuracy in the network
of pair p and replicate r is then modelled as

    y_{p,r} = mu_p + u_r + e_{p,r}

where ``mu_p`` is what mislabelling p does to T, ``u_r`` what replicate r's shared
initialisation and data order do to T (the same for every pair of the replicate) and ``e_{p,r}``
the rest. For the groups X and Y of a comparison (:func:`~.statistics.group_masks`: confused,
clean, baseline), the within-replicate contrast

    d_r = mean_{p in X} y_{p,r} - mean_{p in Y} y_{p,r}

holds no ``u_r``: it cancels, as with common random numbers in simulation (Law & Kelton 2000,
Simulation Modeling and Analysis, 3rd ed., sec. 11.2). The d_r of R replicates are independent,
and a one-sample t-test of them (:func:`paired_t_test`) tests ``mean_{p in X} mu_p
- mean_{p in Y} mu_p = 0`` with a standard error free of the replicates' spread, which Welch's
t (:func:`~.statistics.welch_table`) counts as noise. A linear mixed model with the replicate
as a random effect (:func:`mixed_model_contrast`) cross-checks it. The Welch tables stay valid in
the paired design (they ignore the pairing, so they are conservative: the replicates' spread
only widens their intervals) and are made beside the paired ones.

The same groups, corrections (Benjamini & Hochberg 1995; Holm 1979) and shapes as the Welch and
information tables of :mod:`~.statistics`, so the same heatmaps draw them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st
from statsmodels.regression.mixed_linear_model import MixedLM

from ...core.checks import undefined_comparisons
from ...stats import benjamini_hochberg, check_distribution, holm, kl_bits, mean_interval
from .statistics import _check_columns, _check_comparison, _class_names, _classes, _prefixed, group_masks

__all__ = ["PAIRED_TEST", "paired_t_test", "check_paired_design", "replicate_contrasts", "mixed_model_contrast",
           "paired_table", "paired_information_table"]

#: The test of the paired tables (their ``test`` column, the heatmaps' labels).
PAIRED_TEST = "paired t"


def paired_t_test(differences) -> dict:
    """Paired t-test: the one-sample t-test of within-block differences ``d_1 .. d_n`` against 0, two-sided.

    Each ``d_r`` is one block's contrast (in the mislabel study, replicate r's mean over one group
    of networks minus its mean over the other; every network of a replicate shares its
    initialisation and data order). ``t = mean(d) / (s_d / sqrt(n))`` with ``s_d`` the sample
    standard deviation (ddof 1), ``df = n - 1``; the 95 % confidence interval is
    ``mean(d) +- t_{0.975, n-1} s_d / sqrt(n)``; ``dz = mean(d) / s_d`` is the standardised mean
    difference of paired data (Cohen's d_z; Cohen, J. (1988). Statistical Power Analysis for the
    Behavioral Sciences, 2nd ed.). Whatever the blocks share cancels from
    ``d_r``: this is the analysis of common random numbers (Law, A. M. & Kelton, W. D. (2000).
    Simulation Modeling and Analysis, 3rd ed., sec. 10.2 and 11.2: "paired-t" confidence
    intervals). Computed by ``scipy.stats.ttest_1samp``. Reference: Student (1908). The probable
    error of a mean. Biometrika 6, 1-25.

    It lives here, not in :mod:`nnprobe.stats`: most jobs of every study have that module among
    their code inputs, so a function added there would rerun them; only the paired jobs run this.

    Returns a dict with keys ``n, diff, sd_diff, t, df, p, ci_low, ci_high, dz``. With fewer than
    2 differences, or all of them equal (s_d = 0), the test is undefined: ``t, df, p, ci_low,
    ci_high, dz`` are NaN (``diff`` is still the mean where there is one).
    """
    d = np.asarray(differences, dtype=float).ravel()
    if np.isnan(d).any():
        raise ValueError("differences contain NaN; drop missing replicates before testing")
    n = d.size
    out = {
        "n": int(n),
        "diff": float(d.mean()) if n else float("nan"),
        "sd_diff": float(d.std(ddof=1)) if n > 1 else float("nan"),
        "t": float("nan"),
        "df": float("nan"),
        "p": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "dz": float("nan"),
    }
    if n < 2 or not out["sd_diff"] > 0:
        return out
    res = _st.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(0.95)
    out.update(t=float(res.statistic), df=float(res.df), p=float(res.pvalue), ci_low=float(ci.low),
               ci_high=float(ci.high), dz=out["diff"] / out["sd_diff"])
    return out


def check_paired_design(table: pd.DataFrame) -> None:
    """Refuse networks of the independent design: their replicate r of two pairs share nothing,
    so a within-replicate contrast pairs nothing. A table without a ``design`` column is trusted."""
    if "design" in table.columns:
        designs = sorted(table["design"].astype(str).unique())
        if designs != ["paired"]:
            raise ValueError(f"the paired analysis needs networks of the paired design (config key mislabel.design: "
                             f"paired); the per-model table holds networks of the design(s) {designs}")


def replicate_contrasts(x: pd.DataFrame, y: pd.DataFrame, value: str) -> pd.DataFrame:
    """The within-replicate contrasts of column ``value`` between the networks ``x`` and ``y``.

    ``x`` and ``y`` hold one row per network (columns ``replicate`` and ``value``). For every
    replicate r with networks in both: ``n_x``, ``n_y`` (its networks in each group), ``mean_x``,
    ``mean_y`` (their means) and ``contrast = d_r = mean_x - mean_y``; indexed by replicate,
    ascending. A replicate with networks in one group only has no contrast and is left out.
    """
    groups = []
    for rows in (x, y):
        replicates, inverse = np.unique(rows["replicate"].to_numpy(), return_inverse=True)
        counts = np.bincount(inverse, minlength=len(replicates))
        sums = np.bincount(inverse, weights=rows[value].to_numpy(float), minlength=len(replicates))
        groups.append((replicates, counts, sums / np.maximum(counts, 1)))
    (rx, nx, mx), (ry, ny, my) = groups
    common, ix, iy = np.intersect1d(rx, ry, return_indices=True)
    return pd.DataFrame({"n_x": nx[ix], "n_y": ny[iy], "mean_x": mx[ix], "mean_y": my[iy],
                         "contrast": mx[ix] - my[iy]}, index=pd.Index(common, name="replicate"))


_MIXED_KEYS = ("mixed_estimate", "mixed_se", "mixed_t", "mixed_df", "mixed_p", "mixed_ci_low", "mixed_ci_high",
               "mixed_replicate_sd", "mixed_residual_sd")


def mixed_model_contrast(values: Sequence[float], pairs: Sequence[str], replicates: Sequence[int],
                         in_x: Sequence[bool]) -> dict:
    """The paired contrast estimated by a linear mixed model with the replicate as a random effect.

    Model: ``y_i = mu_{pair(i)} + u_{replicate(i)} + e_i`` with one fixed effect per pair (no
    intercept), ``u_r ~ N(0, tau^2)`` and ``e_i ~ N(0, sigma^2)`` independent, fit by REML
    (``statsmodels`` MixedLM; Laird, N. M. & Ware, J. H. (1982). Random-effects models for
    longitudinal data. Biometrics 38, 963-974; Lindstrom, M. J. & Bates, D. M. (1988). Newton-
    Raphson and EM algorithms for linear mixed-effects models. JASA 83, 1014-1022). The contrast
    ``L mu = mean_{p in X} mu_p - mean_{p in Y} mu_p`` (X: the pairs of the networks with
    ``in_x``; Y: the others) is the paired t's estimand: its estimate ``L mu_hat``, standard error
    ``se = sqrt(L Cov(mu_hat) L^T)`` and ``t = estimate / se``, referred to Student's t with the
    residual degrees of freedom of the two-way layout, ``df = N - P - R + 1`` (N networks, P
    pairs, R replicates), for the two-sided p and the 95 % interval ``estimate +- t_{0.975, df}
    se``. With every pair in every replicate this is the analysis of a randomised complete block
    design (blocks: replicates; Montgomery, D. C. Design and Analysis of Experiments, ch. 4):
    the estimate is exactly the paired t's mean contrast, ``se^2 = s^2 sum(L^2) / R`` with ``s^2``
    the residual mean square of the two-way (pair + replicate) analysis of variance (when the
    REML ``tau^2 > 0``), and ``df = (P - 1)(R - 1)``. Unlike the paired t it assumes one residual
    variance for every pair, which buys it more degrees of freedom: a cross-check, not the test.
    ``y`` is standardised before the fit (conditioning) and the results are scaled back;
    ``mixed_replicate_sd`` and ``mixed_residual_sd`` are the fitted tau and sigma.

    Returns the keys of ``_MIXED_KEYS`` and ``mixed_note``: why the values are NaN, or what the
    fit warned about (an estimate of tau on the boundary 0, a failed convergence), else "".
    """
    y = np.asarray(values, dtype=float)
    pairs, groups = np.asarray(pairs).astype(str), np.asarray(replicates)
    in_x = np.asarray(in_x, dtype=bool)
    out: dict = {key: float("nan") for key in _MIXED_KEYS}
    levels = sorted(set(pairs))
    x_levels = sorted(set(pairs[in_x]))
    y_levels = sorted(set(pairs[~in_x]))
    if set(x_levels) & set(y_levels):
        raise ValueError(f"pairs {sorted(set(x_levels) & set(y_levels))} are in both groups of the contrast")
    scale = float(y.std()) if y.size else 0.0
    if not x_levels or not y_levels:
        return {**out, "mixed_note": "a group has no networks"}
    if len(np.unique(groups)) < 2:
        return {**out, "mixed_note": "a replicate variance needs 2 or more replicates"}
    if not scale > 0:
        return {**out, "mixed_note": "no variance: every network has the same value"}
    index = {p: j for j, p in enumerate(levels)}
    exog = np.zeros((y.size, len(levels)))
    exog[np.arange(y.size), [index[p] for p in pairs]] = 1.0
    contrast = np.array([(p in x_levels) / len(x_levels) - (p in y_levels) / len(y_levels) for p in levels])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = MixedLM((y - y.mean()) / scale, exog, groups=groups).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as error:
            return {**out, "mixed_note": f"the fit failed: {error}"}
    estimate = float(contrast @ np.asarray(fit.fe_params)) * scale
    se = float(np.sqrt(contrast @ np.asarray(fit.cov_params())[: len(levels), : len(levels)] @ contrast)) * scale
    t = estimate / se if se > 0 else float("nan")
    df = float(y.size - len(levels) - len(np.unique(groups)) + 1)
    defined = np.isfinite(t) and df > 0
    half = float(_st.t.ppf(0.975, df)) * se if defined else float("nan")
    out.update(mixed_estimate=estimate, mixed_se=se, mixed_t=t, mixed_df=df,
               mixed_p=float(2 * _st.t.sf(abs(t), df)) if defined else float("nan"),
               mixed_ci_low=estimate - half, mixed_ci_high=estimate + half,
               mixed_replicate_sd=float(np.sqrt(max(float(np.asarray(fit.cov_re).ravel()[0]), 0.0))) * scale,
               mixed_residual_sd=float(np.sqrt(fit.scale)) * scale)
    messages = sorted({str(w.message).split("\n")[0] for w in caught
                       if "boundary" in str(w.message) or "converge" in str(w.message)})
    return {**out, "mixed_note": "; ".join(messages)}


def _note(comparison: str, num_classes: int, n_replicates: int, n_x: int, n_y: int, t: float) -> str:
    """Why a paired test is undefined ("" when it is not)."""
    gx, gy = _check_comparison(comparison)
    if min(n_x, n_y) == 0 and comparison in undefined_comparisons(num_classes):
        return undefined_comparisons(num_classes)[comparison]
    if n_replicates < 2:
        return (f"{n_replicates} replicate(s) hold networks of both {gx} and {gy}: a paired test needs 2 or "
                "more")
    if not np.isfinite(t):
        return "no variance: the within-replicate contrasts are all equal"
    return ""


def _groups(table: pd.DataFrame, comparison: str, columns: Sequence[str], what: str):
    """(classes, names, [(T, C, X rows, Y rows)]) of every ordered pair of classes."""
    gx, gy = _check_comparison(comparison)
    _check_columns(table, ["class", "pair", "pair_a", "pair_b", "replicate", *columns], what)
    check_paired_design(table)
    classes = _classes(table)
    cells = []
    for t in classes:
        rows = table[table["class"] == t]
        for c in classes:
            if c != t:
                masks = group_masks(table, t, c)
                cells.append((t, c, rows[masks[gx]], rows[masks[gy]]))
    return classes, _class_names(table, classes), cells


def _adjust(out: pd.DataFrame, p: str, prefix: str = "") -> None:
    out[f"{prefix}q_bh"] = benjamini_hochberg(out[p].to_numpy(float))
    out[f"{prefix}p_holm"] = holm(out[p].to_numpy(float))


def _alpha(fdr_alpha: float) -> float:
    if not 0.0 < fdr_alpha < 1.0:
        raise ValueError(f"config key mislabel.fdr_alpha must be in (0, 1), got {fdr_alpha}")
    return fdr_alpha


def paired_table(table: pd.DataFrame, comparison: str = "confused_vs_clean", metric: str = "accuracy",
                 fdr_alpha: float = 0.05, mixed_model: bool = True) -> pd.DataFrame:
    """Paired t-tests of target class T's ``metric`` between two groups of networks, for every (T, C).

    One row per ordered pair (T, C), T != C, with the groups X and Y of
    :func:`~.statistics.welch_table`. Per replicate r with networks in both groups, ``d_r`` is
    the mean of T's ``metric`` over r's networks in X minus that over r's networks in Y
    (:func:`replicate_contrasts`); the row holds :func:`paired_t_test` of the
    ``d_r`` (``test`` = "paired t"): ``n_replicates``, the networks used (``n_x``, ``n_y``),
    ``mean_x`` and ``mean_y`` (means over replicates of the group means), ``diff`` (the mean
    contrast), ``sd_diff``, its standard error ``se = sd_diff / sqrt(n_replicates)`` and 95 %
    interval, ``t``, ``df = n_replicates - 1``, ``p``, ``dz``;
    ``q_bh`` (Benjamini-Hochberg) and ``p_holm`` (Holm) adjust over the K(K-1) tests;
    ``significant`` is ``q_bh < fdr_alpha``. With ``mixed_model``, the ``mixed_*`` columns hold
    :func:`mixed_model_contrast` on the same networks, with its own BH and Holm adjustments.
    ``note`` says why a test is undefined (NaN, not counted in the adjustments).
    """
    _alpha(fdr_alpha)  # before the work
    classes, names, cells = _groups(table, comparison, [metric], "paired_table")
    rows = []
    for t, c, x, y in cells:
        per = replicate_contrasts(x, y, metric)
        res = paired_t_test(per["contrast"].to_numpy(float))
        row = {"target": t, "other": c, "target_name": names[t], "other_name": names[c], "comparison": comparison,
               "test": PAIRED_TEST, "n_replicates": res["n"], "n_x": int(per["n_x"].sum()),
               "n_y": int(per["n_y"].sum()), "mean_x": float(per["mean_x"].mean()) if len(per) else np.nan,
               "mean_y": float(per["mean_y"].mean()) if len(per) else np.nan,
               **{k: res[k] for k in ("diff", "sd_diff", "ci_low", "ci_high", "t", "df", "p", "dz")},
               "se": res["sd_diff"] / np.sqrt(res["n"]) if res["n"] > 1 else np.nan}
        if mixed_model:
            used = pd.concat([x.assign(_x=True), y.assign(_x=False)])
            used = used[used["replicate"].isin(per.index)]
            row.update(mixed_model_contrast(used[metric].to_numpy(float), used["pair"], used["replicate"],
                                            used["_x"]))
        row["note"] = _note(comparison, len(classes), res["n"], len(x), len(y), row["t"])
        rows.append(row)
    out = pd.DataFrame(rows)
    _adjust(out, "p")
    out["significant"] = (out["q_bh"] < _alpha(fdr_alpha)).to_numpy(bool)
    if mixed_model:
        _adjust(out, "mixed_p", "mixed_")
    first = ["target", "other", "target_name", "other_name", "comparison", "test", "n_replicates", "n_x", "n_y",
             "mean_x", "mean_y", "diff", "sd_diff", "se", "ci_low", "ci_high", "t", "df", "p", "dz", "q_bh",
             "p_holm", "significant"]
    mixed = [*_MIXED_KEYS[:7], "mixed_q_bh", "mixed_p_holm", *_MIXED_KEYS[7:], "mixed_note"] if mixed_model else []
    return out[first + mixed + ["note"]]


def _replicate_sums(rows: pd.DataFrame, replicates: pd.Index, *columns: Sequence[str]) -> list[np.ndarray]:
    """For each list of ``columns``, the sums of ``rows``' values over the networks of each of
    ``replicates`` (which all hold some of ``rows``), as ``(len(replicates), len(columns))`` arrays."""
    known, found = replicates.to_numpy(), rows["replicate"].to_numpy()
    index = np.searchsorted(known, found)
    keep = np.isin(found, known)
    out = []
    for names in columns:
        sums = np.zeros((len(replicates), len(names)))
        np.add.at(sums, index[keep], rows[list(names)].to_numpy(float)[keep])
        out.append(sums)
    return out


def paired_information_table(table: pd.DataFrame, comparison: str = "confused_vs_clean",
                             fdr_alpha: float = 0.05) -> pd.DataFrame:
    """Information about target class T gained or lost between two groups, in bits, replicate by replicate.

    For every ordered pair (T, C), T != C, with the groups X and Y of
    :func:`~.statistics.information_table`, and every replicate r with networks in both:

    * ``delta_r = L_X(r) - L_Y(r)``, ``L_G(r)`` the mean over r's networks in G of T's
      ``logloss_bits``; ``logloss_x``, ``logloss_y`` are the means of ``L_X(r)``, ``L_Y(r)``
      over replicates and ``delta_logloss_bits`` that of ``delta_r``, tested by the paired t
      (:func:`paired_t_test`: ``t``, ``df``, ``p``, ``delta_ci_low``,
      ``delta_ci_high``; ``q_bh``, ``p_holm`` over the K(K-1) tests; ``significant`` is
      ``q_bh < fdr_alpha``);
    * ``kl_r = KL(P_X(r) || P_Y(r))`` in bits, ``P_G(r)`` the mean over r's networks in G of T's
      ``prob_*`` row (mean softmax): the divergence within one replicate, whose networks share
      their initialisation and data order. ``kl_bits`` is its mean over replicates, with a
      Student-t 95 % interval (``kl_ci_low``, ``kl_ci_high``; :func:`nnprobe.stats.mean_interval`).
      A divergence is never negative, so its interval describes its size and no test is made;
    * ``kl_counts_bits``: the mean over replicates of the same divergence between pooled hard
      predictions with add-one smoothing, ``P_G(r)(k) = (N_G(r)(k) + 1) / (sum_j N_G(r)(j) + K)``.

    ``test`` is "paired t"; ``note`` says why a row is undefined.
    """
    _alpha(fdr_alpha)  # before the work
    probs, preds = _prefixed(table, "prob_"), _prefixed(table, "pred_")
    if not probs or len(probs) != len(preds):
        raise ValueError("paired_information_table needs prob_0..prob_{K-1} and pred_0..pred_{K-1} columns; "
                         f"got {list(table.columns)}")
    classes, names, cells = _groups(table, comparison, ["logloss_bits", *probs, *preds], "paired_information_table")
    gx, gy = _check_comparison(comparison)
    rows = []
    for t, c, x, y in cells:
        per = replicate_contrasts(x, y, "logloss_bits")
        res = paired_t_test(per["contrast"].to_numpy(float))
        (px, cx), (py, cy) = (_replicate_sums(g, per.index, probs, preds) for g in (x, y))
        kl, kl_counts = [], []
        for i, r in enumerate(per.index):
            kl.append(kl_bits(check_distribution(px[i] / per["n_x"].iloc[i], f"mean prob_* of T={t} in {gx}, r={r}"),
                              check_distribution(py[i] / per["n_y"].iloc[i], f"mean prob_* of T={t} in {gy}, r={r}")))
            kl_counts.append(kl_bits((cx[i] + 1.0) / (cx[i] + 1.0).sum(), (cy[i] + 1.0) / (cy[i] + 1.0).sum()))
        if kl and np.isfinite(kl).all():
            kl_mean, kl_low, kl_high = mean_interval(kl)
        else:  # no replicate, or an infinite divergence (P_Y(r) is 0 where P_X(r) is not)
            kl_mean, kl_low, kl_high = (float(np.mean(kl)) if kl else np.nan), np.nan, np.nan
        rows.append({"target": t, "other": c, "target_name": names[t], "other_name": names[c],
                     "comparison": comparison, "test": PAIRED_TEST, "n_replicates": res["n"],
                     "n_x": int(per["n_x"].sum()), "n_y": int(per["n_y"].sum()),
                     "logloss_x": float(per["mean_x"].mean()) if len(per) else np.nan,
                     "logloss_y": float(per["mean_y"].mean()) if len(per) else np.nan,
                     "delta_logloss_bits": res["diff"], "delta_ci_low": res["ci_low"],
                     "delta_ci_high": res["ci_high"], "t": res["t"], "df": res["df"], "p": res["p"],
                     "kl_bits": kl_mean, "kl_ci_low": kl_low, "kl_ci_high": kl_high,
                     "kl_counts_bits": float(np.mean(kl_counts)) if kl_counts else np.nan,
                     "note": _note(comparison, len(classes), res["n"], len(x), len(y), res["t"])})
    out = pd.DataFrame(rows)
    _adjust(out, "p")
    out["significant"] = (out["q_bh"] < _alpha(fdr_alpha)).to_numpy(bool)
    first = ["target", "other", "target_name", "other_name", "comparison", "test", "n_replicates", "n_x", "n_y",
             "logloss_x", "logloss_y", "delta_logloss_bits", "delta_ci_low", "delta_ci_high", "t", "df", "p",
             "q_bh", "p_holm", "significant"]
    return out[first + ["kl_bits", "kl_ci_low", "kl_ci_high", "kl_counts_bits", "note"]]
