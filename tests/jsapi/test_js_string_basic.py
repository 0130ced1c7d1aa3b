"""Port of js-string/basic.any.js: not applicable (JS String Builtins proposal)."""

from __future__ import annotations

JS_FILE = "js-string/basic.any.js"
NOT_APPLICABLE_PATTERNS = {
    ".*": "JS String Builtins proposal (wasm:js-string imports, importedStringConstants compile option) is specific to JS strings and not part of the asyncwasm contract",
}
