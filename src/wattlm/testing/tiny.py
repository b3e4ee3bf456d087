"""Tiny in-memory models and a tokenizer for fast, offline tests.

Weights are deterministic (seeded), nothing is downloaded.

Example:
    >>> lm = tiny_causal_lm()
    >>> lm.model.config.num_hidden_layers
    2
"""

from __future__ import annotations

import functools

import torch

from wattlm.models.load import LoadedModel

TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog. Energy is measured in joules; power in "
    "watts. A language model predicts the next token from the tokens before it. Perplexity "
    "is the exponential of the mean negative log-likelihood per token. "
) * 4


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    return tok.to_str()


def tiny_tokenizer():
    """A byte-level BPE tokenizer (~320 tokens) trained on a fixed paragraph."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )


def tiny_causal_lm(*, seed: int = 0, layers: int = 2, max_positions: int = 256) -> LoadedModel:
    """A 2-layer Llama (grouped-query attention, tied embeddings) with a tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return LoadedModel(model, tokenizer, spec="tiny-llama", task="causal-lm")


def varied_tiny_causal_lm() -> LoadedModel:
    """The tiny Llama with larger weights (normal, std 0.2), so greedy tokens differ step to
    step: what an exported runtime's greedy tokens are checked against."""
    lm = tiny_causal_lm(seed=3)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in lm.model.parameters():
            if p.dim() == 2:
                p.normal_(std=0.2)
    return lm


def tiny_classifier(*, seed: int = 0, num_labels: int = 2) -> LoadedModel:
    """A 2-layer BERT sequence classifier with a tiny tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    return LoadedModel(model, tokenizer, spec="tiny-bert", task="sequence-classification")
