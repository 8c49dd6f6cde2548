"""A mixture-of-experts layer (64 experts, top-2): a loop over experts vs grouped GEMMs over tokens sorted by expert.

Each token's router picks 2 of 64 SwiGLU experts (softmax, top-2, weights renormalized, as in Mixtral) and the
layer returns the weighted sum of their outputs. The first implementation one writes, and the one many model
files ship, loops over the experts: find the tokens routed to expert e (`nonzero`: a device-to-host sync), run
its three small GEMMs, scatter back. That is 64 syncs and ~64 x 8 launches per layer, each GEMM only a few
dozen rows tall. The grouped way sorts the (token, slot) pairs by expert once, so each expert's tokens are one
contiguous block, and runs each of the three projections as one launch over all experts:
`torch._grouped_mm` with the block offsets (sm_90+, no host sync at all), or, where it does not exist, one
`bmm` over blocks padded to the busiest expert (one sync, to learn that size; the padding is wasted work).
All variants route identically and combine the two expert outputs in fp32 the same way. bf16 on a GPU, fp32 on
the CPU (where bf16 GEMMs of a few rows are slow enough to drown the lesson).

Distributions: `balanced` (random router: every expert gets about tokens x 2 / experts rows); `one_expert`
(every token's hidden state shares a direction that one router row points along: all tokens pick that expert,
its block is every token tall and the others get a token or none). A grouped kernel that sizes its blocks
by a capacity factor drops tokens there, and one that assumes no expert is empty reads past its block.

Bound (full: 4096 tokens, dim 2048, expert width 1024, bf16): 2 x 8192 x 3 x 2048 x 1024 = 103 GFLOP (~0.15 ms
at ~700 TFLOP/s dense bf16) and 805 MB of expert weights (~0.2 ms at ~4.3 TB/s): about 0.2-0.3 ms; the expert
loop is bound by its 64 host syncs and ~500 launches instead (a few ms). tokens/s = 4096 / time.
The profiler's view of both is `python -m ch16.moe_profile` (see ch16/README.md).
"""
import torch
import torch.nn.functional as F

from harness import Example, Requires, Variant, main

# (tokens, dim, expert width, experts, top-k); tiny has 16 experts to keep the CPU test short
SHAPES = {"tiny": (64, 64, 32, 16, 2), "small": (1024, 1024, 512, 64, 2), "full": (4096, 2048, 1024, 64, 2)}


def setup(size, device, seed, dist="balanced"):
    t, d, f, e, k = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)

    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32  # CPU bf16 GEMMs crawl

    def randn(*shape, std):
        return (torch.randn(*shape, device=device, generator=g) * std).to(dtype)

    x, router = torch.randn(t, d, device=device, generator=g), torch.randn(e, d, device=device, generator=g) * d ** -0.5
    if dist == "one_expert":  # a shared direction u in every token; router row `hot` along it: logit ~ 2 sqrt(d)
        u = torch.randn(d, device=device, generator=g)
        hot = int(torch.randint(e, (1,), device=device, generator=g))
        x, router[hot] = x + u, 2 * u / u.norm()
    return {"x": x.to(dtype), "router": router.to(dtype), "top_k": k,
            "w1": randn(e, f, d, std=d ** -0.5), "w3": randn(e, f, d, std=d ** -0.5),  # gate, up (nn.Linear layout)
            "w2": randn(e, d, f, std=f ** -0.5)}                                     # down


