"""Distillation: on-policy (the student samples, the teacher scores the student's tokens with
``compute_logprobs``, per-token reverse KL is the advantage: a configuration of the RL loop with the
teacher as its KL reference; ``types`` + ``train``) and prompt (context) distillation (the teacher
answers under a system prompt, the student learns the answers without it; ``prompt``).

May import the shared layer of ``cookbook``, ``renderers`` and ``cookbook.rl`` (its loop, envs and
rollouts: on-policy distillation is RL with the teacher as the reference); never another loop, never
``cookbook.backend`` directly.
"""
