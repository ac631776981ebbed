"""``cookbook serve key=value ...``: load the model, then serve it over the OpenAI API."""

from __future__ import annotations

import sys

from cookbook.recipe_cli import run_recipe
from cookbook.serve.config import ServeConfig
from cookbook.serve.model import ServedModel
from cookbook.serve.runner import serve


def run(config: ServeConfig) -> None:
    config.check()
    model = ServedModel.load(config)
    host = f"[{config.host}]" if ":" in config.host else config.host
    where = f"http://{host}:{config.port}/v1"
    key = "<api_key>" if config.api_key else "anything"
    print(f"serving {model.name!r} (base model {config.base_model}) at {where}; connect with "
          f"openai.OpenAI(base_url={where!r}, api_key={key!r})", file=sys.stderr)
    serve(model, host=config.host, port=config.port, api_key=config.api_key, log_level=config.log_level)


def main(argv: list[str] | None = None, *, debug: bool = False) -> int:
    """Parse ``key=value`` options (``--help`` lists them) and serve until interrupted; 2 on a user error."""
    return run_recipe(ServeConfig, run, sys.argv[1:] if argv is None else argv, group="serve", debug=debug)


if __name__ == "__main__":
    raise SystemExit(main())
