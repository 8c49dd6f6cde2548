"""Generators: where candidate kernels come from, behind one small interface.

A generator has a ``name`` and ``propose(history) -> list[Proposal]``; ``history`` holds every earlier
Attempt (the proposal, the verifier's verdict and its reward), so a generator can refine on feedback.
``llm`` asks a chat model; ``search`` walks a space of Triton templates using the measured times.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Proposal:
    source: str                 # a complete candidate file; empty when the generator produced none
    label: str
    params: dict | None = None  # the template's knobs (search), None for free-form code (llm)
    note: str = ""              # why it has no source, or the model's reply when it had no code block


@dataclass
class Attempt:
    iteration: int
    proposal: Proposal
    verdict: dict
    reward: float


@dataclass
class Context:
    """What a generator may know about the task: the problem and how the verifier will run it."""
    problem: object             # ch20.problem.Problem
    device: str
    size: str
    dtype: str
    input_shapes: list = field(default_factory=list)
    tolerance: dict | None = None


class GeneratorError(Exception):
    """The generator cannot go on (the endpoint is unreachable, no template fits): a one-line reason."""


class EndpointUnreachable(GeneratorError):
    """The LLM endpoint did not answer (refused, timed out, 5xx) after every retry."""


def make_generator(name: str, context: Context, **options):
    if name == "search":
        from ch20.generators.search import SearchGenerator
        return SearchGenerator(context, batch=options.get("batch", 4), seed=options.get("seed", 0))
    if name == "llm":
        from ch20.generators.llm import LLMGenerator
        return LLMGenerator(context, base_url=options.get("base_url"), model=options.get("model"),
                            api_key=options.get("api_key"), temperature=options.get("temperature", 0.6),
                            max_tokens=options.get("max_tokens", 8192), request_timeout=options.get("request_timeout", 900),
                            retries=options.get("retries", 2))
    raise GeneratorError(f"unknown generator {name!r}: use llm or search")
