"""Streamed chat completions: the Server-Sent Events of an answer, and the stop rule for runaway answers.

:func:`read_event_stream` turns the lines of a ``"stream": true`` chat completion (``data:
{json}`` events with ``choices[0].delta.content`` pieces, ended by ``data: [DONE]``) into the
answer's text, checking after each piece whether the answer has started repeating itself
(:func:`repetition_end`, the stop rule): then it stops reading, so the caller closes the
connection and the server stops generating, and the answer is the text up to where the rule
fired. :func:`cut_runaway` applies the same rule to an answer that came whole (a server that
does not stream), so an answer is the same text whether or not it was streamed. Pure: no I/O,
no clock; the HTTP side is model_client.ChatClient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from .model_retry import RequestError, snippet

# The longest unit (in characters) whose repetition the stop rule looks for: room for an item
# like {"text": "Bank of New York", "label": "ORG"}, plus its separator.
MAX_UNIT = 64


class RepetitionGuard:
    """The stop rule, fed the answer piece by piece (see :func:`repetition_end` for the rule):
    :meth:`feed` says where, in the text fed so far, the rule first held. Each character costs
    at most ``max_unit`` steps, whatever the length of the text before it."""

    def __init__(self, *, times: int, max_unit: int = MAX_UNIT) -> None:
        if times < 2:
            raise ValueError(f"the stop rule needs at least 2 repetitions, got {times}")
        self.times = times
        self.max_unit = max_unit
        self.fired_at: Optional[int] = None
        self._length = 0
        self._recent = ""  # the last max_unit characters
        # unit length u -> how many characters in a row, ending at the last one, equal the
        # character u places before them (lengths with none left out)
        self._runs: Dict[int, int] = {}
        self._last_visible = -1  # index of the last character that is not whitespace
        # the JSON string literals: inside one? after a backslash? its characters so far
        self._in_string = False
        self._escaped = False
        self._literal: List[str] = []
        self._previous: Optional[str] = None  # the last string literal closed
        self._equal_in_a_row = 0
        self._gap = "broken"  # since that literal: "after" (whitespace), "comma" (one comma), "broken"

    def feed(self, piece: str) -> Optional[int]:
        """Take the next piece of the answer; the length of the shortest prefix of everything
        fed so far at whose end the rule holds (None while it never has). Once it held, the
        same length every time."""
        for char in piece:
            if self.fired_at is not None:
                break
            self._length += 1
            if self._advance_units(char) | self._advance_strings(char):  # both: each keeps its state
                self.fired_at = self._length
        return self.fired_at

    def _advance_units(self, char: str) -> bool:
        """Rule (a) after one more character: whether the text now ends with a unit repeated."""
        recent, previous = self._recent, self._runs
        known = len(recent)
        runs: Dict[int, int] = {}
        index = recent.find(char)
        while index >= 0:  # the unit lengths u for which char equals the character u places back
            unit = known - index
            runs[unit] = previous.get(unit, 0) + 1
            index = recent.find(char, index + 1)
        self._runs = runs
        self._recent = (recent + char)[-self.max_unit :]
        end = self._length
        if not char.isspace():
            self._last_visible = end - 1
        return any(
            run >= unit * (self.times - 1) and self._last_visible >= end - unit for unit, run in runs.items()
        )

    def _advance_strings(self, char: str) -> bool:
        """Rule (b) after one more character: whether it closed the ``times``-th equal string
        literal in a row."""
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                return self._close_literal()
            self._literal.append(char)
            return False
        if char == '"':
            self._in_string, self._literal = True, []
            if self._gap != "comma":
                self._previous, self._equal_in_a_row = None, 0
        elif char == "," and self._gap == "after":
            self._gap = "comma"
        elif not char.isspace():
            self._gap = "broken"
        return False

    def _close_literal(self) -> bool:
        literal = "".join(self._literal)
        self._in_string = False
        self._equal_in_a_row = self._equal_in_a_row + 1 if literal == self._previous else 1
        self._previous, self._gap = literal, "after"
        return self._equal_in_a_row >= self.times


def repetition_end(text: str, *, times: int, max_unit: int = MAX_UNIT) -> Optional[int]:
    """The stop rule: the length of the shortest prefix of ``text`` that ends in a runaway
    repetition, or None when no prefix does. A prefix ends in a runaway repetition when

    (a) it ends with the same unit of 1 to ``max_unit`` characters written ``times`` times in a
        row, the unit holding at least one character that is not whitespace (``aaaaaaaa``,
        ``"", "", "", ...``, ``{"text": "Paris", "label": "LOC"}, {"text": "Paris", ...``;
        indentation and blank lines never count), or
    (b) its last ``times`` JSON string literals (``"`` to the next ``"`` not escaped by a
        backslash, compared as written) are equal and separated only by a comma and whitespace,
        the last one ending the prefix (``"Paris", "Paris", "Paris"``, however long the string).

    Shortest prefix: so the cut of an answer is the same whether it was read in one piece or
    streamed in pieces of any size (RepetitionGuard gives the same answer, piece by piece).
    ``times`` is at least 2.
    """
    return RepetitionGuard(times=times, max_unit=max_unit).feed(text)


@dataclass(frozen=True)
class ChatAnswer:
    """The text of one answer, and whether the stop rule cut it short (``repetition_stop``)."""

    text: str
    repetition_stop: bool = False


def cut_runaway(text: str, *, stop_repetition: int) -> ChatAnswer:
    """A whole answer, cut where the stop rule fires (``stop_repetition`` repetitions; 0: never)."""
    end = repetition_end(text, times=stop_repetition) if stop_repetition else None
    return ChatAnswer(text) if end is None else ChatAnswer(text[:end], repetition_stop=True)


def event_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each Server-Sent Event in ``lines`` (the body's lines, without line ends):
    its ``data:`` lines joined by newlines, dispatched at a blank line or the end. Comments
    (``: ping``) and the other fields (``event:``, ``id:``, ``retry:``) are skipped."""
    data: List[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def chunk_delta(data: str) -> Tuple[str, Optional[str]]:
    """The content piece and the finish reason (None until the last chunk) of one streamed
    ``chat.completion.chunk``; RequestError (retryable) for an error or anything else."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise RequestError(f"a streamed event is not JSON: {snippet(data)!r}", retryable=True) from None
    if not isinstance(chunk, dict):
        raise RequestError(f"a streamed event is not a JSON object: {snippet(data)!r}", retryable=True)
    if "error" in chunk:
        raise RequestError(f"server returned an error: {snippet(json.dumps(chunk['error']))}", retryable=True)
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise RequestError(f"a streamed chunk has no choices: {snippet(data)!r}", retryable=True)
    if not choices:
        return "", None  # e.g. OpenAI's usage chunk
    choice = choices[0] if isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    if content is not None and not isinstance(content, str):
        raise RequestError(f"a streamed chunk's delta.content is no string: {snippet(data)!r}", retryable=True)
    reason = choice.get("finish_reason")
    return content or "", str(reason) if reason is not None else None


def read_event_stream(lines: Iterable[str], *, stop_repetition: int) -> ChatAnswer:
    """The answer streamed in ``lines``: its content pieces joined, read up to ``data: [DONE]``
    or, when the stop rule fires (``stop_repetition`` repetitions; 0: never), no further (the
    text up to where it fired; the caller then closes the stream, which stops the server).

    Raises RequestError (retryable) for an error event, a malformed chunk, or a stream that
    ends before the answer was finished: one without a finish reason, e.g. llama-cpp-python's
    ``[DONE]`` when its ``interrupt_requests`` cut the answer short for another request.
    """
    guard = RepetitionGuard(times=stop_repetition) if stop_repetition else None
    pieces: List[str] = []
    finished = False
    for data in event_data(lines):
        if data.strip() == "[DONE]":
            break
        piece, reason = chunk_delta(data)
        finished = finished or reason is not None
        if not piece:
            continue
        pieces.append(piece)
        end = guard.feed(piece) if guard is not None else None
        if end is not None:
            return ChatAnswer("".join(pieces)[:end], repetition_stop=True)
    if not finished:
        raise RequestError(
            "the answer stream ended before the answer was finished (no finish_reason): the server cut it "
            "short (llama-cpp-python does so for a waiting request unless started with --interrupt_requests "
            "False; or set stream = false)",
            retryable=True,
        )
    return ChatAnswer("".join(pieces))

