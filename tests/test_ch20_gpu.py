"""The Chapter 20 verifier on a GPU: the attacks that need CUDA to exist, and the search's first step."""
from pathlib import Path

import pytest

from ch20.generators.templates import softmax
from ch20.problem import load_problem
from ch20.verify import run_reference, verify

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = REPO / "tests/ch20_candidates"

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def reference():
    return run_reference(load_problem(REPO / "ch20/problems/softmax.py"), device="cuda", size="small", trials=3)


def test_reference_runs_on_the_gpu(reference):
    assert reference.hardware["name"] != "cpu" and reference.calls_per_batch >= 1
    assert reference.digest_method in ("triton", "torch")


def test_honest_candidate_reads_about_1x_on_the_gpu(reference):
    v = verify(None, CANDIDATES / "softmax_good.py", reference=reference, min_speedup=0.0)
    assert v["accepted"], v["reason"]
    assert 0.8 <= v["speedup"] <= 1.25, v["speedup"]


def test_never_written_output_fails_on_cuda(reference):
    v = verify(None, CANDIDATES / "softmax_uninitialized.py", reference=reference)
    assert v["compiled"] and not v["correct"], v["reason"]   # NaN from the poisoned block, or stale garbage


def test_side_stream_work_is_timed(reference):
    v = verify(None, CANDIDATES / "softmax_side_stream.py", reference=reference)
    assert v["correct"], v["reason"]
    assert v["candidate_ms"] > 0.5 and not v["accepted"]     # the 1 ms spin on the side stream is in every sample


def test_plain_triton_softmax_is_verified_and_timed(reference, tmp_path):
    kernel = tmp_path / "plain_softmax.py"
    kernel.write_text(softmax.render(softmax.PLAIN, reference.problem))
    v = verify(None, kernel, reference=reference, min_speedup=0.0)
    assert v["accepted"], v["reason"]
    assert v["speedup"] > 0 and v["candidate_ms"] > 0
