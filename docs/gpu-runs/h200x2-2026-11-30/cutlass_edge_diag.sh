#!/usr/bin/env bash
# Which CUTLASS kernel and shape crashed tests/test_ch9_cutlass.py (a segfault in call 2): each pair in its own
# process, printing its exit status and the largest error against a float64 product.
for shape in "1 8 8" "7 16 24" "129 136 72" "300 264 1000" "1000 8 64"; do
  for name in gemm_sm80 gemm_sm90; do
    timeout 60 python3 -X faulthandler - $name $shape <<'PY' 2>&1 | tail -2
import sys, torch
from ch9.cutlass_kernels import ext
name, (m, n, k) = sys.argv[1], map(int, sys.argv[2:])
g = torch.Generator(device="cuda").manual_seed(m * n + k)
a = torch.randn(m, k, device="cuda", generator=g).bfloat16()
b = torch.randn(n, k, device="cuda", generator=g).bfloat16()
got = getattr(ext(), name)(a, b).float()
torch.cuda.synchronize()
print(name, m, n, k, "max err", (got - (a.double() @ b.double().T).float()).abs().max().item())
PY
    echo "$name $shape rc=${PIPESTATUS[0]}"
  done
done
