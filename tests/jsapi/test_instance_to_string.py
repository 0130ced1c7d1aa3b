"""Port of instance/toString.any.js: JS ``Object.prototype.toString`` / ``@@toStringTag`` of Instance objects.

Not applicable: Python has no @@toStringTag; the type of every object is checked elsewhere."""

from __future__ import annotations

from ._support import NO_TOSTRINGTAG

JS_FILE = "instance/toString.any.js"
NOT_APPLICABLE_PATTERNS = {".*": NO_TOSTRINGTAG}
