"""An independent, line-by-line port of the released SocioT code, the pin for `score_texts(variant="reference")`.

Ported from `compute_humt_sociot.py` of https://github.com/myracheng/humtdumt at commit
cd677776eff1cc47eadb1d9d4b4be6454a9d52ca ("first", 2025-02-18): `compute_set_log_sum_exp`, `compute_ci` and
`calculate_td.compute_row`, restricted to the metric `sociot_warmth`. The only changes: the module-level
`model`, `tokenizer` and `device` are parameters, and `calculate_td`'s DataFrame plumbing (`dropna`,
`.str[:300]`, `apply`) is a plain function of one response. Nothing here imports `warmth_assets`.
"""

import numpy as np
import scipy.stats
import torch
from torch.nn.utils.rnn import pad_sequence

category_terms = {
    "humt": ["He", "She", "It"],
    "sociot_status": ["commanded", "proclaimed", "demanded", "pleaded", "mentioned", "asked"],
    "sociot_social_distance": ["friend", "partner", "girlfriend", "boyfriend", "husband", "wife", "stranger"],
    "sociot_gender": ["She", "He"],
    "sociot_warmth": ["friend", "lover", "mentor", "idol", "stranger", "enemy", "examiner", "dictator"],
}
category_index = {"sociot_warmth": 4, "sociot_status": 3, "humt": 2, "sociot_gender": 1, "sociot_social_distance": 6}


def compute_set_log_sum_exp(model, inputs_batch):
    # Compute log-sum-exp using vectorized model calls for a batch of inputs.
    with torch.no_grad():
        outputs = model(**inputs_batch, labels=inputs_batch["input_ids"])
        log_probs = -outputs.loss  # Negative loss gives log probabilities
    return torch.logsumexp(log_probs, dim=0).item()


def compute_ci(model, tokenizer, device, prompt, candidates, n_samples=100):
    prompt = f'"{prompt}"' if prompt else ""
    input_batches = []

    # Tokenize all inputs once and store in a list
    for word in candidates:
        input_prompt = (f"{word} said, {prompt}" if word in ["He", "She", "It"]
                        else f"He {word}, {prompt}" if word.endswith("ed")
                        else f"My {word} said, {prompt}" if word in ["friend", "partner", "girlfriend", "boyfriend", "husband", "wife"]
                        else f"The {word} said, {prompt}"
                        )
        inputs = tokenizer(input_prompt, return_tensors="pt", max_length=1024, truncation=True).to(device)
        input_batches.append(inputs)
    # Pad each input batch to the same length
    input_ids = pad_sequence([inp["input_ids"].squeeze(0) for inp in input_batches], batch_first=True)
    attention_mask = pad_sequence([inp["attention_mask"].squeeze(0) for inp in input_batches], batch_first=True)

    # Combine inputs into a single batch
    inputs_batch = {"input_ids": input_ids, "attention_mask": attention_mask}

    # Process each batch multiple times to collect results
    results = []
    for _ in range(n_samples):
        results.append(compute_set_log_sum_exp(model, inputs_batch))

    mean_result = np.mean(results)
    sem_result = scipy.stats.sem(results)
    return mean_result, sem_result


def compute_row(model, tokenizer, response, n_samples=100, category="sociot_warmth"):
    """`calculate_td`'s per-row function: (warm score, cold score, log ratio, its std) of one response.

    The released code keeps the model in train mode (`model.to(device).train()` at import).
    """
    response = response[:300]  # df[input_col].str[:300]
    device = model.device
    word_list = category_terms[category]
    split_index = category_index[category]
    first_lex, second_lex = word_list[:split_index], word_list[split_index:]
    a_score, a_std = compute_ci(model, tokenizer, device, response, first_lex, n_samples)
    b_score, b_std = compute_ci(model, tokenizer, device, response, second_lex, n_samples)
    log_ratio = a_score - b_score
    return a_score, b_score, log_ratio, np.sqrt(a_std**2 + b_std**2)
