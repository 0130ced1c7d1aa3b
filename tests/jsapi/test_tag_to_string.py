"""Port of tag/toString.tentative.any.js: JS ``Object.prototype.toString`` / ``@@toStringTag`` of Tag objects.

Not applicable: Python has no @@toStringTag; the type of every object is checked elsewhere."""

from __future__ import annotations

from ._support import NO_TOSTRINGTAG

JS_FILE = "tag/toString.tentative.any.js"
NOT_APPLICABLE_PATTERNS = {".*": NO_TOSTRINGTAG}
