"""Per-step metrics to ``metrics.jsonl`` and, when asked, to Weights & Biases.

wandb is optional: it is imported only when ``wandb_project`` is set (``WANDB_MODE=offline``
works for runs without network).
"""

from __future__ import annotations

from typing import Any

from .run_dir import RunDir


class MetricLogger:
    def __init__(self, run_dir: RunDir, *, wandb_project: str | None = None, wandb_name: str | None = None,
                 resume_step: int = 0) -> None:
        self.run_dir = run_dir
        self._wandb = None
        if wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError("wandb_project is set but wandb is not installed: pip install wandb") from exc
            self._wandb = wandb.init(project=wandb_project, name=wandb_name, dir=str(run_dir.path),
                                     config=run_dir.config, resume="allow" if resume_step else None)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self.run_dir.append_metrics(row)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "step"}, step=step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value
