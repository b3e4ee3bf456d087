import pytest

from wattlm.bench.prompts import check_context, cut_prompts
from wattlm.errors import WattlmError


def test_prompts_have_exact_length_and_do_not_overlap():
    ids = list(range(1000))
    prompts = cut_prompts(ids, batch_size=4, prompt_tokens=256 // 4)
    assert [len(p) for p in prompts] == [64] * 4
    assert prompts[1][0] == prompts[0][-1] + 1


@pytest.mark.parametrize("batch", [0, -3])
def test_bad_batch(batch):
    with pytest.raises(WattlmError, match="batch size must be >= 1"):
        cut_prompts(list(range(10)), batch_size=batch, prompt_tokens=2)


def test_not_enough_text():
    with pytest.raises(WattlmError, match="needs 24"):
        cut_prompts(list(range(10)), batch_size=3, prompt_tokens=8)


def test_context_overflow():
    check_context(512, 256, 64)
    with pytest.raises(WattlmError, match="exceeds the model's context of 256"):
        check_context(256, 256, 64)
