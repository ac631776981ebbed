"""An OpenAI-compatible HTTP server over any sampling client and a renderer.

    cookbook serve base_model=tiny model_path=local://<run>/sampler_weights/final port=8000
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
    client.chat.completions.create(model="local://<run>/sampler_weights/final", messages=[...])

Endpoints: ``GET /v1/models`` (one model: ``model_name``, default the checkpoint path or the base
model), ``POST /v1/chat/completions`` (messages rendered by the renderer, the reply parsed back:
thinking as ``reasoning_content``, tool calls), ``POST /v1/completions`` (raw text or token-id
prompts; ``logprobs`` and ``echo`` give token log-probabilities, of the prompt too: ``logprobs``),
``GET /health``, and vLLM's tokenizer routes (``GET /tokenizer_info``, ``POST /tokenize``,
``POST /detokenize``; ``tokens``), which lm-evaluation-harness uses. Sampling options:
``temperature``, ``top_p``, ``max_tokens`` (or ``max_completion_tokens``), ``stop``, ``n``,
``seed``. Not supported (400): streaming, logprobs of chat completions.

Requests are handled asynchronously: each one submits its sampling request to the backend at once
and awaits it, so concurrent requests reach the backend together and the local backend decodes
them in one batch. Bad requests (malformed JSON, unknown roles, out-of-range values, a prompt
longer than the context, an unknown model) get a 4xx answer with an OpenAI-shaped body
``{"error": {"message", "type", "param", "code"}}``, never a traceback; the server keeps serving.
The server listens on 127.0.0.1 by default; ``api_key`` makes it require ``Authorization: Bearer
<key>``, and another host is refused without one.

Modules: ``config`` (settings, the command's options), ``protocol`` (request bodies, errors),
``model`` (the served model: requests -> sampling -> responses), ``logprobs`` (OpenAI's
completions ``logprobs`` object), ``tokens`` (the tokenizer routes), ``app`` (FastAPI), ``runner``
(foreground / background thread), ``cli`` (``cookbook serve``). May import the shared layer of
``cookbook`` (``primitives``, ``backend`` factory, ``errors``, ``tokenizer_utils``,
``recipe_cli``) and ``renderers``; never ``evals``, ``recipes`` or a backend's internals.
"""

from cookbook.serve.app import create_app
from cookbook.serve.cli import main
from cookbook.serve.config import ServeConfig
from cookbook.serve.model import ServedModel
from cookbook.serve.runner import ServerThread, serve

__all__ = ["ServeConfig", "ServedModel", "ServerThread", "create_app", "main", "serve"]
