"""Port of global/valueOf.any.js: not applicable (receiver branding, stray arguments)."""

from __future__ import annotations

from ._support import NO_STRAY, NO_THIS

JS_FILE = "global/valueOf.any.js"
NOT_APPLICABLE = {"Branding": NO_THIS, "Stray argument": NO_STRAY}
