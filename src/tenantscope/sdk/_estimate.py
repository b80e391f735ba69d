"""An upper bound of a request's input tokens, without a tokenizer.

OpenAI's and Anthropic's tokenizers are byte-level BPE: every token stands for at least one
byte of UTF-8 text, so a text never has more tokens than bytes. A request's input is its
texts (message contents, system prompt, tool definitions and calls) plus a few framing
tokens per message (role markers, separators). So:

    tokens <= UTF-8 bytes of every text + MESSAGE_OVERHEAD per message + REQUEST_OVERHEAD

Non-text parts (images, audio, files) are not counted by their bytes (a base64 image of
500 kB is ~1,000 tokens, not 500,000): each gets NON_TEXT_ALLOWANCE. That allowance covers
an image on Anthropic (at most ~1,600 tokens) and on OpenAI's gpt-4o family (at most
~1,105 at high detail) but not every model (gpt-4o-mini counts images ~33x larger): for
image-heavy calls on such models pass an explicit estimate through ``guard()``.

The bound is loose for English (about 4 bytes per token), which is what a reservation
wants: the hold is settled at the real figure once the call's span arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

# role markers and separators around one message (OpenAI's chat format uses 3-4)
MESSAGE_OVERHEAD = 8
# the reply priming and the request's own framing
REQUEST_OVERHEAD = 16
# one image / audio clip / file part
NON_TEXT_ALLOWANCE = 2048

_NON_TEXT_TYPES = frozenset(
    {
        "image",
        "image_url",
        "input_image",
        "input_audio",
        "audio",
        "file",
        "input_file",
        "document",
        "video",
    }
)


def text_bytes(value: object) -> int:
    """Bytes of every text in ``value`` (strings, lists, mappings, response models); a
    non-text part counts NON_TEXT_ALLOWANCE. Mapping keys count too: tool schemas are
    rendered into the prompt with their keys."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, int | float):
        return len(str(value))
    if isinstance(value, bytes | bytearray):
        return NON_TEXT_ALLOWANCE
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str) and kind in _NON_TEXT_TYPES:
            return NON_TEXT_ALLOWANCE
        if isinstance(kind, str) and isinstance(value.get("text"), str) and len(value) <= 3:
            return text_bytes(value["text"])  # a plain text part: its keys are framing
        return sum(text_bytes(k) + text_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(text_bytes(v) for v in value)
    dump = getattr(value, "model_dump", None)  # a pydantic model of the client library
    if callable(dump):
        try:
            return text_bytes(dump(exclude_none=True))
        except Exception:
            pass
    if isinstance(value, Iterable):
        return 0  # a generator the client would consume: never read it here
    try:
        return len(json.dumps(value, default=str).encode())
    except Exception:
        return len(str(value).encode())


def messages_tokens(messages: object) -> int:
    """Input tokens (upper bound) of a chat message list (or one string)."""
    if isinstance(messages, str):
        return text_bytes(messages) + MESSAGE_OVERHEAD
    if not isinstance(messages, list | tuple):
        return text_bytes(messages)
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD
        if isinstance(message, Mapping):
            # role, name, content, tool calls: values only; the keys are framing
            total += sum(text_bytes(v) for v in message.values())
        else:
            total += text_bytes(message)
    return total


def input_tokens(kwargs: Mapping[str, Any], *, messages: str, extra: Iterable[str]) -> int:
    """The upper bound of a request: its ``messages`` field (message list or input) and
    the ``extra`` fields (system prompt, tools, schemas) counted as text."""
    total = REQUEST_OVERHEAD + messages_tokens(_given(kwargs.get(messages)))
    for name in extra:
        total += text_bytes(_given(kwargs.get(name)))
    return total


def _given(value: object) -> object:
    """None for the client libraries' NOT_GIVEN / Omit sentinels."""
    if value is None or isinstance(value, str | int | list | tuple | Mapping):
        return value
    if type(value).__name__ in ("NotGiven", "Omit"):
        return None
    return value


def max_output(kwargs: Mapping[str, Any], *names: str) -> int | None:
    """The request's output cap: the first of ``names`` that is a whole number."""
    for name in names:
        value = kwargs.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
