"""Rolling a site's standard out to its nodes: state, fingerprints, waves, preflight, reports."""
