import math

import pytest
import torch

from wattlm.bench.quality import accuracy, perplexity
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_classifier


def _ids(lm, n=300):
    ids = lm.tokenizer("The quick brown fox jumps over the lazy dog. " * 40).input_ids
    return ids[:n]


def test_perplexity_equals_full_sequence_loss_when_one_window(tiny_lm):
    ids = _ids(tiny_lm, 200)
    ppl = perplexity(tiny_lm.model, ids, max_length=256, stride=128)
    with torch.no_grad():
        loss = tiny_lm.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert ppl.tokens == len(ids) - 1
    assert ppl.value == pytest.approx(math.exp(loss.item()), rel=1e-5)


def test_overlapping_windows_score_every_token_once(tiny_lm):
    ids = _ids(tiny_lm, 300)
    ppl = perplexity(tiny_lm.model, ids, max_length=64, stride=16)
    assert ppl.tokens == len(ids) - 1
    assert (ppl.max_length, ppl.stride) == (64, 16)


def test_more_context_never_hurts_much_and_values_are_finite(tiny_lm):
    ids = _ids(tiny_lm, 300)
    a = perplexity(tiny_lm.model, ids, max_length=64, stride=64).value
    b = perplexity(tiny_lm.model, ids, max_length=64, stride=8).value
    assert math.isfinite(a) and math.isfinite(b) and a > 1 and b > 1


def test_window_callback_reports_progress(tiny_lm):
    calls = []
    perplexity(
        tiny_lm.model,
        _ids(tiny_lm, 100),
        max_length=32,
        stride=32,
        on_window=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1][0] == calls[-1][1] == len(calls)


def test_bad_stride_and_short_text(tiny_lm):
    with pytest.raises(WattlmError, match="stride"):
        perplexity(tiny_lm.model, _ids(tiny_lm), max_length=32, stride=64)
    with pytest.raises(WattlmError, match="at least 2 tokens"):
        perplexity(tiny_lm.model, [1], max_length=32, stride=16)


def test_accuracy_matches_argmax_and_rejects_bad_labels():
    clf = tiny_classifier()
    examples = [("good film", 0), ("bad film", 1), ("fine", 0), ("dull", 1)]
    with torch.no_grad():
        enc = clf.tokenizer([t for t, _ in examples], padding=True, return_tensors="pt")
        pred = clf.model(**enc).logits.argmax(-1).tolist()
    expected = sum(p == y for p, (_, y) in zip(pred, examples, strict=True)) / len(examples)
    assert accuracy(clf.model, clf.tokenizer, examples, batch_size=3) == expected
    with pytest.raises(WattlmError, match="outside the model's 2 classes"):
        accuracy(clf.model, clf.tokenizer, [("x", 5)])


def test_scoring_turns_dropout_off_and_restores_the_mode():
    from wattlm.bench.quality import accuracy, perplexity
    from wattlm.testing.tiny import tiny_causal_lm, tiny_classifier

    lm = tiny_causal_lm()
    lm.model.config.attention_dropout = 0.5
    for m in lm.model.modules():
        if hasattr(m, "attention_dropout"):
            m.attention_dropout = 0.5
    lm.model.train()
    ids = list(range(3, 60))
    a = perplexity(lm.model, ids, max_length=32, stride=16).value
    b = perplexity(lm.model, ids, max_length=32, stride=16).value
    assert a == b and lm.model.training  # deterministic (eval), then back to training
    clf = tiny_classifier()
    clf.model.train()
    data = [("good film", 1), ("bad film", 0)] * 4
    assert accuracy(clf.model, clf.tokenizer, data) == accuracy(clf.model, clf.tokenizer, data)
    assert clf.model.training


def test_perplexity_of_a_log_prob_function_equals_the_models():
    """A runtime scored through its log-probabilities gets the same windows and figure."""
    from wattlm.bench.fidelity import torch_log_probs
    from wattlm.testing.tiny import tiny_causal_lm

    lm = tiny_causal_lm(seed=3)
    ids = list(range(5, 90))
    direct = perplexity(lm.model, ids, max_length=32, stride=16)
    via_fn = perplexity(torch_log_probs(lm.model), ids, max_length=32, stride=16)
    assert via_fn.tokens == direct.tokens == len(ids) - 1
    assert via_fn.value == pytest.approx(direct.value, rel=1e-5)


def test_perplexity_of_a_uniform_scorer_is_the_vocabulary_size():
    vocab = 7
    uniform = lambda window: torch.full((len(window), vocab), -math.log(vocab))  # noqa: E731
    assert perplexity(uniform, [1, 2, 3, 4, 5], max_length=4, stride=2).value == pytest.approx(7)
