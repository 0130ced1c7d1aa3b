"""Ports of the WebAssembly JS API test suite (WebAssembly/spec ``test/js-api``) to asyncwasm.

One ``test_<dir>_<name>.py`` per upstream ``<dir>/<name>.any.js``; every upstream subtest is
listed, with its status, in ``manifest.json``. See ``_support.py`` for how a test names the
subtest it ports.
"""
