"""The generate -> verify -> refine loop, end to end on the CPU with both generators.

The llm generator talks to a local HTTP server that speaks the chat-completions protocol: its first
reply is a softmax that overflows on large inputs, its second a correct one, so the second prompt must
carry the verifier's feedback on the first. The search generator runs Triton in its interpreter.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ch20.ai_kernel_generator import main as loop_main
from ch20.ai_kernel_generator import run_loop
from ch20.generators import Attempt, Context, GeneratorError, Proposal
from ch20.generators.llm import LLMGenerator, build_messages, extract_code
from ch20.generators.search import SearchGenerator
from ch20.problem import load_problem
from ch20.report import table

REPO = Path(__file__).resolve().parent.parent
SOFTMAX = REPO / "ch20/problems/softmax.py"

BROKEN = '''<think>The max subtraction costs a pass; skip it.</think>
Here is a faster kernel:

```python
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        e = torch.exp(x)
        return e / e.sum(dim=-1, keepdim=True)
```
'''

FIXED = '''The feedback says it overflows; subtract the row max first.

```python
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        e = torch.exp(x - x.amax(dim=-1, keepdim=True))
        return e / e.sum(dim=-1, keepdim=True)
```
'''


@pytest.fixture
def fake_endpoint():
    requests = []
    replies = [BROKEN, FIXED]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            content = replies[min(len(requests), len(replies)) - 1]
            data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    server.shutdown()
    server.server_close()


def test_llm_loop_refines_on_feedback(fake_endpoint, tmp_path):
    base_url, requests = fake_endpoint
    result = run_loop(SOFTMAX, "llm", max_iters=4, target_speedup=0.0, min_speedup=0.0, device="cpu", out=tmp_path,
                      trials=2, generator_options={"base_url": base_url, "model": "fake-r1", "api_key": "k"},
                      log=lambda *a: None, rounds=3)
    assert len(requests) == 2                                   # stopped once the fixed kernel was accepted
    assert requests[0]["path"] == "/v1/chat/completions" and requests[0]["auth"] == "Bearer k"
    second = requests[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert "torch.exp(x)" in second[2]["content"]               # its own broken code ...
    # ... and the verdict on it: NaN/Inf on one of the distributions that overflow exp (whichever was checked first)
    overflowing = ("large", "rowwise", "edge_rows")   # the distributions whose rows reach exp's fp32 limit
    assert "NaN/Inf" in second[3]["content"] and any(f"({d} inputs)" in second[3]["content"] for d in overflowing)
    lines = [json.loads(line) for line in (tmp_path / "iterations.jsonl").read_text().splitlines()]
    assert [(e["verdict"]["correct"], e["reward"]) for e in lines] == [(False, 0.1), (True, lines[1]["reward"])]
    assert lines[1]["reward"] >= 1.0
    assert result["certificate"] == "certificate.json" and (tmp_path / "best_kernel.py").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["correct"] for row in summary["iterations"]] == [0, 1]


def test_search_loop_in_triton_interpreter(tmp_path):
    result = run_loop(SOFTMAX, "search", max_iters=2, batch=2, target_speedup=1e9, min_speedup=0.0, device="cpu",
                      out=tmp_path, trials=2, log=lambda *a: None, rounds=3)
    lines = [json.loads(line) for line in (tmp_path / "iterations.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(e["verdict"]["correct"] for e in lines), [e["verdict"]["reason"] for e in lines]
    assert lines[0]["params"] == {"mode": "single", "num_warps": 4, "rows": 1, "block_n": 1024}   # the plain kernel
    assert len({json.dumps(e["params"], sort_keys=True) for e in lines}) == 4                   # never repeats
    assert all(e["verdict"]["candidate_ms"] > 0 for e in lines)
    assert result.get("certificate") == "certificate.json", result["final"]["reason"]
    assert "import triton" in (tmp_path / "best_kernel.py").read_text()
    assert "| softmax | search | cpu | 4 | 4 |" in table([tmp_path])


def _attempt(params, ms, correct=True):
    verdict = {"compiled": True, "correct": correct, "speedup": 1.0 / ms if correct else None, "candidate_ms": ms,
               "suspect": []}
    return Attempt(1, Proposal(source="", label="", params=params), verdict, 1.0)


def test_search_breeds_from_the_fastest():
    ctx = Context(problem=load_problem(REPO / "ch20/problems/matmul.py"), device="cuda", size="full", dtype="bfloat16")
    gen = SearchGenerator(ctx, batch=3, seed=1)
    first = gen.propose([])
    assert first[0].params == {"block_m": 64, "block_n": 64, "block_k": 32, "group_m": 1, "num_warps": 4,
                               "num_stages": 2}
    assert all("def matmul_kernel" in p.source for p in first)
    fast, slow = dict(first[0].params, block_m=128), first[1].params
    history = [_attempt(fast, 1.0), _attempt(slow, 5.0), _attempt(first[2].params, 9.0, correct=False)]
    nxt = gen.propose(history)
    tried = {json.dumps(a.proposal.params, sort_keys=True) for a in history}
    assert len(nxt) == 3 and not tried & {json.dumps(p.params, sort_keys=True) for p in nxt}
    # children of the fastest differ from it in one or two knobs
    assert any(sum(p.params[k] != fast[k] for k in fast) <= 2 for p in nxt)


def _problem_without_template(tmp_path):
    path = tmp_path / "no_template.py"
    path.write_text(SOFTMAX.read_text().replace('FAMILY = "softmax"', 'FAMILY = "no_such_family"'))
    return path


def test_search_needs_a_template(tmp_path):
    ctx = Context(problem=load_problem(_problem_without_template(tmp_path)), device="cpu", size="tiny",
                  dtype="float32")
    with pytest.raises(GeneratorError, match="no search template"):
        SearchGenerator(ctx)


def test_llm_prompt_and_code_extraction(monkeypatch):
    assert "class ModelNew" in extract_code(BROKEN) and "<think>" not in extract_code(BROKEN)
    assert extract_code("no code here") == ""
    two = "```python\nprint(1)\n```\ntext\n```python\nclass ModelNew: pass\n```\n```\nother\n```"
    assert extract_code(two).startswith("class ModelNew")
    ctx = Context(problem=load_problem(SOFTMAX), device="cpu", size="tiny", dtype="float32", input_shapes=[[8, 64]],
                  tolerance={"rtol": 1e-4, "atol": 1e-4})
    first = build_messages(ctx, [])[1]["content"]
    assert "class Model(nn.Module)" in first and "(8, 64)" in first and "rtol=0.0001" in first
    monkeypatch.delenv("AISP_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("AISP_LLM_MODEL", raising=False)
    with pytest.raises(GeneratorError, match="--base-url"):
        LLMGenerator(ctx)


def test_loop_usage_errors(tmp_path, capsys):
    assert loop_main(["--problem", str(tmp_path / "nope.py"), "--generator", "search", "--device", "cpu"]) == 2
    assert loop_main(["--problem", str(_problem_without_template(tmp_path)), "--generator", "search",
                      "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "no search template" in capsys.readouterr().err
    unreachable = ["--problem", str(SOFTMAX), "--generator", "llm", "--device", "cpu", "--out", str(tmp_path),
                   "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--max-iters", "1", "--trials", "1",
                   "--rounds", "2"]
    unreachable += ["--retries", "1", "--request-timeout", "2"]
    assert loop_main(unreachable) == 3                     # unreachable: its own exit code, and still a summary
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "generator error" in summary["stop"] and "after 2 attempts" in summary["stop"]
    assert summary["endpoint_unreachable"] is True
    with pytest.raises(SystemExit) as bad:
        loop_main(unreachable[:-4] + ["--retries", "-1"])
    assert bad.value.code == 2


def test_llm_key_goes_only_where_it_belongs(monkeypatch):
    from ch20.generators.llm import api_key_for
    monkeypatch.setenv("OPENAI_API_KEY", "sk-vendor")
    assert api_key_for("http://localhost:8000/v1", None) is None           # never to an arbitrary base URL
    assert api_key_for("https://api.openai.com/v1", None) == "sk-vendor"
    assert api_key_for("http://localhost:8000/v1", "mine") == "mine"


def test_llm_client_retries_then_succeeds(monkeypatch):
    import urllib.error

    from ch20.generators import llm
    calls = []

    def flaky(url, body, headers, timeout):
        calls.append(timeout)
        if len(calls) < 3:
            raise urllib.error.URLError("connection refused")
        return {"choices": [{"message": {"content": "ok"}}]}

    monkeypatch.setattr(llm, "_post", flaky)
    assert llm.chat("http://x/v1", "m", None, [], temperature=0, max_tokens=1, timeout=7, retries=2, backoff_s=0) == "ok"
    assert calls == [7, 7, 7]
