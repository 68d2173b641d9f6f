"""A prompt prefix every row of a batch shares (the warm-prompt checkpoint's system prompt) is computed once; each
row's answer is the one it gets alone, greedy in float32, and its prompt counts the same tokens."""

import torch

from resources.local_lm import LocalLMResource, load_model
from resources.shared_prefix import MIN_SHARED_TOKENS, common_prefix_length, generation_inputs
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

SYSTEM = " ".join(["Be warm, kind and encouraging, and say so."] * 12)  # well over MIN_SHARED_TOKENS tokens
QUESTIONS = ["hello friend", "what is two plus four, and why is it so?", "how are you", "tell me a story about a cat"]


def test_common_prefix_leaves_each_row_a_token_of_its_own():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter row keeps its last token
    assert common_prefix_length([[7, 1], [8, 1]]) == 0


def test_a_shared_system_prompt_is_computed_once_and_every_row_answers_as_alone(tiny_chat_model):
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS]
    model, tokenizer = load_model("local", str(tiny_chat_model), dtype="float32")
    shared = generation_inputs(model, tokenizer, chats)
    assert shared["cache"].get_seq_length() >= MIN_SHARED_TOKENS  # the prefix path is taken...
    assert "cache" not in generation_inputs(model, tokenizer, [chat[1:] for chat in chats])  # ...only with a prefix

    lm = LocalLMResource(source_kind="local", source=str(tiny_chat_model), dtype="float32", batch_max_chars=0)
    requests = [ChatRequest.build(chat, model="tiny", config=GenerateConfig(temperature=0.0, max_tokens=12))
                for chat in chats]
    together = lm.generate(requests)
    alone = [lm.generate([request])[0] for request in requests]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.prompt_tokens for r in together] == [r.prompt_tokens for r in alone]

    # The scores of every step, row by row, as each row alone gets them (the tiny model's greedy words barely vary,
    # its scores do: a position or mask slip shows here).
    def scores(inputs):
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=3, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
        return torch.stack(out.scores, dim=1)  # rows x steps x vocabulary

    with torch.no_grad():
        batched = scores(generation_inputs(model, tokenizer, chats))
        single = torch.cat([scores(generation_inputs(model, tokenizer, [chat])) for chat in chats])
    assert not torch.allclose(single[0], single[1], atol=1e-3)  # the questions do change the scores
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)
