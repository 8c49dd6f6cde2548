"""The search generator: Triton kernels from parameterised templates, steered by measured times.

It needs no model. The first batch is the plain configuration of the problem family's template plus
random valid ones. Every later batch is an evolutionary step: the fastest correct configurations so
far are the parents (selection by the verifier's reward, then by measured time: successive halving
keeps the better half), and each child changes one or two knobs of a parent to a neighbouring value.
Configurations already tried are never proposed again; when the neighbourhood is exhausted, random
untried ones fill the batch.
"""
from __future__ import annotations

import math
import random

from ch20.generators import Attempt, Context, GeneratorError, Proposal
from ch20.generators.templates import template_for
from ch20.reward import reward_from_verdict


class SearchGenerator:
    name = "search"

    def __init__(self, context: Context, batch: int = 4, seed: int = 0):
        try:
            self.template = template_for(context.problem.family)
        except LookupError as exc:
            raise GeneratorError(str(exc)) from exc
        self.context = context
        self.batch = max(1, batch)
        self.rng = random.Random(seed)
        self.space = self.template.space(context.device)
        self.tried: set[tuple] = set()

    def _key(self, params: dict) -> tuple:
        return tuple(sorted(params.items()))

    def _ok(self, params: dict) -> bool:
        return self._key(params) not in self.tried and self.template.valid(params, self.context.device)

    def _random(self) -> dict | None:
        for _ in range(200):
            p = {k: self.rng.choice(v) for k, v in self.space.items()}
            if self._ok(p):
                return p
        return None

    def _mutate(self, parent: dict) -> dict | None:
        for _ in range(50):
            child = dict(parent)
            for knob in self.rng.sample(sorted(self.space), k=min(len(self.space), self.rng.choice([1, 1, 2]))):
                choices = self.space[knob]
                i = choices.index(child[knob]) if child[knob] in choices else 0
                j = min(len(choices) - 1, max(0, i + self.rng.choice([-1, 1])))
                child[knob] = choices[j] if j != i else self.rng.choice(choices)
            if self._ok(child):
                return child
        return None

    def _parents(self, history: list[Attempt]) -> list[dict]:
        """The better half of the correct configurations (at least one), best first."""
        scored = [(-reward_from_verdict(a.verdict), a.verdict.get("candidate_ms") or math.inf, i, a.proposal.params)
                  for i, a in enumerate(history) if a.proposal.params and a.verdict.get("correct")]
        scored.sort()
        return [p for *_, p in scored[:max(1, math.ceil(len(scored) / 2))]]

    def propose(self, history: list[Attempt]) -> list[Proposal]:
        for a in history:
            if a.proposal.params:
                self.tried.add(self._key(a.proposal.params))
        configs: list[dict] = []

        def add(p):
            if p is not None and self._ok(p):
                configs.append(p)
                self.tried.add(self._key(p))

        if not history:
            add(dict(self.template.PLAIN))
        parents = self._parents(history)
        i = 0
        while parents and len(configs) < self.batch and i < 4 * self.batch:
            add(self._mutate(parents[i % len(parents)]))
            i += 1
        while len(configs) < self.batch:
            p = self._random()
            if p is None:
                break
            add(p)
        return [Proposal(source=self.template.render(p, self.context.problem), label=self.template.label(p), params=p)
                for p in configs]
