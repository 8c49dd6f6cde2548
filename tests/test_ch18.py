"""Chapter 18 at tiny sizes on the CPU: the Triton decode kernels in the interpreter (fp32: the interpreter's bf16
tl.dot is wrong), the paged BlockMask's structure, and the CLI modules end to
end (their figures are GPU results: no speed is asserted here). The harness examples themselves are run by
tests/test_examples.py."""
import importlib.util
import json

import pytest
import torch

from ch18 import flex_masks, kv_page_sweep, paged_decode, slo_admission

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@needs_triton
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the harness examples check the compiled kernels")
def test_triton_kernels_match_the_baselines():
    """On the CPU in the interpreter (conftest sets it), in fp32: the interpreter computes bf16 tl.dot wrongly."""
    from ch18 import mla_decode
    for seed in (1, 2):
        x = paged_decode.setup("tiny", "cpu", seed, page_size=8 * seed)
        assert torch.allclose(paged_decode.triton_paged(x), paged_decode.gather_then_sdpa(x), atol=1e-5, rtol=1e-4)
        x = mla_decode.setup("tiny", "cpu", seed)
        want = mla_decode.naive_decompress(x)
        assert torch.allclose(mla_decode.triton_mla(x), want, atol=1e-5, rtol=1e-4)
        assert torch.allclose(mla_decode.absorbed_torch(x), want, atol=1e-5, rtol=1e-4)
    # split over tokens (flash-decoding), one split empty (37 tokens in tiles of 16 over 4 splits): the same answer
    q_full = torch.cat([torch.einsum("bhd,hdr->bhr", x["q_nope"], x["w_uk"]), x["q_rope"]], dim=-1).contiguous()
    rank, scale = x["w_uk"].shape[2], 0.1
    one = mla_decode.mla_attention(q_full, x["latent"], rank, scale, 16, 16, splits=1)
    assert torch.allclose(mla_decode.mla_attention(q_full, x["latent"], rank, scale, 16, 16, splits=4), one, atol=1e-6)


def test_paged_block_mask_lists_each_sequences_pages():
    x = paged_decode.setup("tiny", "cpu", 3)
    ps, table, lengths = x["page_size"], x["block_table"], x["lengths"]
    mask = paged_decode.paged_block_mask(table, lengths, ps, x["k"].shape[0])
    dense = mask.to_dense()[:, 0, 0]  # (b, pool pages): which kv blocks each sequence visits
    for b, n in enumerate(lengths.tolist()):
        want = torch.zeros(dense.shape[1], dtype=dense.dtype)
        want[table[b, :-(-n // ps)].long()] = 1
        assert torch.equal(dense[b], want)
    assert torch.allclose(paged_decode.flex_paged(x), paged_decode.gather_then_sdpa(x), atol=1e-5)


def test_flex_masks_cli(tmp_path):
    out = tmp_path / "f.json"
    assert flex_masks.main(["--size", "tiny", "--device", "cpu", "--time-per-impl", "0.01", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["mask"] for r in report["masks"]] == list(flex_masks.MASKS)
    for row in report["masks"]:
        assert row["impls"]["flex_eager"]["status"] == "ok" and row["impls"]["sdpa_dense_mask"]["status"] == "ok"
        assert row["impls"]["flex_compiled"]["status"] == "skipped"
        assert 0 < row["density"] <= 0.6
    assert [g["met"] for g in report["goals"]] == [None] * len(flex_masks.GOALS)  # not measurable on the CPU


def test_page_sweep_utilization_falls_with_page_size(tmp_path):
    out = tmp_path / "s.json"
    assert kv_page_sweep.main(["--size", "tiny", "--device", "cpu", "--pages", "8,64", "--no-engine",
                               "--time-per-impl", "0.01", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["pages"]
    assert rows[0]["workload"]["utilization"] > rows[1]["workload"]["utilization"]
    assert all(r["attention"]["gather_sdpa"]["status"] == "ok" for r in rows)
    assert kv_page_sweep.main(["--pages", "0"]) == 2


def test_admission_rejects_when_predicted_ttft_exceeds_the_slo():
    from inference.bench import build_model
    from inference.generate import new_paged_cache
    from inference.scheduler import Request
    model = build_model("tiny", "cpu", torch.float32)
    now = [0.0]
    engine = slo_admission.SLOAdmission(model, new_paged_cache(model, 64, 16), token_budget=32, slo_ttft=1.0,
                                        policy="reject", clock=lambda: now[0])
    engine.add(Request(0, [1] * 40, 2))        # nothing measured yet: admitted
    engine.step_s = 0.3                          # measured: 0.3 s per step, 32 prefill tokens per step
    engine.add(Request(1, [1] * 20, 2))        # ahead 40 + 20 tokens: 2 steps = 0.6 s <= 1 s: admitted
    engine.add(Request(2, [1] * 60, 2))        # ahead 60 + 60: 4 steps = 1.2 s: rejected
    assert [r.rid for r in engine.waiting] == [0, 1] and [r.rid for r in engine.rejected] == [2]
    assert engine.predictions[2] == pytest.approx(1.2)
    engine.policy = "defer"
    engine.add(Request(3, [1] * 60, 2))
    assert [r.rid for r in engine.deferred] == [3]
    while engine.has_work():                     # a deferred request runs once the queue is empty
        engine.step()
    assert not engine.deferred and not engine.running and len(engine.rejected) == 1


def test_slo_admission_cli(tmp_path):
    out = tmp_path / "a.json"
    assert slo_admission.main(["--size", "tiny", "--device", "cpu", "--rates", "1000", "--policies", "none,reject",
                               "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["series"]) == {"none", "reject"} and report["goals"]
    none, reject = report["series"]["none"][0], report["series"]["reject"][0]
    assert none["finished"] == none["requests"] and reject["finished"] + reject["rejected"] == reject["requests"]
    assert slo_admission.main(["--size", "tiny", "--policies", "fifo"]) == 2
