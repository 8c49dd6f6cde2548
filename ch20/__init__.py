"""Chapter 20: AI-assisted kernel optimization as a generate -> verify -> refine loop.

The verifier (``python -m ch20.verify``) is the load-bearing part: it runs untrusted candidate kernels
in a child process, judges their outputs in its own process and times them against the PyTorch
reference. The loop (``python -m ch20.ai_kernel_generator``) feeds its verdicts back to a generator:
an LLM behind any OpenAI-compatible endpoint, or a search over parameterised Triton templates.
"""
