"""Port of constructor/toStringTag.any.js: ``@@toStringTag`` of the WebAssembly namespace.

Not applicable: Python has no @@toStringTag (contract mapping table)."""

from __future__ import annotations

from ._support import NO_TOSTRINGTAG

JS_FILE = "constructor/toStringTag.any.js"
NOT_APPLICABLE_PATTERNS = {".*": NO_TOSTRINGTAG}
