"""In-process transformers models (peft adapters swapped on one base), through `local_lm`: generation in
batches; verdict requests answered by choice scoring. Answers are stored chunk by chunk as they are generated."""

from __future__ import annotations

from resources.backends.base import Backend


class InProcess(Backend):
    in_process = True

    def __init__(self, layer):
        if layer.local is None:
            raise ValueError("provider = local needs a local model ([llm] local_model)")
        super().__init__(layer, f"local:{layer.local.identity}")
        self.local = layer.local

    def run_metadata(self) -> dict:
        # The dtype the weights ran in ([generation] dtype resolved) and, for a checkpoint with an adapter, how it
        # was applied ([generation] adapters): neither is part of a cache key, so the run says them here.
        applied = {"adapters": self.local.adapters} if self.local.adapter_path else {}
        return {"precision": self.local.precision, **applied}

    def answer(self, requests, todo, results, usage, failures, log) -> bool:
        # In the order `generate` batches them (settings, then prompt length), so that each stored chunk is whole
        # batches of like prompts: chunks cut from the request order mixed long and short prompts (padding).
        first = {key: requests[indices[0]] for key, indices in todo.items()}
        keys = sorted(todo, key=lambda k: (first[k].response_format or "", first[k].temperature,
                                           first[k].max_tokens, sum(len(c) for _, c in first[k].messages)))
        # Chunks are whole batches: a chunk of 25 at batch size 8 would leave a batch of 1 behind.
        batch = self.local.batch_size
        step = batch * max(1, -(-self.layer.flush_every // batch))
        for start in range(0, len(keys), step):
            chunk = keys[start:start + step]
            answers = self.local.generate([requests[todo[k][0]] for k in chunk])
            pairs = []
            for key, answer in zip(chunk, answers):
                answer.key = key
                for i in todo[key]:
                    results[i] = answer
                usage.add(answer)
                pairs.append((requests[todo[key][0]], answer))
            self.layer.store(pairs)
        return True
