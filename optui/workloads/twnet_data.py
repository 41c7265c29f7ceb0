"""TwNet data: users as word-count vectors and every user pair as an edge with a follow strength.

Two sources:
- synthetic: a deterministic Twitter-like network in which follows depend on shared topics, so
  word weights can be learned (common words must be down-weighted, topic words kept);
- json: the report's own format, {"dataset": [{"user", "corpus", "followers", "followings"}]}.
Both produce a TwNetData with the report's conventions: strength 0.5 one-way, 1.0 mutual.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass
class TwNetData:
    counts: np.ndarray  # (users, vocab) float32 word counts after pruning
    edges: np.ndarray  # (pairs, 2) int32 user indices, i < j
    strength: np.ndarray  # (pairs,) float32 in {0, 0.5, 1}
    train: np.ndarray  # (n_train,) int32 edge indices
    test: np.ndarray  # (n_test,) int32 edge indices
    users: list[str] = field(default_factory=list)
    vocab: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        s = self.strength
        return {
            "users": int(self.counts.shape[0]),
            "tokens": int(self.counts.shape[1]),
            "edges": int(len(s)),
            "train_edges": int(len(self.train)),
            "test_edges": int(len(self.test)),
            "one_way": int((s == 0.5).sum()),
            "mutual": int((s == 1.0).sum()),
        }


def all_pairs(n_users: int) -> np.ndarray:
    i, j = np.triu_indices(n_users, k=1)
    return np.stack([i, j], axis=1).astype(np.int32)


def strengths(follows: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """follows[a, b] = a follows b. 0.5 for a one-way follow, 1.0 when mutual."""
    ab = follows[pairs[:, 0], pairs[:, 1]]
    ba = follows[pairs[:, 1], pairs[:, 0]]
    return np.where(ab & ba, 1.0, np.where(ab | ba, 0.5, 0.0)).astype(np.float32)


def split_edges(n_edges: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n_edges).astype(np.int32)
    n_train = int(round(train_fraction * n_edges))
    if n_train < 1 or n_train >= n_edges:
        raise DataError(f"data.train_fraction {train_fraction} leaves an empty train or test set "
                        f"for {n_edges} edges")
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def prune(counts: np.ndarray, min_count: int) -> np.ndarray:
    """Indices of the tokens kept: those occurring more than min_count times in all."""
    return np.flatnonzero(counts.sum(axis=0) > min_count)


def synthetic(users: int = 296, vocab: int = 3900, topics: int = 8, seed: int = 0,
              min_count: int = 3, train_fraction: float = 0.75) -> TwNetData:
    """A Twitter-like network: users talk about topics and mostly follow users on their topic.

    Every user also uses common words (Zipf-distributed, like stop words) that make all users look
    alike under all-ones weights; learning to down-weight them reveals the topic structure.
    """
    rng = np.random.default_rng(seed)
    n_common = max(20, vocab // 12)
    per_topic = max(10, (vocab - n_common) // topics)
    # Slightly more raw tokens than wanted: the rarest are pruned, as in the report.
    raw_topic = int(per_topic * 1.0)
    raw_vocab = n_common + topics * raw_topic

    home = rng.integers(0, topics, size=users)
    mixture = rng.dirichlet(np.full(topics, 0.3), size=users) * 0.35
    mixture[np.arange(users), home] += 0.65
    # Long histories: each user's topic profile shows in their counts, not just a few rare words.
    length = rng.lognormal(mean=np.log(10_000), sigma=0.5, size=users).astype(int) + 100
    common_share = rng.uniform(0.2, 0.4, size=users)

    zipf_common = 1.0 / np.arange(1, n_common + 1) ** 1.05
    zipf_topic = 1.0 / np.arange(1, raw_topic + 1) ** 0.9
    counts = np.zeros((users, raw_vocab), dtype=np.int64)
    for u in range(users):
        n_common_tokens = int(length[u] * common_share[u])
        counts[u, :n_common] = rng.multinomial(n_common_tokens, zipf_common / zipf_common.sum())
        per_topic_tokens = rng.multinomial(length[u] - n_common_tokens, mixture[u])
        for t in range(topics):
            lo = n_common + t * raw_topic
            counts[u, lo:lo + raw_topic] = rng.multinomial(per_topic_tokens[t], zipf_topic / zipf_topic.sum())

    # Follows depend on shared topics only (what word weights can express): likely within a home
    # topic, rare across; most follows are returned (reciprocity), giving the report's 0.5 / 1.0.
    affinity = mixture @ mixture.T
    affinity /= affinity.max()
    p = 0.9 * affinity ** 2
    np.fill_diagonal(p, 0.0)
    follows = rng.random((users, users)) < p
    back = rng.random((users, users)) < 0.8
    follows |= follows.T & back
    np.fill_diagonal(follows, False)

    keep = prune(counts, min_count)
    pairs = all_pairs(users)
    train, test = split_edges(len(pairs), train_fraction, seed + 1)
    names = [f"user{u:03d}" for u in range(users)]
    tokens = [f"common{t}" for t in range(n_common)] + [
        f"topic{t}_{w}" for t in range(topics) for w in range(raw_topic)]
    return TwNetData(
        counts=counts[:, keep].astype(np.float32), edges=pairs, strength=strengths(follows, pairs),
        train=train, test=test, users=names, vocab=[tokens[k] for k in keep],
    )


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _tokenizer():
    # TweetTokenizer is rule-based: it needs no downloaded NLTK data, so it works offline.
    from nltk.tokenize import TweetTokenizer

    return TweetTokenizer(preserve_case=False, reduce_len=True)


def load_json(path: str | Path, min_count: int = 3, train_fraction: float = 0.75,
              seed: int = 0) -> TwNetData:
    """The report's format: {"dataset": [{"user", "corpus", "followers", "followings"}]}."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such TwNet data file (data.path)")
    if not p.is_file():
        raise DataError(f"{p}: data.path must be a JSON file, not a folder")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    # ValueError covers bad syntax, bad UTF-8 and over-long numbers; deep nesting overflows.
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{p}: not valid JSON: {_first_line(exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("dataset"), list):
        raise DataError(f'{p}: expected an object {{"dataset": [...]}} holding a list of users')
    entries = doc["dataset"]
    users: list[str] = []
    corpora: list[str] = []
    links: list[tuple[list, list]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DataError(f"{p}: dataset[{i}] must be an object with user, corpus, followers, followings")
        missing = [k for k in ("user", "corpus", "followers", "followings") if k not in entry]
        if missing:
            raise DataError(f"{p}: dataset[{i}] lacks {', '.join(missing)}")
        user, corpus = entry["user"], entry["corpus"]
        if isinstance(corpus, list):  # a pre-tokenised corpus is accepted too
            corpus = " ".join(str(t) for t in corpus)
        if not isinstance(corpus, str):
            raise DataError(f"{p}: dataset[{i}].corpus must be a string or a list of tokens")
        if not _is_id(user):
            raise DataError(f"{p}: dataset[{i}].user must be a string (or an integer) id, got {user!r}")
        for key in ("followers", "followings"):
            if not isinstance(entry[key], list) or not all(_is_id(u) for u in entry[key]):
                raise DataError(f"{p}: dataset[{i}].{key} must be a list of user ids (strings or "
                                f"integers)")
        user = str(user)
        if user in users:
            raise DataError(f"{p}: dataset[{i}]: user {user!r} appears twice")
        users.append(user)
        corpora.append(corpus)
        links.append(([str(u) for u in entry["followers"]], [str(u) for u in entry["followings"]]))
    # Three users make three edges: the fewest that split into a train and a test set.
    if len(users) < 3:
        raise DataError(f"{p}: needs at least 3 users (their pairs are split into train and test "
                        f"edges), found {len(users)}")

    tokenize = _tokenizer().tokenize
    user_counts = [Counter(tokenize(c)) for c in corpora]
    total = Counter()
    for c in user_counts:
        total.update(c)
    vocab = sorted(t for t, n in total.items() if n > min_count)
    if not vocab:
        raise DataError(f"{p}: no token occurs more than {min_count} times (data.min_count); "
                        f"the corpus is empty or too small")
    index = {t: k for k, t in enumerate(vocab)}
    counts = np.zeros((len(users), len(vocab)), dtype=np.float32)
    for u, c in enumerate(user_counts):
        for tok, n in c.items():
            k = index.get(tok)
            if k is not None:
                counts[u, k] = n

    position = {u: i for i, u in enumerate(users)}
    follows = np.zeros((len(users), len(users)), dtype=bool)
    unknown: set[str] = set()
    for u, (followers, followings) in enumerate(links):
        for other in followers:
            if other in position:
                follows[position[other], u] = True
            else:
                unknown.add(other)
        for other in followings:
            if other in position:
                follows[u, position[other]] = True
            else:
                unknown.add(other)
    np.fill_diagonal(follows, False)
    notes = []
    if unknown:
        sample = ", ".join(sorted(unknown)[:5])
        notes.append(f"{p}: skipped follows of {len(unknown)} user(s) not in the data set ({sample}"
                     f"{', ...' if len(unknown) > 5 else ''})")
    empty = int((counts.sum(axis=1) == 0).sum())
    if empty:
        notes.append(f"{p}: {empty} user(s) have no token left after pruning; their similarity is 0")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    pairs = all_pairs(len(users))
    train, test = split_edges(len(pairs), train_fraction, seed)
    return TwNetData(counts=counts, edges=pairs, strength=strengths(follows, pairs), train=train,
                     test=test, users=users, vocab=vocab, warnings=notes)
