"""Decode-only engine steps replayed from CUDA graphs.

An eager decode step of the 1B model is ~600 kernel launches, each a Python call and a dispatch; at small batches
the host's launching, not the GPU, sets the step time. A CUDA graph records the launches of one step once and
replays them with one call. A graph replays fixed shapes at fixed addresses, so a step is padded to a bucket:
the batch to the next power of two (padding rows repeat row 0: the same token at the same position writes the
same key/value to the same slot, and its logits are dropped) and the key range to a multiple of `key_bucket`
(padded keys are masked). Each (batch, keys) bucket is recorded the first time it is met; the step's inputs and
the cache's per-step indices are copied into that graph's static buffers before each replay. All graphs share
one memory pool: they never run at once. Prefill and mixed steps stay eager.

On a CPU nothing is recorded: the padded step runs eagerly (the tests check the padding changes no output).
"""
from __future__ import annotations

import torch

from inference.paged_kv import PagedKVCache


class GraphedDecode:
    def __init__(self, model, cache: PagedKVCache, key_bucket: int = 256):
        self.model, self.cache, self.key_bucket = model, cache, key_bucket
        self.on_gpu = cache.device.type == "cuda"
        self.graphs: dict[tuple[int, int], tuple] = {}  # (batch, keys) -> (graph, static inputs, static idx, logits)
        self.pool = torch.cuda.graph_pool_handle() if self.on_gpu else None

    def __call__(self, rows: list[tuple[int, int, int]], tokens: list[int]) -> torch.Tensor:
        """rows (seq_id, start, 1) and their tokens: one decode step; returns logits (len(rows), vocab)."""
        b = len(rows)
        padded = 1 << (b - 1).bit_length()
        rows = rows + [rows[0]] * (padded - b)
        tokens = tokens + [tokens[0]] * (padded - b)
        self.cache.begin_step(rows, key_multiple=self.key_bucket)
        inputs = torch.tensor(tokens + [start for _, start, _ in rows]).to(self.cache.device)
        if not self.on_gpu:
            return self._forward(inputs)[:b]
        key = (padded, self.cache.idx["decode_slots"].shape[1])
        if key not in self.graphs:
            self.graphs[key] = self._record(inputs)
        graph, static_inputs, static_idx, logits = self.graphs[key]
        static_inputs.copy_(inputs)
        for name, t in static_idx.items():
            t.copy_(self.cache.idx[name])
        graph.replay()
        return logits[:b]

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        tok, pos = inputs.view(2, -1)
        return self.model(tok[None], cache=self.cache, positions=pos)[0]

    def _record(self, inputs: torch.Tensor):
        static_inputs = inputs.clone()
        static_idx = {name: t.clone() for name, t in self.cache.idx.items()}
        self.cache.idx = static_idx  # what the recorded layers read: these addresses, refilled before each replay
        stream = torch.cuda.Stream(self.cache.device)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # one eager run first (cuBLAS workspaces, allocator), as capture requires
            self._forward(static_inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self._forward(static_inputs)
        return graph, static_inputs, static_idx, logits
