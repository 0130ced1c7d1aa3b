"""Port of global/toString.any.js: JS ``Object.prototype.toString`` / ``@@toStringTag`` of Global objects.

Not applicable: Python has no @@toStringTag; the type of every object is checked elsewhere."""

from __future__ import annotations

from ._support import NO_TOSTRINGTAG

JS_FILE = "global/toString.any.js"
NOT_APPLICABLE_PATTERNS = {".*": NO_TOSTRINGTAG}
