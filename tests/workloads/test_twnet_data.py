"""TwNet data: the report's JSON format (tokens, pruning, ground truth, split, errors) and the
synthetic generator (determinism, the report's sizes, and that its word weights are learnable)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optui.study import presets
from optui.errors import DataError, PresetError
from optui.workloads import twnet
from optui.workloads.twnet_data import all_pairs, load_json, split_edges, strengths, synthetic

# Four users. Tokens (TweetTokenizer, lower-cased, runs of a letter cut to three):
#   alice: hello hello #jax rocks :-) sooo good
#   bob:   #jax is great , hello @alice :-)
#   carol: rare words only here great sooo
#   dave:  good good good
# Totals: good 4, hello 3, #jax 2, :-) 2, great 2, sooo 2, every other token 1.
SMALL = {"dataset": [
    {"user": "alice", "corpus": "Hello hello #JAX rocks :-) sooooo good",
     "followers": ["bob", "zed"], "followings": ["bob", "carol"]},
    {"user": "bob", "corpus": "#jax is great, hello @alice :-)", "followers": ["alice"], "followings": ["alice"]},
    {"user": "carol", "corpus": "rare words only here great sooooooooo", "followers": ["alice"], "followings": []},
    {"user": "dave", "corpus": "good good good", "followers": [], "followings": ["alice"]},
]}


def write_json(tmp_path, doc, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def load_small(tmp_path, **kwargs):
    with pytest.warns(UserWarning, match="zed"):
        return load_json(write_json(tmp_path, SMALL), **kwargs)


def column(d, token):
    return d.counts[:, d.vocab.index(token)].tolist()


# --- the JSON loader ----------------------------------------------------------------------------

def test_tokenisation_needs_no_nltk_data(tmp_path, monkeypatch):
    import nltk.data

    def no_data(*args, **kwargs):
        raise LookupError("no NLTK data on this machine")

    monkeypatch.setattr(nltk.data, "find", no_data)
    monkeypatch.setattr(nltk.data, "load", no_data)
    d = load_small(tmp_path, min_count=1)
    assert d.vocab == ["#jax", ":-)", "good", "great", "hello", "sooo"]
    assert d.users == ["alice", "bob", "carol", "dave"]
    assert column(d, "hello") == [2, 1, 0, 0]
    assert column(d, "good") == [1, 0, 0, 3]
    assert column(d, "sooo") == [1, 0, 1, 0]  # "sooooo" and "sooooooooo" are one token
    assert column(d, "#jax") == [1, 1, 0, 0]  # case folded
    assert d.counts.dtype == np.float32


def test_pruning_drops_tokens_at_or_below_min_count(tmp_path):
    d = load_small(tmp_path, min_count=2)
    assert d.vocab == ["good", "hello"]  # 4 and 3 occurrences; the 2s go
    d = load_small(tmp_path, min_count=3)
    assert d.vocab == ["good"]
    assert d.counts[:, 0].tolist() == [1, 0, 0, 3]
    # Users left without a token are noted: their similarity is 0, not NaN.
    assert any("2 user(s) have no token left" in w for w in d.warnings)


def test_min_count_zero_keeps_every_token(tmp_path):
    d = load_small(tmp_path, min_count=0)
    assert len(d.vocab) == 14
    assert d.counts.sum() == 7 + 7 + 6 + 3


def test_pretokenised_corpus_is_accepted(tmp_path):
    doc = {"dataset": [
        {"user": "a", "corpus": ["Word", "word", "x"], "followers": [], "followings": []},
        {"user": "b", "corpus": ["word"], "followers": [], "followings": []},
        {"user": "c", "corpus": [], "followers": [], "followings": []},
    ]}
    d = load_json(write_json(tmp_path, doc), min_count=1)
    assert d.vocab == ["word"] and d.counts[:, 0].tolist() == [2, 1, 0]


def test_ground_truth_and_edges(tmp_path):
    d = load_small(tmp_path, min_count=1)
    # Every pair of users is an edge, i < j.
    assert d.edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    strength = dict(zip(map(tuple, d.edges.tolist()), d.strength.tolist()))
    assert strength[(0, 1)] == 1.0  # alice and bob follow each other
    assert strength[(0, 2)] == 0.5  # alice follows carol
    assert strength[(0, 3)] == 0.5  # dave follows alice (known from dave's side only)
    assert strength[(1, 2)] == strength[(1, 3)] == strength[(2, 3)] == 0.0
    assert d.describe()["mutual"] == 1 and d.describe()["one_way"] == 2


def test_unknown_follower_is_skipped_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"1 user\(s\) not in the data set \(zed\)"):
        d = load_json(write_json(tmp_path, SMALL), min_count=1)
    assert any("zed" in w for w in d.warnings)
    assert d.counts.shape[0] == 4  # zed did not become a user


def test_warnings_reach_the_workload_info(tmp_path):
    d = load_small(tmp_path, min_count=1)
    w = twnet.make_workload(d)
    assert any("zed" in note for note in w.info["warnings"])
    assert w.info["users"] == 4 and w.info["edges"] == 6


def many_users(n=14):
    users = [f"u{i}" for i in range(n)]
    return {"dataset": [
        {"user": u, "corpus": f"common words t{i % 3} t{i % 3} t{i % 3} t{i % 3}",
         "followers": [users[(i + 1) % n]], "followings": [users[(i + 2) % n]]}
        for i, u in enumerate(users)]}


def test_split_is_seeded(tmp_path):
    path = write_json(tmp_path, many_users())
    a = load_json(path, min_count=1, train_fraction=0.75, seed=3)
    b = load_json(path, min_count=1, train_fraction=0.75, seed=3)
    c = load_json(path, min_count=1, train_fraction=0.75, seed=4)
    n_edges = 14 * 13 // 2
    assert len(a.train) == round(0.75 * n_edges) and len(a.train) + len(a.test) == n_edges
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.train, c.train)
    # A partition of the edges.
    assert sorted(np.concatenate([a.train, a.test]).tolist()) == list(range(n_edges))


def test_split_edges_refuses_an_empty_side():
    with pytest.raises(DataError, match="train_fraction"):
        split_edges(3, 0.99, 0)
    train, test = split_edges(100, 0.75, 0)
    assert (len(train), len(test)) == (75, 25)


def test_strengths_from_a_follow_matrix():
    follows = np.zeros((3, 3), bool)
    follows[0, 1] = follows[1, 0] = True  # mutual
    follows[2, 0] = True  # one way, from the higher index
    s = strengths(follows, all_pairs(3))
    assert s.tolist() == [1.0, 0.5, 0.0]


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ('[{"user": "a"}]', '{"dataset": [...]}'),
    ('{"users": []}', '{"dataset": [...]}'),
    ('{"dataset": {"user": "a"}}', '{"dataset": [...]}'),
    ('{"dataset": [1, 2]}', "dataset[0] must be an object"),
    ('{"dataset": [{"user": "a", "corpus": "x"}]}', "dataset[0] lacks followers, followings"),
    ('{"dataset": [{"user": "a", "corpus": 5, "followers": [], "followings": []}]}', "corpus must be"),
    ('{"dataset": [{"user": "a", "corpus": "x", "followers": "b", "followings": []}]}',
     "followers must be a list"),
])
def test_malformed_files(tmp_path, content, fragment):
    path = write_json(tmp_path, content)
    with pytest.raises(DataError) as info:
        load_json(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_duplicate_user(tmp_path):
    doc = {"dataset": [SMALL["dataset"][0], SMALL["dataset"][0]]}
    with pytest.raises(DataError, match="'alice' appears twice"):
        load_json(write_json(tmp_path, doc))


def test_fewer_than_two_users(tmp_path):
    path = write_json(tmp_path, {"dataset": [SMALL["dataset"][3]]})
    with pytest.raises(DataError, match=r"at least \d users") as info:
        load_json(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such TwNet data file"):
        load_json(tmp_path / "absent.json")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"dataset": ["caf\xe9"]}')
    with pytest.raises(DataError, match="not valid JSON"):
        load_json(path)


def test_no_token_survives_pruning(tmp_path):
    with pytest.raises(DataError, match="min_count"):
        load_json(write_json(tmp_path, SMALL), min_count=100)


def test_json_source_through_a_preset(tmp_path, write_preset):
    data = write_json(tmp_path, many_users())
    path = write_preset(text=None, data={"source": "json", "path": str(data), "min_count": 1})
    # users/vocab/topics belong to the synthetic source only.
    with pytest.raises(PresetError, match="data.users applies only"):
        presets.load(path)
    text = path.read_text()
    for line in ("users = 30\n", "vocab = 200\n", "topics = 3\n"):
        text = text.replace(line, "")
    path.write_text(text)
    study = presets.load(path)
    d = twnet.load_data(study.data)
    assert d.users[0] == "u0" and d.counts.shape == (14, len(d.vocab))


# --- the synthetic generator --------------------------------------------------------------------

def test_synthetic_is_deterministic():
    a = synthetic(30, 200, 3, seed=5)
    b = synthetic(30, 200, 3, seed=5)
    c = synthetic(30, 200, 3, seed=6)
    for field in ("counts", "edges", "strength", "train", "test"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.vocab == b.vocab
    assert not np.array_equal(a.counts, c.counts) or not np.array_equal(a.strength, c.strength)
    assert not np.array_equal(a.counts, c.counts)
    assert not np.array_equal(a.train, c.train)


def test_synthetic_has_the_reports_sizes():
    d = synthetic()
    info = d.describe()
    assert info["users"] == 296
    assert info["edges"] == 43_660 == 296 * 295 // 2
    assert abs(info["tokens"] - 3900) <= 0.05 * 3900, info
    assert (info["train_edges"], info["test_edges"]) == (32_745, 10_915)
    assert set(np.unique(d.strength).tolist()) == {0.0, 0.5, 1.0}
    assert info["one_way"] > 0 and info["mutual"] > 0
    assert d.counts.dtype == np.float32 and (d.counts >= 0).all()
    # Pruned: every kept token occurs more than min_count (3) times.
    assert d.counts.sum(axis=0).min() > 3
    # Every user says something.
    assert (d.counts.sum(axis=1) > 0).all()
    assert len(d.vocab) == d.counts.shape[1] and len(d.users) == 296


def test_synthetic_min_count_prunes():
    loose = synthetic(30, 200, 3, seed=0, min_count=0)
    threshold = int(np.median(loose.counts.sum(axis=0)))
    strict = synthetic(30, 200, 3, seed=0, min_count=threshold)
    assert strict.counts.shape[1] < loose.counts.shape[1]
    assert strict.counts.sum(axis=0).min() > threshold


def _learn(users, vocab, topics, steps, lr, batch_size, replicates=2):
    from optui.engine.core import GroupRunner, member_keys, run_group
    from optui.workloads.base import Strategy

    w = twnet.make_workload(synthetic(users, vocab, topics, seed=0))
    runner = GroupRunner(w, "adam", batch_size, Strategy(scan=True, vmap_replicates=True))
    hp = {"learning_rate": np.full(replicates, lr, np.float32), "b1": np.full(replicates, 0.9, np.float32),
          "b2": np.full(replicates, 0.999, np.float32), "eps": np.full(replicates, 1e-8, np.float32)}
    outs = [out for out, _ in run_group(runner, member_keys(0, replicates), hp, steps, 2)]
    return outs[0].eval, outs[-1].eval


def test_tiny_synthetic_weights_are_learnable():
    before, after = _learn(30, 200, 3, steps=100, lr=0.01, batch_size=32)
    # Before training every replicate has all-ones weights: the same loss.
    assert np.allclose(before["test_loss"], before["test_loss"][0])
    assert np.all(after["train_loss"] < 0.9 * before["train_loss"]), (before, after)
    assert np.all(after["test_loss"] < 0.9 * before["test_loss"]), (before, after)


@pytest.mark.slow
def test_synthetic_weights_are_learnable_at_the_reports_size():
    # All-ones weights score about 0.59 on the test edges here; learned weights reach about 0.41.
    before, after = _learn(296, 3900, 8, steps=600, lr=0.02, batch_size=256)
    assert np.all(after["test_loss"] < 0.9 * before["test_loss"]), (before, after)
    assert np.all(after["train_loss"] < 0.85 * before["train_loss"]), (before, after)


def test_folder_as_data_path(tmp_path):
    with pytest.raises(DataError, match="data.path"):
        load_json(tmp_path)


@pytest.mark.filterwarnings("ignore:.*not in the data set")
def test_two_users_are_refused_naming_the_file(tmp_path):
    path = write_json(tmp_path, {"dataset": SMALL["dataset"][:2]})
    with pytest.raises(DataError) as info:
        load_json(path, min_count=0)
    assert str(path) in str(info.value)
