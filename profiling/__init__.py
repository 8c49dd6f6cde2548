"""Profiling the examples: each variant in its own process under torch.profiler, Nsight Compute and Nsight Systems.

`python -m profiling ch7 --profile all` (profiling/cli.py). The package sits beside the harness and
uses it (examples, devices, isolated children); the harness never imports it. README.md here says
what each module does and how the defaults keep a chapter's profile to minutes and megabytes.
"""