def route(x, router, top_k):
    """(weights (tokens, k) fp32, experts (tokens, k)): softmax over the experts, top-k, renormalized."""
    probs = (x.float() @ router.float().t()).softmax(-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    return weights / weights.sum(-1, keepdim=True), experts


def combine(y, weights):
    """y (tokens * k, dim): slot (token t, choice j) at row t * k + j; the weighted sum in fp32."""
    t, k = weights.shape
    return (y.view(t, k, -1).float() * weights[..., None]).sum(1).to(y.dtype)


def expert_loop(inp):
    x, k = inp["x"], inp["top_k"]
    weights, experts = route(x, inp["router"], k)
    flat = experts.flatten()
    y = x.new_empty(flat.numel(), x.shape[1])
    for e in range(inp["w1"].shape[0]):
        slots = (flat == e).nonzero().flatten()  # a host sync per expert: the loop needs the count
        if slots.numel() == 0:
            continue
        xe = x[slots // k]
        y[slots] = F.linear(F.silu(F.linear(xe, inp["w1"][e])) * F.linear(xe, inp["w3"][e]), inp["w2"][e])
    return combine(y, weights)


def sort_by_expert(experts, n_experts):
    """The (token, slot) rows in expert order, and how many rows each expert has."""
    flat = experts.flatten()
    order = flat.argsort(stable=True)
    return flat, order, torch.bincount(flat, minlength=n_experts)


def padded_bmm(inp):
    x, k, w1, w2, w3 = inp["x"], inp["top_k"], inp["w1"], inp["w2"], inp["w3"]
    n_experts = w1.shape[0]
    weights, experts = route(x, inp["router"], k)
    flat, order, counts = sort_by_expert(experts, n_experts)
    capacity = int(counts.max())  # the one host sync: the padded block height
    expert_of = flat[order]
    rank = torch.arange(order.numel(), device=x.device) - (torch.cumsum(counts, 0) - counts)[expert_of]
    xp = x.new_zeros(n_experts, capacity, x.shape[1])
    xp[expert_of, rank] = x[order // k]
    h = F.silu(torch.bmm(xp, w1.transpose(1, 2))) * torch.bmm(xp, w3.transpose(1, 2))
    yp = torch.bmm(h, w2.transpose(1, 2))  # (experts, capacity, dim)
    y = x.new_empty(order.numel(), x.shape[1])
    y[order] = yp[expert_of, rank]
    return combine(y, weights)


def grouped_mm(inp):
    x, k, w1, w2, w3 = inp["x"], inp["top_k"], inp["w1"], inp["w2"], inp["w3"]
    weights, experts = route(x, inp["router"], k)
    _, order, counts = sort_by_expert(experts, w1.shape[0])
    offs = torch.cumsum(counts, 0).to(torch.int32)  # where each expert's block ends: stays on the device
    xs = x[order // k]
    h = F.silu(torch._grouped_mm(xs, w1.transpose(1, 2), offs=offs)) * torch._grouped_mm(xs, w3.transpose(1, 2), offs=offs)
    y = torch.empty_like(xs)
    y[order] = torch._grouped_mm(h, w2.transpose(1, 2), offs=offs)
    return combine(y, weights)


def flops(inp):
    t, d = inp["x"].shape
    e, f, _ = inp["w1"].shape
    return 2 * t * inp["top_k"] * 3 * d * f + 2 * t * d * e


def bytes_moved(inp):
    size = inp["x"].element_size()
    return sum(inp[w].numel() * size for w in ("w1", "w2", "w3")) + 2 * inp["x"].numel() * size


optimized = {"padded_bmm": Variant(padded_bmm, note="tokens sorted by expert, 3 bmm over blocks padded to the busiest expert")}
if hasattr(torch, "_grouped_mm"):  # PyTorch 2.8+; its CUDA kernel needs sm_90+
    optimized["grouped_mm"] = Variant(grouped_mm, requires=Requires(cuda=True, min_capability=(9, 0)),
                                      note="torch._grouped_mm: one launch per projection, no host sync")

EXAMPLE = Example(
    title="MoE layer, 64 experts top-2: a loop over experts vs grouped GEMMs over tokens sorted by expert",
    setup=setup,
    baseline=expert_loop,
    baseline_name="expert_loop",
    optimized=optimized,
    flops=flops,
    flops_dtype="bf16",
    bytes_moved=bytes_moved,
    items=lambda inp: inp["x"].shape[0],
    items_unit="tokens",
    distributions=("balanced", "one_expert"),
)

if __name__ == "__main__":
    main(EXAMPLE)
