"""The LLM generator: any OpenAI-compatible chat-completions endpoint, over plain HTTP.

A vLLM or SGLang server (``vllm serve deepseek-ai/DeepSeek-R1 ...`` exposes /v1/chat/completions), or a
hosted API. Configured by flags or the environment:

    AISP_LLM_BASE_URL   e.g. http://localhost:8000/v1    (the part before /chat/completions)
    AISP_LLM_MODEL      the served model name
    AISP_LLM_API_KEY    sent as "Authorization: Bearer ..." when set. OPENAI_API_KEY is sent only to
                        api.openai.com: a vendor's key never goes to an arbitrary base URL.

Each request waits at most --request-timeout seconds and is retried --retries times, with backoff, when
the endpoint refuses, times out or answers 5xx; after that the loop stops with EndpointUnreachable (the
CLI's exit code 3), which is not the same as "no kernel was accepted" (exit 1).

The conversation is the refine loop itself: the problem and the required format first, then for each
recent attempt the code the model wrote and the verifier's feedback on it. Only the standard library
is used, so nothing needs installing.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from ch20.generators import Attempt, Context, EndpointUnreachable, GeneratorError, Proposal
from ch20.problem import DISTRIBUTIONS

HISTORY_TURNS = 3   # earlier attempts replayed into the prompt; older ones are dropped to bound its length

SYSTEM = ("You are an expert GPU performance engineer. You replace PyTorch reference modules with faster "
          "custom kernels written in Triton (or CUDA through torch.utils.cpp_extension.load_inline), keeping "
          "the results numerically equal within the stated tolerance.")


def first_prompt(ctx: Context) -> str:
    p = ctx.problem
    shapes = ", ".join(str(tuple(s)) for s in ctx.input_shapes) or "see get_inputs"
    dists = "; ".join(f"{d}: {DISTRIBUTIONS[d]}" for d in p.distributions)
    tol = ctx.tolerance or {}
    return f"""Write a faster replacement for this PyTorch reference ({p.name}, a {p.family} problem).

```python
{p.source.strip()}
```

Required format: one complete Python file defining `class ModelNew(nn.Module)`.
- Its constructor takes the same arguments as `Model` and creates any parameters in the same order and
  the same way: the verifier seeds the random generator identically before building each, so equal
  construction gives equal weights.
- `forward` takes the same inputs and returns the same outputs: same structure, shapes and dtypes.
- It runs on {ctx.device} at size "{ctx.size}": {ctx.dtype} inputs of shapes {shapes}.
- Inputs are drawn fresh for each trial from: {dists}.
- Tolerance: rtol={tol.get('rtol', '?')}, atol={tol.get('atol', '?')}; NaN or Inf fails.
- Do not call the reference operation as a fallback, use side streams or threads, or touch timing or
  comparison functions: the verifier detects these and rejects the kernel.

Reply with exactly one ```python code block holding the whole file."""


def build_messages(ctx: Context, history: list[Attempt]) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first_prompt(ctx)}]
    for a in history[-HISTORY_TURNS:]:
        shown = a.proposal.source or a.proposal.note
        messages.append({"role": "assistant", "content": f"```python\n{shown.strip()}\n```"})
        messages.append({"role": "user", "content": "The verifier's feedback on that kernel:\n\n"
                         f"{a.verdict.get('feedback', '').strip()}\n\nFix what it reports, or make it faster if it "
                         "was correct. Reply with one ```python code block holding the whole file."})
    return messages


FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S)


def extract_code(reply: str) -> str:
    """The candidate file from a reply: the last fenced block defining ModelNew, else the last block."""
    reply = re.sub(r"<think>.*?</think>", "", reply, flags=re.S)   # reasoning models think out loud first
    blocks = FENCE.findall(reply)
    with_model = [b for b in blocks if "class ModelNew" in b]
    chosen = (with_model or blocks or [""])[-1]
    return chosen.strip() + "\n" if chosen.strip() else ""


def _post(url: str, body: bytes, headers: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def chat(base_url: str, model: str, api_key: str | None, messages: list[dict], *, temperature: float,
         max_tokens: int, timeout: float, retries: int = 2, backoff_s: float = 2.0) -> str:
    url = base_url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": model, "messages": messages, "temperature": temperature,
                       "max_tokens": max_tokens}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            payload = _post(url, body, headers, timeout)
            break
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code < 500 and exc.code not in (408, 429):
                raise GeneratorError(f"{url} answered HTTP {exc.code}: {detail}") from exc
            last = f"HTTP {exc.code}: {detail}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        except ValueError as exc:
            raise GeneratorError(f"{url} did not answer JSON") from exc
    else:
        raise EndpointUnreachable(f"cannot reach {url} after {retries + 1} attempts: {last}")
    try:
        return payload["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        raise GeneratorError(f"{url} answered without choices[0].message.content") from exc


def api_key_for(base_url: str, given: str | None) -> str | None:
    """The key to send: the one given (flag or AISP_LLM_API_KEY), or OPENAI_API_KEY for OpenAI's own host only."""
    if given:
        return given
    host = urllib.parse.urlparse(base_url).hostname or ""
    return os.environ.get("OPENAI_API_KEY") if host == "api.openai.com" else None


class LLMGenerator:
    name = "llm"

    def __init__(self, context: Context, base_url: str | None = None, model: str | None = None,
                 api_key: str | None = None, temperature: float = 0.6, max_tokens: int = 8192,
                 request_timeout: float = 900, retries: int = 2):
        self.context = context
        self.base_url = base_url or os.environ.get("AISP_LLM_BASE_URL")
        self.model = model or os.environ.get("AISP_LLM_MODEL")
        if not self.base_url or not self.model:
            raise GeneratorError("the llm generator needs --base-url and --model (or AISP_LLM_BASE_URL and "
                                 "AISP_LLM_MODEL)")
        self.api_key = api_key_for(self.base_url, api_key or os.environ.get("AISP_LLM_API_KEY"))
        self.temperature, self.max_tokens, self.timeout, self.retries = temperature, max_tokens, request_timeout, retries
        self.calls = 0

    def propose(self, history: list[Attempt]) -> list[Proposal]:
        reply = chat(self.base_url, self.model, self.api_key, build_messages(self.context, history),
                     temperature=self.temperature, max_tokens=self.max_tokens, timeout=self.timeout,
                     retries=self.retries)
        self.calls += 1
        code = extract_code(reply)
        if not code:
            return [Proposal(source="", label=f"reply {self.calls}", note=reply[-2000:] or "(empty reply)")]
        return [Proposal(source=code, label=f"reply {self.calls}")]
