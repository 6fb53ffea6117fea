"""The window-MMD baseline (arXiv 2606.05725) on simulated traffic: fit on one seed, test on another.

Fits :class:`~distillwatch.detectors.mmd.MMDDetector` on the legitimate accounts of a training
simulation, scores a sample of accounts of a held-out simulation, and prints ROC-AUC, the exact
TPR at 1 % FPR (the same code as ``distillwatch eval``), the per-persona flag rate at ``alpha``,
wall time and embedding throughput. Writes the per-account results to ``--out`` and the truth of
the same accounts beside it (``<out>.labels.parquet``), so that distillwatch's own verdicts can be
compared on the same accounts:

    distillwatch eval --truth OUT.labels.parquet --verdicts OUT.parquet

MiniLM needs the ``baseline`` extra and encodes ~30-40 prompts/s on 2 cores; the defaults embed
~15k distinct prompts (about 8 minutes). ``--embedder hashing`` runs the same pipeline in seconds
on word-n-gram hashing vectors (a smoke test, not the paper's method).

.venv/bin/python bench/bench_mmd_baseline.py --out /tmp/mmd.parquet [--eval-accounts 600]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from distillwatch.detectors.mmd import Embedder, MMDDetector, cached, minilm_embedder
from distillwatch.eval.metrics import evaluate
from distillwatch.features import prompt_frame
from distillwatch.sim import Simulator, find_corpus_dir, load_corpora, load_scenario, shipped_fit


class Counting:
    """Wraps an embedder to count the texts it is asked for and the seconds it spends."""

    def __init__(self, embed: Embedder) -> None:
        self.embed, self.texts, self.seconds = embed, 0, 0.0

    def __call__(self, texts: list[str]) -> npt.NDArray[Any]:
        t0 = time.perf_counter()
        out = self.embed(texts)
        self.seconds += time.perf_counter() - t0
        self.texts += len(texts)
        return out


def hashing_embedder() -> Embedder:
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(ngram_range=(1, 2), n_features=2**12, alternate_sign=False)
    return lambda texts: np.asarray(vec.transform(texts).toarray())


def simulate(seed: int, accounts: int, days: int, corpus: Path | None) -> tuple[pl.DataFrame, ...]:
    """(prompts per account as lists, labels) of one simulated population."""
    pools = load_corpora(corpus)
    res = Simulator(load_scenario(), pools, shipped_fit(), seed=seed).run(accounts, days)
    prompts = (
        prompt_frame(pl.DataFrame(res.calls).lazy())
        .sort("account_id", "ts")
        .group_by("account_id", maintain_order=True)
        .agg(pl.col("prompt"), pl.len().alias("n_calls"))
        .collect()
    )
    labels = pl.from_arrow(res.labels)
    assert isinstance(labels, pl.DataFrame)
    return prompts, labels


def sample(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most ``n`` rows, drawn under ``seed``, in account order."""
    if frame.height <= n:
        return frame
    return frame.sample(n, seed=seed).sort("account_id")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="per-account results (.parquet)")
    ap.add_argument("--train-seed", type=int, default=101)
    ap.add_argument("--eval-seed", type=int, default=201)
    ap.add_argument("--accounts", type=int, default=3000, help="accounts per simulation")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--train-accounts", type=int, default=800, help="legit accounts to fit on")
    ap.add_argument("--eval-accounts", type=int, default=600)
    ap.add_argument("--min-calls", type=int, default=8, help="eval accounts need this many")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--reference-size", type=int, default=1024)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0, help="detector and sampling seed")
    ap.add_argument("--embedder", choices=("minilm", "hashing"), default="minilm")
    ap.add_argument("--corpora", type=Path, default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()
    corpus = find_corpus_dir(args.corpora)

    t0 = time.perf_counter()
    train, train_labels = simulate(args.train_seed, args.accounts, args.days, corpus)
    test, test_labels = simulate(args.eval_seed, args.accounts, args.days, corpus)
    t_sim = time.perf_counter() - t0

    legit = train.join(train_labels.filter(pl.col("label") == "legit"), on="account_id")
    fit_on = sample(legit, args.train_accounts, args.seed)
    eligible = test.filter(pl.col("n_calls") >= args.min_calls)
    chosen = sample(eligible, args.eval_accounts, args.seed)
    truth = test_labels.join(chosen.select("account_id"), on="account_id", how="semi").sort(
        "account_id"
    )

    t0 = time.perf_counter()
    base = minilm_embedder() if args.embedder == "minilm" else hashing_embedder()
    t_load = time.perf_counter() - t0
    counter = Counting(base)
    det = MMDDetector(
        cached(counter),
        window=args.window,
        alpha=args.alpha,
        reference_size=args.reference_size,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    det.fit(dict(zip(fit_on["account_id"], fit_on["prompt"], strict=True)))
    t_fit = time.perf_counter() - t0
    fit_texts = counter.texts
    t0 = time.perf_counter()
    scores = det.score(dict(zip(chosen["account_id"], chosen["prompt"], strict=True)))
    t_score = time.perf_counter() - t0
    wall = time.perf_counter() - t_start

    args.out.parent.mkdir(parents=True, exist_ok=True)
    scores.select(
        "account_id", "mmd2", "p_value", "score", "z", "n_prompts", "flagged"
    ).write_parquet(args.out)
    labels_path = args.out.with_name(args.out.stem + ".labels.parquet")
    truth.select("account_id", "label", "persona", "campaign_id").write_parquet(labels_path)

    df = truth.join(scores, on="account_id")
    n_pos = int((df["label"] == "distill").sum())
    null_sizes = [det.null_[m].size for m in (min(det.null_), max(det.null_))]
    print(
        f"corpora: {corpus or 'bundled sample'}; embedder: {args.embedder}; "
        f"simulations: {args.accounts} accounts x {args.days} days, train seed "
        f"{args.train_seed}, eval seed {args.eval_seed} ({t_sim:.0f} s)"
    )
    print(
        f"fit: {fit_on.height} legit training accounts -> {len(det.reference_accounts_)} "
        f"reference ({det.reference_.shape[0] if det.reference_ is not None else 0} prompts), "
        f"{len(det.null_accounts_)} null; window {args.window}; null sizes {min(det.null_)}.."
        f"{max(det.null_)} with {null_sizes[0]}..{null_sizes[1]} windows; bandwidth "
        f"{det.bandwidth_:.4f}"
    )
    print(
        f"eval: {df.height} accounts with >= {args.min_calls} calls ({n_pos} distill, "
        f"{df.height - n_pos} legit) of {eligible.height} eligible"
    )
    for name in ("score", "z"):
        r = evaluate(truth, scores.select("account_id", pl.col(name).alias("score")), (0.01,))
        op = r.operating_points[0]
        print(
            f"rank by {name:<5}: ROC-AUC {r.roc_auc:.4f}  PR-AUC {r.average_precision:.4f}  TPR@1%FPR "
            f"{op.tpr:.4f} (FPR {op.fpr:.4f}, {op.true_positives} TP / {op.false_positives} FP)"
        )
    flag = (
        df.group_by("label", "persona")
        .agg(pl.len().alias("accounts"), pl.col("flagged").mean().alias("flag_rate"))
        .sort("label", "persona")
    )
    print(f"flag rate at alpha={args.alpha} (mmd2 above the benign null's 1-alpha quantile):")
    for label, persona, n, rate in flag.iter_rows():
        print(f"  {label:<8} {persona:<24} {n:>5}  {rate:7.3f}")
    by_label = df.group_by("label").agg(pl.col("flagged").mean()).sort("label")
    print("  overall  " + "  ".join(f"{lab}: {rate:.3f}" for lab, rate in by_label.iter_rows()))
    enc = counter.seconds
    print(
        f"time: wall {wall:.0f} s (simulate {t_sim:.0f}, load model {t_load:.0f}, fit "
        f"{t_fit:.0f}, score {t_score:.0f}); embedded {counter.texts} distinct prompts "
        f"({fit_texts} in fit) in {enc:.0f} s = {counter.texts / max(enc, 1e-9):.1f} prompts/s"
    )
    print(f"wrote {args.out} and {labels_path}")


if __name__ == "__main__":
    main()
