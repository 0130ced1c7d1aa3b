"""Port of memory/constructor-memory64.any.js: not applicable (memory64 ``address``)."""

from __future__ import annotations

from ._support import MEMORY64

JS_FILE = "memory/constructor-memory64.any.js"
NOT_APPLICABLE_PATTERNS = {".*": MEMORY64}
