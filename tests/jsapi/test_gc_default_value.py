"""Port of gc/default-value.tentative.any.js: not applicable (the GC proposal is not in the contract)."""

from __future__ import annotations

JS_FILE = "gc/default-value.tentative.any.js"
NOT_APPLICABLE_PATTERNS = {
    ".*": "GC proposal (struct/array/i31 references crossing the JS boundary) is not part of the asyncwasm contract; neither engine exposes GC references to Python",
}
