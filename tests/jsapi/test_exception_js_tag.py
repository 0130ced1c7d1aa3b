"""Port of exception/jsTag.tentative.any.js: not applicable (``WebAssembly.JSTag``)."""

from __future__ import annotations

JS_FILE = "exception/jsTag.tentative.any.js"
NOT_APPLICABLE_PATTERNS = {
    ".*": "WebAssembly.JSTag (JS exceptions as wasm exceptions with an externref payload) is not part of the asyncwasm contract",
}
