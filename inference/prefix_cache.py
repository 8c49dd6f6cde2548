"""A prefix (radix-tree) cache over KV pages: a new request whose prompt starts with tokens already computed
reuses their pages instead of recomputing them (RadixAttention in SGLang, automatic prefix caching in vLLM).

The tree is keyed by whole pages: each edge is the tuple of page_size token ids that one page holds, so a node is
one cached page and a path from the root is a cached prefix. The tree holds one reference on each of its pages;
a sequence using a prefix holds another. When the pool runs out, least-recently-used leaves that no sequence
uses (reference count 1) are evicted.

Saving: a hit of h tokens skips h tokens of prefill, about 2 * n_params * h FLOPs, and the TTFT they cost.
"""
from __future__ import annotations

import itertools

from inference.paged_kv import PagedKVCache


class _Node:
    __slots__ = ("page", "children", "parent", "key", "last_used")

    def __init__(self, page: int, parent: _Node | None, key: tuple):
        self.page, self.parent, self.key = page, parent, key
        self.children: dict[tuple, _Node] = {}
        self.last_used = 0


class PrefixCache:
    def __init__(self, cache: PagedKVCache):
        self.cache = cache
        self.root = _Node(-1, None, ())
        self.clock = itertools.count(1)
        self.hit_tokens = 0      # prompt tokens served from the cache
        self.lookup_tokens = 0   # prompt tokens looked up
        cache.on_out_of_pages = self.evict

    def _chunks(self, tokens: list[int], n_pages: int):
        ps = self.cache.page_size
        return (tuple(tokens[i * ps:(i + 1) * ps]) for i in range(n_pages))

    def match(self, tokens: list[int]) -> list[int]:
        """Pages of the longest cached prefix of tokens, leaving at least one token to compute (its logits give the
        first output token)."""
        node, pages, now = self.root, [], next(self.clock)
        for key in self._chunks(tokens, (len(tokens) - 1) // self.cache.page_size):
            node = node.children.get(key)
            if node is None:
                break
            node.last_used = now
            pages.append(node.page)
        self.lookup_tokens += len(tokens)
        self.hit_tokens += len(pages) * self.cache.page_size
        return pages

    def insert(self, tokens: list[int], pages: list[int]) -> None:
        """Cache the full pages of a computed prefix: pages[i] holds tokens[i*ps:(i+1)*ps]."""
        node, now = self.root, next(self.clock)
        for key, page in zip(self._chunks(tokens, len(tokens) // self.cache.page_size), pages, strict=False):
            child = node.children.get(key)
            if child is None:  # a new page for the tree: it takes a reference
                child = node.children[key] = _Node(page, node, key)
                self.cache.allocator.incref(page)
            child.last_used = now
            node = child

    def _leaves(self):
        stack = list(self.root.children.values())
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            else:
                yield n

    def evict(self, n_pages: int) -> int:
        """Free up to n_pages pages that only the tree holds, least recently used leaves first."""
        freed, refs = 0, self.cache.allocator.refs
        while freed < n_pages:
            idle = [n for n in self._leaves() if refs[n.page] == 1]
            if not idle:
                break
            for n in sorted(idle, key=lambda n: n.last_used)[:n_pages - freed]:
                del n.parent.children[n.key]
                self.cache.allocator.decref(n.page)
                freed += 1
        return freed

    def n_pages(self) -> int:
        count, stack = 0, list(self.root.children.values())
        while stack:
            n = stack.pop()
            count += 1
            stack.extend(n.children.values())
        return count
