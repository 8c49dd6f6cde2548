"""Dataset quality at scale: exact and near-duplicate removal (MinHash LSH) and simple quality filters.

    python -m ch5.dedup                          # a synthetic corpus with planted duplicates, 2,000 documents
    python -m ch5.dedup --docs 20000 --json -    # bigger, JSON on stdout (or --json FILE)
    python -m ch5.dedup --all-pairs              # also the exact O(n^2) Jaccard search, for its recall and its cost

The corpus is generated here: documents of Zipf-distributed words, into which exact copies (changed
only in case and whitespace), near copies (a few percent of words replaced, inserted or deleted) and
low-quality documents (too short, repetitive, mostly symbols) are planted; the plan is the ground
truth. The pipeline:

1. quality filters (Gopher-style rules: word count, share of alphabetic words, repeated lines and words);
2. exact dedup: SHA-1 of the normalized text (case and whitespace folded);
3. near dedup: MinHash signatures of word 3-shingles (`datasketch`, 128 permutations) indexed by LSH
   (bands of rows chosen by datasketch for the Jaccard threshold), candidate pairs confirmed by their
   estimated Jaccard, clusters by union-find, the first document of each cluster kept.

Reported: precision and recall of the removals against the planted truth (per stage), and documents/s
per stage. LSH finds candidate pairs in ~linear time where the all-pairs search grows as n^2.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from harness.report import emit

SHINGLE = 3
NUM_PERM = 128


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"dedup: {message}", file=sys.stderr)
        sys.exit(2)


@dataclass
class Corpus:
    docs: list[str]
    exact_of: dict[int, int] = field(default_factory=dict)   # planted exact copy -> its original
    near_of: dict[int, int] = field(default_factory=dict)    # planted near copy -> its original
    low_quality: set[int] = field(default_factory=set)


def make_corpus(n: int, seed: int = 0, exact: float = 0.08, near: float = 0.08, junk: float = 0.05,
                edit_rate: float = 0.03) -> Corpus:
    """n documents; the given fractions are planted exact copies, near copies and low-quality documents."""
    rng = np.random.default_rng(seed)
    vocab = [f"{''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), size=rng.integers(2, 9)))}" for _ in range(20000)]
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1) ** 1.05)
    cdf /= cdf[-1]

    def words(k):   # Zipf-distributed, as word frequencies in text are
        return [vocab[i] for i in np.searchsorted(cdf, rng.random(k))]

    def text(ws):   # sentences of 8-20 words, one per line
        lines, i = [], 0
        while i < len(ws):
            step = int(rng.integers(8, 21))
            lines.append(" ".join(ws[i:i + step]).capitalize() + ".")
            i += step
        return "\n".join(lines)

    n_exact, n_near, n_junk = int(n * exact), int(n * near), int(n * junk)
    n_orig = n - n_exact - n_near - n_junk
    corpus = Corpus([text(words(int(rng.integers(60, 400)))) for _ in range(n_orig)])
    for _ in range(n_exact):
        src = int(rng.integers(0, n_orig))
        copy = corpus.docs[src].upper() if rng.random() < 0.5 else re.sub(r" ", "  ", corpus.docs[src])
        corpus.exact_of[len(corpus.docs)] = src
        corpus.docs.append(copy)
    for _ in range(n_near):
        src = int(rng.integers(0, n_orig))
        ws = corpus.docs[src].replace("\n", " \n ").split(" ")
        out = []
        for w in ws:
            r = rng.random()
            if w == "\n" or r > edit_rate:
                out.append(w)
            elif r < edit_rate / 3:
                out.append(vocab[int(rng.integers(0, len(vocab)))])          # replace
            elif r < 2 * edit_rate / 3:
                out += [w, vocab[int(rng.integers(0, len(vocab)))]]          # insert
            # else: delete
        corpus.near_of[len(corpus.docs)] = src
        corpus.docs.append(" ".join(out).replace(" \n ", "\n"))
    for k in range(n_junk):
        kind = k % 3
        if kind == 0:
            doc = " ".join(words(int(rng.integers(3, 20))))                   # too short
        elif kind == 1:
            doc = "\n".join([" ".join(words(8))] * int(rng.integers(20, 60)))  # one line repeated
        else:
            doc = " ".join("".join(rng.choice(list("#$%&*@!0123456789"), size=6)) for _ in range(200))  # symbols
        corpus.low_quality.add(len(corpus.docs))
        corpus.docs.append(doc)
    return corpus


# ---- the pipeline -----------------------------------------------------------------------------

def quality_ok(doc: str, min_words: int = 50, min_alpha: float = 0.8, max_dup_lines: float = 0.3,
               min_unique: float = 0.2) -> bool:
    ws = doc.split()
    if len(ws) < min_words:
        return False
    if sum(any(c.isalpha() for c in w) for w in ws) / len(ws) < min_alpha:
        return False
    lines = [ln for ln in doc.splitlines() if ln.strip()]
    if lines and 1 - len(set(lines)) / len(lines) > max_dup_lines:
        return False
    return len(set(ws)) / len(ws) >= min_unique


def normalize(doc: str) -> str:
    return " ".join(doc.lower().split())


def shingles(doc: str, k: int = SHINGLE) -> set[bytes]:
    ws = normalize(doc).split()
    return {" ".join(ws[i:i + k]).encode() for i in range(max(1, len(ws) - k + 1))}


class UnionFind:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)   # the earliest document is the one kept


def exact_duplicates(docs: dict[int, str]) -> set[int]:
    """Documents whose normalized text was already seen (the first is kept)."""
    seen, dup = {}, set()
    for i in sorted(docs):
        h = hashlib.sha1(normalize(docs[i]).encode()).digest()
        if h in seen:
            dup.add(i)
        else:
            seen[h] = i
    return dup


def near_duplicates(docs: dict[int, str], threshold: float, num_perm: int = NUM_PERM, seed: int = 1) -> tuple[set[int], int]:
    """(documents to remove, candidate pairs checked): MinHash LSH, confirmed by estimated Jaccard."""
    from datasketch import MinHash, MinHashLSH

    keys = sorted(docs)
    sigs = MinHash.bulk([list(shingles(docs[i])) for i in keys], num_perm=num_perm, seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for i, m in zip(keys, sigs, strict=True):
            session.insert(i, m)
    by_key = dict(zip(keys, sigs, strict=True))
    uf, checked = UnionFind(), 0
    for i, m in by_key.items():
        for j in lsh.query(m):
            if j > i:
                checked += 1
                if m.jaccard(by_key[j]) >= threshold:   # LSH proposes; the signatures' estimate confirms
                    uf.union(i, j)
    return {i for i in keys if uf.find(i) != i}, checked


def all_pairs_near(docs: dict[int, str], threshold: float) -> set[int]:
    """The exact answer by brute force: true Jaccard of every pair. O(n^2): for small corpora only."""
    keys = sorted(docs)
    sh = [shingles(docs[i]) for i in keys]
    uf = UnionFind()
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            inter = len(sh[a] & sh[b])
            if inter and inter / len(sh[a] | sh[b]) >= threshold:
                uf.union(keys[a], keys[b])
    return {i for i in keys if uf.find(i) != i}


def _pr(removed: set[int], truth: set[int], also_right: set[int] = frozenset()) -> dict:
    """Recall against this stage's planted set; precision counts any planted removal as right (a near copy
    with no edit left in it is an exact copy, and the exact stage is right to take it)."""
    tp = len(removed & truth)
    right = len(removed & (truth | also_right))
    return {"removed": len(removed), "should_remove": len(truth), "true_positives": tp,
            "precision": right / len(removed) if removed else 1.0, "recall": tp / len(truth) if truth else 1.0}


def run(n: int, seed: int = 0, threshold: float = 0.7, all_pairs: bool = False) -> dict:
    t0 = time.perf_counter()
    corpus = make_corpus(n, seed)
    t_gen = time.perf_counter() - t0
    docs = dict(enumerate(corpus.docs))
    stages = {}

    t = time.perf_counter()
    low = {i for i, d in docs.items() if not quality_ok(d)}
    dups = set(corpus.exact_of) | set(corpus.near_of)
    stages["quality_filter"] = {**_pr(low, corpus.low_quality), "seconds": time.perf_counter() - t}
    kept = {i: d for i, d in docs.items() if i not in low}

    t = time.perf_counter()
    exact = exact_duplicates(kept)
    stages["exact_dedup"] = {**_pr(exact, set(corpus.exact_of), dups), "seconds": time.perf_counter() - t}
    kept = {i: d for i, d in kept.items() if i not in exact}

    t = time.perf_counter()
    near, checked = near_duplicates(kept, threshold)
    near_left = set(corpus.near_of) - exact     # near copies the exact stage has not already taken
    stages["near_dedup_minhash_lsh"] = {**_pr(near, near_left, dups), "seconds": time.perf_counter() - t,
                                        "candidate_pairs": checked}
    if all_pairs:
        t = time.perf_counter()
        brute = all_pairs_near(kept, threshold)
        stages["near_dedup_all_pairs"] = {**_pr(brute, near_left, dups), "seconds": time.perf_counter() - t,
                                          "lsh_recall_of_all_pairs": len(near & brute) / len(brute) if brute else 1.0}
    for s in stages.values():
        s["docs_per_s"] = n / s["seconds"] if s["seconds"] > 0 else None
    removed = low | exact | near
    truth = corpus.low_quality | set(corpus.exact_of) | set(corpus.near_of)
    return {"schema": 1, "tool": "python -m ch5.dedup", "docs": n, "seed": seed, "threshold": threshold,
            "shingle_words": SHINGLE, "num_perm": NUM_PERM, "generate_seconds": t_gen,
            "planted": {"exact": len(corpus.exact_of), "near": len(corpus.near_of), "low_quality": len(corpus.low_quality)},
            "stages": stages, "overall": _pr(removed, truth), "kept": n - len(removed)}


def render(r: dict) -> str:
    from harness.report import text_table

    rows = [[name, s["removed"], s["should_remove"], f"{s['precision']:.3f}", f"{s['recall']:.3f}",
             f"{s['seconds']:.3g}", f"{s['docs_per_s']:.4g}" if s["docs_per_s"] else "-"] for name, s in r["stages"].items()]
    o = r["overall"]
    lines = [f"{r['docs']} documents (planted: {r['planted']['exact']} exact copies, {r['planted']['near']} near copies, "
             f"{r['planted']['low_quality']} low-quality); Jaccard threshold {r['threshold']}, {r['shingle_words']}-word "
             f"shingles, {r['num_perm']} permutations",
             text_table(["stage", "removed", "planted", "precision", "recall", "seconds", "docs/s"], rows),
             f"overall: removed {o['removed']} of {r['docs']}, precision {o['precision']:.3f}, recall {o['recall']:.3f}; "
             f"{r['kept']} kept"]
    ap = r["stages"].get("near_dedup_all_pairs")
    if ap:
        lines.append(f"LSH found {ap['lsh_recall_of_all_pairs']:.1%} of what the all-pairs search found, "
                     f"{ap['seconds'] / r['stages']['near_dedup_minhash_lsh']['seconds']:.1f}x faster")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch5.dedup", description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.7, help="Jaccard similarity of a near duplicate (default 0.7)")
    parser.add_argument("--all-pairs", action="store_true", help="also run the exact O(n^2) search (small corpora)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    args = parser.parse_args(argv)
    if args.docs < 10:
        parser.error("--docs must be at least 10")
    if not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if args.all_pairs and args.docs > 5000:
        parser.error("--all-pairs is O(n^2): use it with --docs 5000 or fewer")
    try:
        import datasketch  # noqa: F401
    except ImportError:
        print("dedup: needs the Python package datasketch (pip install -r requirements.txt)", file=sys.stderr)
        return 2
    report = run(args.docs, args.seed, args.threshold, args.all_pairs)
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
