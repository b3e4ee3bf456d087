import math

import pytest
import torch

from wattlm.bench.fidelity import (
    PairedStop,
    Reference,
    SharedWindows,
    compare,
    load_reference,
    paired_nll,
    reference_distribution,
    save_reference,
    torch_log_probs,
)
from wattlm.errors import WattlmError
from wattlm.testing.tiny import tiny_causal_lm


def _fixed(log_probs: torch.Tensor):
    """A candidate that returns the same [window, vocab] log-probabilities for any window."""
    return lambda window: log_probs[: len(window)]


def test_kl_and_top1_match_a_hand_computed_case():
    # vocab 2, window 3, context 1 -> 2 scored positions
    p = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]))
    q = torch.log(torch.tensor([[0.5, 0.5], [0.6, 0.4], [0.7, 0.3]]))
    ref = reference_distribution(_fixed(p), [7, 8, 9], window=3, context=1)
    fid = compare(ref, _fixed(q))
    kl1 = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    kl2 = 0.2 * math.log(0.2 / 0.7) + 0.8 * math.log(0.8 / 0.3)
    assert fid.tokens == 2
    assert fid.kl_mean == pytest.approx((kl1 + kl2) / 2, abs=2e-3)  # float16 reference
    assert fid.top1_agreement == 0.5  # position 1 agrees (token 0), position 2 does not


def test_a_perturbed_model_drifts_and_the_original_does_not():
    lm = tiny_causal_lm(seed=1)
    ids = list(range(3, 99))
    ref = reference_distribution(lm.model, ids, window=32, context=8)
    assert ref.scored_tokens == 3 * 24
    assert compare(ref, lm.model).kl_mean < 1e-4
    with torch.no_grad():
        for p in lm.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    drifted = compare(ref, lm.model)
    assert drifted.kl_mean > 1e-3 and drifted.kl_p99 >= drifted.kl_mean


def test_reference_round_trips_and_a_corrupt_file_is_one_error(tmp_path):
    lm = tiny_causal_lm()
    ref = reference_distribution(lm.model, list(range(3, 40)), window=16, context=4)
    path = save_reference(ref, tmp_path / "ref.safetensors")
    back = load_reference(path)
    assert back.windows == ref.windows and back.context == 4
    assert torch.equal(back.log_probs, ref.log_probs)
    assert not list(tmp_path.glob("*.partial"))
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(WattlmError, match="cannot read the fidelity reference"):
        load_reference(path)


def test_bad_windows_and_vocab_mismatch_are_clear_errors():
    with pytest.raises(WattlmError, match="at least 16 tokens"):
        reference_distribution(_fixed(torch.zeros(16, 4)), [1, 2, 3], window=16, context=4)
    with pytest.raises(WattlmError, match="context must be in"):
        reference_distribution(_fixed(torch.zeros(4, 4)), [1, 2, 3, 4], window=4, context=4)
    ref = Reference(((1, 2, 3),), 1, torch.zeros(2, 4, dtype=torch.float16))
    with pytest.raises(WattlmError, match="reference.s tokenizer and vocabulary"):
        compare(ref, _fixed(torch.zeros(3, 5)))


def test_torch_log_probs_are_normalised():
    fn = torch_log_probs(tiny_causal_lm().model)
    assert torch.allclose(fn([4, 5, 6]).exp().sum(-1), torch.ones(3), atol=1e-5)


def test_paired_nll_is_the_loss_of_the_next_token_on_both_sides():
    # window (7, 8, 9, 10), context 1: positions 1, 2 predict tokens 9, 10 (position 3
    # predicts a token outside the window)
    vocab = 12
    p = torch.log_softmax(torch.arange(4 * vocab, dtype=torch.float32).reshape(4, vocab) / 7, -1)
    q = torch.log_softmax(torch.ones(4, vocab), -1)
    ref = reference_distribution(_fixed(p), [7, 8, 9, 10], window=4, context=1)
    ours, theirs = paired_nll(ref, 0, q)
    assert ours.tolist() == pytest.approx([math.log(vocab)] * 2)
    assert theirs.tolist() == pytest.approx([-p[1, 9].item(), -p[2, 10].item()], abs=2e-3)


def test_a_watch_sees_each_reference_window_once_and_can_stop_the_scoring():
    lm = tiny_causal_lm(seed=1)
    ids = list(range(3, 99))
    ref = reference_distribution(lm.model, ids, window=32, context=8)
    calls, seen = [], []

    def fn(window):
        calls.append(tuple(window))
        return torch_log_probs(lm.model)(window)

    def watch(nll, base_nll):
        seen.append((nll - base_nll).abs().max().item())
        raise PairedStop(1.5, nll.numel())

    with pytest.raises(PairedStop) as stop:
        compare(ref, SharedWindows(fn, ref, watch))
    assert stop.value.tokens == 32 - 8 - 1 and stop.value.ratio == 1.5
    assert len(calls) == 1 and seen[0] < 1e-2  # the same model: equal losses (float16 ref)
