"""The paged engine against the definition: greedy and seeded sampled generation equal a contiguous cache and a
full recomputation; continuous batching, chunked prefill, preemption and the prefix cache change nothing in the
outputs; every page comes back."""
import pytest
import torch

from inference.generate import generate_contiguous, generate_paged, generate_recompute, new_paged_cache
from inference.model import CONFIGS, Decoder
from inference.paged_kv import PageAllocator
from inference.scheduler import Engine, Request

N_NEW = 10


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared CPU: more threads only spin
    torch.manual_seed(0)
    yield Decoder(CONFIGS["tiny"]).eval()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (n,), generator=g).tolist() for n in (5, 17, 33, 1, 40, 9)]


@pytest.fixture(scope="module")
def alone(model, prompts):
    return [generate_contiguous(model, p, N_NEW)[0] for p in prompts]


def test_paged_equals_contiguous_equals_recompute(model, prompts, alone):
    # page_size 8 and a 24-token budget: prompts span pages and are prefilled in chunks beside running decodes
    done = generate_paged(model, prompts, N_NEW, page_size=8, token_budget=24, keep_logits=True)
    for r, p, ref in zip(done, prompts, alone, strict=True):
        tokens, logits = generate_recompute(model, p, N_NEW)
        assert r.output == ref == tokens
        torch.testing.assert_close(torch.stack(r.logits), torch.stack(logits), rtol=1e-4, atol=1e-5)


def test_seeded_sampling_is_reproducible(model, prompts):
    done = generate_paged(model, prompts[:3], N_NEW, temperature=1.0, top_k=20, seed=3, page_size=8)
    for i, (r, p) in enumerate(zip(done, prompts[:3], strict=True)):
        assert r.output == generate_contiguous(model, p, N_NEW, 1.0, 20, 3 + i)[0]
    again = generate_paged(model, prompts[:3], N_NEW, temperature=1.0, top_k=20, seed=3, page_size=8)
    assert [r.output for r in again] == [r.output for r in done]
    greedy = generate_paged(model, prompts[:3], N_NEW)
    assert [r.output for r in greedy] != [r.output for r in done]


def test_allocator_free_list_and_refcounts():
    a = PageAllocator(3)
    pages = [a.alloc(), a.alloc()]
    assert pages == [0, 1] and a.n_free() == 1
    a.incref(0)
    a.decref(0)
    assert a.n_free() == 1
    a.decref(0)
    assert a.n_free() == 2
    with pytest.raises(AssertionError):
        a.decref(0)


def _run(model, prompts, n_pages, page_size=8, **kw):
    engine = Engine(model, new_paged_cache(model, n_pages, page_size), **kw)
    reqs = engine.run([Request(i, list(p), N_NEW) for i, p in enumerate(prompts)])
    return engine, reqs


def test_continuous_batching_joins_leaves_and_frees_pages(model, prompts, alone):
    engine, reqs = _run(model, prompts, 64, max_batch=3, token_budget=16)
    assert [r.output for r in reqs] == alone
    assert max(engine.step_tokens) == 16 and engine.peak_running == 3  # chunked prefill under the token budget
    assert engine.cache.allocator.n_free() == 64 and not engine.cache.pages
    static, sreqs = _run(model, prompts, 64, max_batch=3, token_budget=16, static=True)
    assert [r.output for r in sreqs] == alone
    assert engine.steps < static.steps  # a freed slot is refilled at once instead of at the batch's end
    with pytest.raises(ValueError):
        engine.add(Request(99, [1] * 250, 10))  # past max_seq


def test_preemption_under_a_small_pool(model, prompts, alone):
    # 10 pages of 8 tokens: the six requests do not fit together, so some are preempted and recomputed
    engine, reqs = _run(model, prompts, 10, max_batch=6, token_budget=64)
    assert sum(r.preemptions for r in reqs) > 0
    assert [r.output for r in reqs] == alone
    assert engine.cache.allocator.n_free() == 10


def test_prefix_cache_hits_and_returns_pages(model):
    g = torch.Generator().manual_seed(2)
    system = torch.randint(0, 256, (24,), generator=g).tolist()
    prompts = [system + torch.randint(0, 256, (n,), generator=g).tolist() for n in (3, 7, 12, 5)]
    alone = [generate_contiguous(model, p, N_NEW)[0] for p in prompts]
    engine, reqs = _run(model, prompts, 40, max_batch=1, prefix_cache=True)
    assert [r.output for r in reqs] == alone
    assert [r.prefix_hit for r in reqs] == [0, 24, 24, 24]  # three full pages of the shared prompt
    assert engine.prefix.hit_tokens == 72
    alloc = engine.cache.allocator
    assert 40 - alloc.n_free() == engine.prefix.n_pages()  # what is not free is held by the tree only
    assert all(alloc.refs[p] <= 1 for p in range(40))
    cached = engine.prefix.n_pages()
    assert engine.prefix.evict(40) == cached and alloc.n_free() == 40


def test_graphed_decode_padding_changes_nothing(model, prompts, alone):
    # On a CPU the graphed path runs its padded step eagerly: 6 rows padded to 8, keys to a multiple of 256
    engine = Engine(model, new_paged_cache(model, 64, 8), max_batch=6, token_budget=24, cuda_graphs=True,
                    keep_logits=True)
    reqs = engine.run([Request(i, list(p), N_NEW) for i, p in enumerate(prompts)])
    assert [r.output for r in reqs] == alone
    for r, p in zip(reqs, prompts, strict=True):
        torch.testing.assert_close(torch.stack(r.logits), torch.stack(generate_recompute(model, p, N_NEW)[1]),
                                   rtol=1e-4, atol=1e-5)
    assert engine.cache.allocator.n_free() == 64


@pytest.mark.gpu
def test_decode_steps_from_cuda_graphs_equal_eager(prompts):
    torch.manual_seed(0)
    gpu_model = Decoder(CONFIGS["tiny"]).cuda().eval()
    eager = generate_paged(gpu_model, prompts, N_NEW, page_size=8, token_budget=24, keep_logits=True)
    graphed = generate_paged(gpu_model, prompts, N_NEW, page_size=8, token_budget=24, keep_logits=True, cuda_graphs=True)
    for a, b in zip(eager, graphed, strict=True):
        assert a.output == b.output
        torch.testing.assert_close(torch.stack(b.logits), torch.stack(a.logits), rtol=1e-4, atol=1e-5)
