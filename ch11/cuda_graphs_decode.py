"""CUDA graphs from PyTorch: one decode step of a small transformer, eager vs captured once and replayed.

A decode step at small batch is a long chain of small kernels (norms, projections, attention over the
KV cache, MLP): here ~25 per layer, ~150 in all, each finishing in a few microseconds. Eager PyTorch
pays the host-side cost of every launch (~4 us each on the H200, as benchmark_peak.py measures), so
the GPU waits on the CPU. `torch.cuda.graph` records the whole step once; a replay is one launch for
all of it, and the GPU runs the kernels back to back (~1 us apart).

A graph replays fixed addresses, and every call here gets fresh inputs, so `graph_replay` first copies
the weights, the token's activations and the KV cache into the graph's static buffers (three copies,
~45 MB at full size, counted in its time) and returns a copy of the static output. One graph is
captured per input shape. `torch_compile` is `torch.compile(mode="reduce-overhead")`, which does the
same with Inductor's fused kernels and its own CUDA graphs: a reference beside ours.

Bound: launch-bound, not memory- or compute-bound (the step moves ~45 MB and does ~0.1 GFLOP).
Eager ~ kernels x host launch cost; replay ~ kernels x GPU-side kernel gap plus the kernels' own time.
"""
import math

import torch

from harness import Example, Requires, Variant, main

# batch, model dim, heads, cached tokens, layers, MLP dim
SIZES = {"tiny": (2, 32, 2, 8, 2, 64), "small": (4, 128, 4, 64, 4, 384), "full": (8, 256, 4, 128, 6, 768)}
EPS = 1e-6


def param_shapes(dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """One layer's weights, in the order they are packed into the flat parameter tensor."""
    return {"norm1": (dim,), "wq": (dim, dim), "wk": (dim, dim), "wv": (dim, dim), "wo": (dim, dim),
            "norm2": (dim,), "w1": (dim, hidden), "w3": (dim, hidden), "w2": (hidden, dim)}


def unpack(params: torch.Tensor, dim: int, hidden: int, layers: int) -> list[dict[str, torch.Tensor]]:
    """Views into one flat tensor: one copy moves every weight into a graph's static buffer."""
    out, offset = [], 0
    for _ in range(layers):
        layer = {}
        for name, shape in param_shapes(dim, hidden).items():
            n = math.prod(shape)
            layer[name] = params[offset:offset + n].view(shape)
            offset += n
        out.append(layer)
    return out


def setup(size, device, seed):
    batch, dim, heads, cached, layers, hidden = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    per_layer = sum(math.prod(s) for s in param_shapes(dim, hidden).values())
    params = torch.randn(layers * per_layer, device=device, generator=g) / math.sqrt(dim)
    for layer in unpack(params, dim, hidden, layers):  # norm gains near 1
        layer["norm1"].add_(1.0)
        layer["norm2"].add_(1.0)
    return {
        "params": params,
        "x": torch.randn(batch, dim, device=device, generator=g),
        # keys and values of the tokens already decoded: [layers, 2, batch, heads, cached, head_dim]
        "kv": torch.randn(layers, 2, batch, heads, cached, dim // heads, device=device, generator=g),
    }


def rms_norm(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * gain


def decode_step(params: torch.Tensor, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """One token through every layer, attending to the cached keys and values plus its own."""
    layers, _, batch, heads, _, head_dim = kv.shape
    dim = x.shape[-1]
    hidden = (params.numel() // layers - 4 * dim * dim - 2 * dim) // (3 * dim)
    for i, w in enumerate(unpack(params, dim, hidden, layers)):
        h = rms_norm(x, w["norm1"])
        q = (h @ w["wq"]).view(batch, heads, 1, head_dim)
        k = torch.cat([kv[i, 0], (h @ w["wk"]).view(batch, heads, 1, head_dim)], dim=2)
        v = torch.cat([kv[i, 1], (h @ w["wv"]).view(batch, heads, 1, head_dim)], dim=2)
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(head_dim))
        attn = (torch.softmax(scores, dim=-1) @ v).view(batch, dim)
        x = x + attn @ w["wo"]
        h = rms_norm(x, w["norm2"])
        x = x + (torch.nn.functional.silu(h @ w["w1"]) * (h @ w["w3"])) @ w["w2"]
    return x


def eager(x):
    return decode_step(x["params"], x["x"], x["kv"])


class StaticStep:
    """A decode step captured into a CUDA graph over static input buffers."""

    def __init__(self, example_inputs: dict):
        self.inputs = {k: v.clone() for k, v in example_inputs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: cuBLAS handles, workspaces, allocator
            for _ in range(3):
                decode_step(**self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = decode_step(**self.inputs)

    def __call__(self, x: dict) -> torch.Tensor:
        for name, buf in self.inputs.items():
            buf.copy_(x[name])   # the graph reads these addresses: this call's inputs go there
        self.graph.replay()
        return self.out.clone()  # the next replay overwrites self.out


_CAPTURED: dict[tuple, StaticStep] = {}


def graph_replay(x):
    key = tuple((k, tuple(v.shape), v.dtype, v.device) for k, v in sorted(x.items()))
    if key not in _CAPTURED:  # once per input shape
        _CAPTURED[key] = StaticStep(x)
    return _CAPTURED[key](x)


_COMPILED = None


def torch_compile(x):
    global _COMPILED
    if _COMPILED is None:
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1  # compile in this thread: no worker pool left running after the call
        _COMPILED = torch.compile(decode_step, mode="reduce-overhead", fullgraph=True)
    torch.compiler.cudagraph_mark_step_begin()   # each call is a new step: earlier outputs may be overwritten
    return _COMPILED(x["params"], x["x"], x["kv"]).clone()


# no edge distributions: the optimized variant replays the very kernels eager runs (a graph changes launches,
# not arithmetic), so no input value makes it wrong alone; Inductor's fused kernels are a reference.
EXAMPLE = Example(
    title="CUDA graphs from PyTorch: a small transformer decode step, eager vs graph replay",
    setup=setup,
    baseline=eager,
    baseline_name="eager",
    optimized={"graph_replay": Variant(graph_replay, note="includes copying this call's inputs into the "
                                                          "graph's static buffers and copying the output out")},
    references={"torch_compile": Variant(torch_compile, requires=Requires(packages=("triton",)),
                                         note='torch.compile(mode="reduce-overhead"): Inductor kernels in a CUDA graph')},
    items=lambda x: x["x"].shape[0],
    items_unit="tokens",
    requires=Requires(cuda=True),  # CUDA graphs have no CPU counterpart (decode_step itself runs anywhere)
    # torch.compile leaves one thread of its own after the first call, even with compile_threads=1 (seen on the H200
    # with torch 2.11); no timed work runs on it.
    keeps_threads=True,
)

if __name__ == "__main__":
    main(EXAMPLE)
