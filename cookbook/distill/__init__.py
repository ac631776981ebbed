"""Distillation: on-policy (the student samples, the teacher scores the student's tokens with
``compute_logprobs``, per-token reverse KL is the advantage; ``types`` + ``train``) and prompt
(context) distillation (the teacher answers under a system prompt, the student learns the answers
without it; ``prompt``).

May import the shared layer of ``cookbook``, ``renderers`` and ``cookbook.rl`` (rollouts, Datums:
on-policy distillation is RL with a teacher's logprobs as the reward); never another loop, never
``cookbook.backend`` directly.
"""
