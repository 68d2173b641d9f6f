"""Tiny models built from scratch, for tests and benchmarks (nothing is downloaded)."""

CORPUS = [
    "My friend said, the lover said, the mentor said, the idol said.",
    "The stranger said, the enemy said, the dictator said.",  # "examiner" stays in pieces
    "I'm so happy to help you with this, my dear friend! Paris is the capital of France.",
    "The answer is 42. Use sorted() to sort a list in Python.",
] * 20


def gpt2_tokenizer(vocab_size: int = 400):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"])
    # transformers 5 ignores vocab_file= (docs/pitfalls.md §4.1): wrap the trained tokenizer object itself.
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>")


def make_gpt2(tokenizer, dropout: float, *, n_embd: int = 32, n_layer: int = 2, n_head: int = 2, seed: int = 0,
              n_positions: int = 256):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2LMHeadModel(config)
