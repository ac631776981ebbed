"""Fake Tinker clients for tests of the shared layer (no backend): they record what is called."""

from __future__ import annotations

import numpy as np
from tinker import types


class Done:
    """A finished future (``.result()`` and ``await``-able through ``result_async``)."""

    def __init__(self, value):
        self.value = value

    def result(self, timeout=None):
        return self.value

    async def result_async(self, timeout=None):
        return self.value


class FakeSampler:
    """Answers every prompt with ``answer(prompt_tokens) -> tokens``; records submissions and waits."""

    def __init__(self, answer, events=None):
        self.answer = answer
        self.events = events if events is not None else []
        self.params = []

    def sample(self, prompt, num_samples, sampling_params):
        self.params.append(sampling_params)
        self.events.append("submit")
        tokens = self.answer(prompt.to_ints())
        seqs = [types.SampledSequence(stop_reason="stop", sequence_id=str(i), tokens_np=np.array(tokens, np.int32),
                                      logprobs_np=np.full(len(tokens), -0.5, np.float32)) for i in range(num_samples)]
        events = self.events

        class Future(Done):
            def result(self, timeout=None):
                events.append("wait")
                return self.value
        return Future(types.SampleResponse(sequences=seqs))


class FakeTrainer:
    """A training client that counts sampling snapshots and forward calls."""

    def __init__(self, sampler=None):
        self.snapshots = 0
        self.forwards = 0
        self.sampler = sampler

    def save_weights_and_get_sampling_client(self, name=None):
        self.snapshots += 1
        return self.sampler or object()

    def forward(self, data, loss_fn, loss_fn_config=None):
        self.forwards += 1
        return Done(types.ForwardBackwardOutput(loss_fn_output_type="cross_entropy", loss_fn_outputs=[],
                                                metrics={"loss:sum": 2.0 * len(data)}))
