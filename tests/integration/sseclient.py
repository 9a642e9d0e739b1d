"""The test side's own strict reader of chatd's event streams.

Independent of chatd's encoder: it accepts exactly what the contract allows —
events that are one `data: <json object>` line and a blank line, and `:`
comment blocks — and fails on anything else, including bytes after the final
event.
"""

import json
from typing import List, Tuple

EVENT_KEYS = {"content", "sequence", "is_final", "correlation_id"}
FINAL_COMPLETED_KEYS = EVENT_KEYS | {"status", "finish_reason", "duration_ms", "prompt_tokens", "completion_tokens", "total_tokens",
                                     "provider", "model"}
FINAL_ERROR_KEYS = EVENT_KEYS | {"status", "error", "duration_ms", "provider", "model"}


def decode_chunked(data: bytes) -> Tuple[bytes, bool]:
    """Decodes a chunked body; returns the payload so far and whether it ended."""
    out, i = b"", 0
    while True:
        eol = data.find(b"\r\n", i)
        if eol < 0:
            return out, False
        size = int(data[i:eol].split(b";")[0], 16)
        if size == 0:
            return out, data[eol + 2 : eol + 4] == b"\r\n"
        start, end = eol + 2, eol + 2 + size
        if len(data) < end + 2:
            return out + data[start:end], False
        assert data[end : end + 2] == b"\r\n", "chunk not followed by CRLF"
        out += data[start:end]
        i = end + 2


def parse_events(body: bytes, complete: bool = True) -> List[dict]:
    text = body.decode("utf-8")  # strict: invalid UTF-8 fails the test
    blocks = text.split("\n\n")
    tail = blocks.pop()  # after the last "\n\n"
    assert tail == "" or not complete, f"stream does not end with a blank line: {tail!r}"
    events, final_seen = [], False
    for block in blocks:
        if block.startswith(":"):
            assert "\n" not in block, f"comment block with several lines: {block!r}"
            continue
        assert not final_seen, f"data after the final event: {block!r}"
        assert block.startswith("data: "), f"not a data line: {block!r}"
        assert "\n" not in block and "\r" not in block, f"event is not one line: {block!r}"
        ev = json.loads(block[len("data: ") :])
        assert isinstance(ev, dict), f"event is not a JSON object: {block!r}"
        check_event(ev)
        final_seen = ev["is_final"]
        events.append(ev)
    return events


def check_event(ev: dict):
    assert isinstance(ev.get("content"), str)
    assert isinstance(ev.get("sequence"), int) and not isinstance(ev.get("sequence"), bool)
    assert isinstance(ev.get("is_final"), bool)
    assert isinstance(ev.get("correlation_id"), str)
    if not ev["is_final"]:
        assert set(ev) == EVENT_KEYS, f"unexpected keys {set(ev)}"
        return
    assert ev["content"] == ""
    assert isinstance(ev.get("duration_ms"), int)
    if ev["status"] == "completed":
        assert set(ev) == FINAL_COMPLETED_KEYS, f"unexpected keys {set(ev)}"
        for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert ev[k] is None or isinstance(ev[k], int)
    else:
        assert ev["status"] in ("error", "timeout"), ev
        assert set(ev) == FINAL_ERROR_KEYS, f"unexpected keys {set(ev)}"
        assert set(ev["error"]) == {"error", "detail"}
        assert isinstance(ev["error"]["error"], str) and isinstance(ev["error"]["detail"], str)


def check_stream(events: List[dict], cid: str = None):
    """Sequence from 0, contiguous; exactly one final event, the last one."""
    assert events, "no events"
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert [e["is_final"] for e in events] == [False] * (len(events) - 1) + [True]
    ids = {e["correlation_id"] for e in events}
    assert len(ids) == 1, ids
    if cid is not None:
        assert ids == {cid}
    return events[-1]


def three_parts(detail: str) -> bool:
    """What happened. Why. What to do. — three sentences, each ending with '.'."""
    parts = [p for p in detail.split(". ") if p]
    return detail.endswith(".") and len(parts) >= 3
