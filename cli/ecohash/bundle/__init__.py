"""Offline site bundles: everything a site needs, signed, carried on a disk, verified, loaded.

A bundle is a directory: ``manifest.json`` (every blob's sha256, size, kind and destination),
``manifest.json.minisig`` (minisign's format, so Debian's ``minisign -V`` checks it too) and
``blobs/sha256/<hex>``. See docs/bundle.md.
"""
