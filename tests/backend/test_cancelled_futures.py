"""A cancelled wait (an asyncio task awaiting a local future is cancelled) leaves the engine working."""

from __future__ import annotations

import asyncio

from tinker import types

import cookbook
from cookbook.primitives import ready


def test_cancelling_an_awaited_sample_keeps_the_engine_alive():
    service = cookbook.service_client("local")
    sampler = ready(service.create_sampling_client(base_model="tiny"))
    params = types.SamplingParams(max_tokens=16, temperature=0.0, stop=[])
    prompt = types.ModelInput.from_ints([72, 105, 58, 32])

    async def cancel_while_waiting() -> None:
        task = asyncio.ensure_future(sampler.sample(prompt, 1, params).result_async())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    for _ in range(3):
        asyncio.run(cancel_while_waiting())
    assert len(sampler.sample(prompt, 1, params).result(timeout=60).sequences[0].tokens) == 16
    assert service.engine.call(lambda: 1 + 1) == 2
