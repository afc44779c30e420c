"""Which examples must stay on one side of a split, and what leaked when they did not.

Built on `engine.data.near_duplicates`, so "leakage" here means exactly what lint reports as
exact duplicates, near-duplicates and same-prompt contradictions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.data.formats import Example
from engine.data.near_duplicates import (
    answer_key,
    content_hash,
    exact_key,
    example_signatures,
    near_duplicate_groups,
    prompt_key,
)

SAME_PROMPT_SHARE = 0.05
"""Same-prompt groups up to this share of the data are kept together; a bigger one (one
stock prompt with many answers, say) would swallow the validation set, so it may straddle
and shows up in the leakage report instead."""
_PAIRS_KEPT = 200  # pairs listed per kind in the manifest; the counts are always complete


@dataclass(frozen=True)
class LeakageReport:
    """Validation examples that also occur in training, as (val line, train line) pairs."""

    exact: int
    near: int
    same_prompt: int
    exact_pairs: list[tuple[int, int]]
    near_pairs: list[tuple[int, int]]
    same_prompt_pairs: list[tuple[int, int]]

    @property
    def is_clean(self) -> bool:
        return not (self.exact or self.near or self.same_prompt)

    def summary(self) -> str:
        parts = [
            f"{self.exact} exact duplicate(s)" if self.exact else "",
            f"{self.near} near-duplicate(s)" if self.near else "",
            f"{self.same_prompt} shared prompt(s) with a different answer"
            if self.same_prompt
            else "",
        ]
        return ", ".join(p for p in parts if p) or "none"


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, members: Sequence[int]) -> None:
        root = self.find(members[0])
        for other in members[1:]:
            self.parent[self.find(other)] = root


def leakage_groups(examples: Sequence[Example]) -> list[list[int]]:
    """All examples partitioned into groups that must share a side, ordered by first index."""
    n = len(examples)
    links = _UnionFind(n)
    for members in _same(content_hash(e) for e in examples).values():
        links.union(members)
    for group in near_duplicate_groups(example_signatures(examples)):
        links.union(group)
    cap = max(2, int(SAME_PROMPT_SHARE * n))
    for members in _same(hash(prompt_key(e)) for e in examples).values():
        if len(members) <= cap:
            links.union(members)
    groups: dict[int, list[int]] = {}
    for index in range(n):
        groups.setdefault(links.find(index), []).append(index)
    return sorted(groups.values(), key=lambda g: g[0])


def _same(keys: Iterable[int]) -> dict[int, list[int]]:
    """key -> indices, for keys that occur more than once."""
    seen: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        seen.setdefault(key, []).append(index)
    return {k: v for k, v in seen.items() if len(v) > 1}


def check_leakage(train: Sequence[Example], val: Sequence[Example]) -> LeakageReport:
    """Validation examples that duplicate, nearly duplicate, or share a prompt with training."""
    exact_train: dict[bytes, int] = {}
    for example in train:
        exact_train.setdefault(exact_key(example), example.line)
    exact = [(e.line, exact_train[k]) for e in val if (k := exact_key(e)) in exact_train]
    flagged = {pair[0] for pair in exact}
    near = []
    both = [*train, *val]
    for group in near_duplicate_groups(example_signatures(both)):
        train_side = [i for i in group if i < len(train)]
        for index in (i for i in group if i >= len(train)):
            line = both[index].line
            if train_side and line not in flagged:
                near.append((line, both[train_side[0]].line))
                flagged.add(line)
    prompts: dict[str, tuple[str, int]] = {}
    for example in train:
        prompts.setdefault(prompt_key(example), (answer_key(example), example.line))
    same = []
    for example in val:
        match = prompts.get(prompt_key(example))
        if match and match[0] != answer_key(example) and example.line not in flagged:
            same.append((example.line, match[1]))
    return LeakageReport(
        len(exact),
        len(near),
        len(same),
        exact[:_PAIRS_KEPT],
        near[:_PAIRS_KEPT],
        same[:_PAIRS_KEPT],
    )
