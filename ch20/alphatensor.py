"""Matrix-multiplication algorithms as tensor decompositions (the object AlphaTensor searches over).

    python -m ch20.alphatensor [--time] [--sizes 1024 2048 4096] [--json OUT]

C = A @ B for an n x m block A and an m x p block B is the 3-way tensor T (nm x mp x np) with
T[(i,j), (j,k), (i,k)] = 1. A rank-R decomposition T = sum_r u_r (x) v_r (x) w_r is an algorithm with R
block multiplications: M_r = (sum u_r[ij] A_ij) @ (sum v_r[jk] B_jk), then C_ik = sum_r w_r[ik] M_r.
The trivial one has rank nmp (8 for 2x2x2); Strassen's has rank 7; the Kronecker product of two
decompositions is one of the product shape (Strassen (x) Strassen: 4x4x4 at rank 49 < 64). AlphaTensor
found, among others, 4x4x4 at rank 47 in arithmetic mod 2 only; this module derives and checks 49
(3x3x3 at rank 23, Laderman's, is not derived here).

Checks are exact (int64): a decomposition must reconstruct T entry for entry; one corrupted factor
entry breaks the identity and gives a wrong product. Applying Strassen one level to a GEMM replaces
one (2h)^3 product by seven h^3 ones plus 18 block additions: 7/8 of the FLOPs, more memory traffic,
smaller (less efficient) GEMMs, and a larger rounding error (normwise, not elementwise, bounded), which
`--time` measures on the GPU against torch.matmul (cuBLAS) in bf16.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Decomposition:
    n: int
    m: int
    p: int
    u: torch.Tensor   # (R, n*m): the A-block combination of each product, A indexed (i, j) row-major
    v: torch.Tensor   # (R, m*p): the B-block combination, B indexed (j, k)
    w: torch.Tensor   # (R, n*p): where each product goes in C, C indexed (i, k)
    name: str = ""

    @property
    def rank(self) -> int:
        return self.u.shape[0]


def matmul_tensor(n: int, m: int, p: int) -> torch.Tensor:
    t = torch.zeros(n * m, m * p, n * p, dtype=torch.int64)
    for i in range(n):
        for j in range(m):
            for k in range(p):
                t[i * m + j, j * p + k, i * p + k] = 1
    return t


def reconstruct(d: Decomposition) -> torch.Tensor:
    return torch.einsum("ra,rb,rc->abc", d.u.long(), d.v.long(), d.w.long())


def is_exact(d: Decomposition) -> bool:
    """The decomposition equals the matmul tensor in every entry (integer arithmetic: no tolerance)."""
    return torch.equal(reconstruct(d), matmul_tensor(d.n, d.m, d.p))


def trivial(n: int, m: int, p: int) -> Decomposition:
    """One product per (i, j, k): rank n*m*p, the schoolbook algorithm."""
    rows = [(i * m + j, j * p + k, i * p + k) for i in range(n) for j in range(m) for k in range(p)]
    u, v, w = (torch.zeros(len(rows), s, dtype=torch.int64) for s in (n * m, m * p, n * p))
    for r, (a, b, c) in enumerate(rows):
        u[r, a] = v[r, b] = w[r, c] = 1
    return Decomposition(n, m, p, u, v, w, f"trivial {n}x{m}x{p}")


def strassen() -> Decomposition:
    """Strassen (1969): seven products for 2x2x2. Blocks in order 11, 12, 21, 22."""
    u = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0], [-1, 0, 1, 0],
                      [0, 1, 0, -1]])
    v = torch.tensor([[1, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, -1], [-1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0],
                      [0, 0, 1, 1]])
    w = torch.tensor([[1, 0, 0, 1], [0, 0, 1, -1], [0, 1, 0, 1], [1, 0, 1, 0], [-1, 1, 0, 0], [0, 0, 0, 1],
                      [1, 0, 0, 0]])
    return Decomposition(2, 2, 2, u, v, w, "Strassen 2x2x2")


def kron(outer: Decomposition, inner: Decomposition) -> Decomposition:
    """The decomposition of the (n1 n2) x (m1 m2) x (p1 p2) product: blocks of blocks, rank R1 * R2."""
    def combine(x, y, rows, cols):     # x: (R1, r1*c1), y: (R2, r2*c2) -> (R1*R2, (r1 r2) * (c1 c2)) row-major
        (r1, c1), (r2, c2) = rows, cols
        z = torch.einsum("pac,qbd->pqabcd", x.reshape(-1, r1, c1), y.reshape(-1, r2, c2))
        return z.reshape(x.shape[0] * y.shape[0], r1 * r2 * c1 * c2)
    o, i = outer, inner
    return Decomposition(o.n * i.n, o.m * i.m, o.p * i.p,
                         combine(o.u, i.u, (o.n, i.n), (o.m, i.m)), combine(o.v, i.v, (o.m, i.m), (o.p, i.p)),
                         combine(o.w, i.w, (o.n, i.n), (o.p, i.p)), f"{o.name} (x) {i.name}")


def apply(d: Decomposition, a: torch.Tensor, b: torch.Tensor, mm=torch.matmul, acc_dtype=None) -> torch.Tensor:
    """C = A @ B by the decomposition's R block products (one level); block sums in the inputs' dtype, the
    products combined in acc_dtype (default: the inputs' dtype). Sizes must divide by (n, m, p)."""
    rows, inner, cols = a.shape[0], a.shape[1], b.shape[1]
    if rows % d.n or inner % d.m or cols % d.p or b.shape[0] != inner:
        raise ValueError(f"a {tuple(a.shape)} @ {tuple(b.shape)} product does not split into {d.n}x{d.m}x{d.p} blocks")
    bn, bm, bp = rows // d.n, inner // d.m, cols // d.p
    a_blocks = [a[i * bn:(i + 1) * bn, j * bm:(j + 1) * bm] for i in range(d.n) for j in range(d.m)]
    b_blocks = [b[j * bm:(j + 1) * bm, k * bp:(k + 1) * bp] for j in range(d.m) for k in range(d.p)]
    acc = acc_dtype or a.dtype
    c = torch.zeros(rows, cols, dtype=acc, device=a.device)
    c_blocks = [c[i * bn:(i + 1) * bn, k * bp:(k + 1) * bp] for i in range(d.n) for k in range(d.p)]

    def combination(coef, blocks):
        out = None
        for x, blk in zip(coef.tolist(), blocks, strict=True):
            if x:
                term = blk if x == 1 else -blk if x == -1 else x * blk
                out = term if out is None else out + term
        return out
    for r in range(d.rank):
        prod = mm(combination(d.u[r], a_blocks), combination(d.v[r], b_blocks)).to(acc)
        for x, blk in zip(d.w[r].tolist(), c_blocks, strict=True):
            if x:
                blk.add_(prod, alpha=x)
    return c


def corrupt(d: Decomposition, factor: str = "w", row: int = 0, col: int = 0, delta: int = 1) -> Decomposition:
    """A copy with one entry of one factor changed (the adversarial case a checker must catch)."""
    parts = {"u": d.u.clone(), "v": d.v.clone(), "w": d.w.clone()}
    parts[factor][row, col] += delta
    return Decomposition(d.n, d.m, d.p, parts["u"], parts["v"], parts["w"], d.name + " (corrupted)")


def checks(seed: int = 0) -> list[dict]:
    """Every decomposition here: its rank against the trivial one, the exact identity, and the product it
    computes on random integer matrices (exact in int64) against A @ B."""
    s = strassen()
    out = []
    g = torch.Generator().manual_seed(seed)
    for d in (trivial(2, 2, 2), s, kron(s, s), corrupt(s)):
        a = torch.randint(-9, 10, (d.n * 3, d.m * 3), generator=g)
        b = torch.randint(-9, 10, (d.m * 3, d.p * 3), generator=g)
        out.append({"name": d.name, "shape": [d.n, d.m, d.p], "rank": d.rank, "trivial_rank": d.n * d.m * d.p,
                    "exact": is_exact(d), "product_equals_matmul": torch.equal(apply(d, a, b), a @ b)})
    return out


def _gemms(a: torch.Tensor, b: torch.Tensor) -> dict:
    s, t8 = strassen(), trivial(2, 2, 2)
    return {"torch_matmul": lambda: a @ b,
            "strassen_1_level": lambda: apply(s, a, b, acc_dtype=torch.float32).to(a.dtype),
            "blocked_rank8_1_level": lambda: apply(t8, a, b, acc_dtype=torch.float32).to(a.dtype)}


def time_gemm(sizes, dtype=torch.bfloat16, seed: int = 0, device: str = "cuda") -> list[dict]:
    """One level of Strassen (7 cuBLAS products) vs torch.matmul, and each one's error against float64."""
    from harness.timing import TimingConfig, measure
    dev = torch.device(device)
    cfg = TimingConfig(max_time_s=1.0 if dev.type == "cuda" else 0.05)
    rows = []
    for n in sizes:
        g = torch.Generator(device=dev).manual_seed(seed)
        a = torch.randn(n, n, device=dev, generator=g).to(dtype)
        b = torch.randn(n, n, device=dev, generator=g).to(dtype)
        exact = a.double() @ b.double()
        row = {"n": n, "dtype": str(dtype).replace("torch.", "")}
        for name, fn in _gemms(a, b).items():
            out = fn().double()
            row[name] = {"ms": measure(fn, dev, cfg).median_ms,
                         "rel_l2_err": float((out - exact).norm() / exact.norm()),
                         "max_abs_err": float((out - exact).abs().max())}
            row[name]["tflops"] = 2 * n ** 3 / row[name]["ms"] / 1e9
        row["strassen_speedup_vs_matmul"] = row["torch_matmul"]["ms"] / row["strassen_1_level"]["ms"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.alphatensor: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.alphatensor", description=__doc__.splitlines()[0])
    p.add_argument("--time", action="store_true", help="time Strassen one level vs torch.matmul (CUDA)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if any(n < 2 or n % 2 for n in args.sizes):
        p.error("--sizes must be even and at least 2")
    if args.time and not torch.cuda.is_available():
        p.error("--time needs a CUDA GPU")
    result = {"checks": checks()}
    for c in result["checks"]:
        print(f"{c['name']:<34} {c['shape']} rank {c['rank']:>2} (trivial {c['trivial_rank']:>2})  "
              f"exact: {c['exact']!s:<5}  product == A @ B: {c['product_equals_matmul']}")
    if args.time:
        from harness.device import provenance
        result["timing"] = time_gemm(args.sizes)
        result["provenance"] = provenance(torch.device("cuda"))
        for r in result["timing"]:
            print(f"n={r['n']:>5} bf16: matmul {r['torch_matmul']['ms']:.3f} ms, Strassen 1 level "
                  f"{r['strassen_1_level']['ms']:.3f} ms ({r['strassen_speedup_vs_matmul']:.2f}x), rank-8 blocked "
                  f"{r['blocked_rank8_1_level']['ms']:.3f} ms; rel. error vs float64: matmul "
                  f"{r['torch_matmul']['rel_l2_err']:.2e}, Strassen {r['strassen_1_level']['rel_l2_err']:.2e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
